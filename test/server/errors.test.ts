// Error mapping at the HTTP edge: invalid input of any layer is a 400 in vLLM's shape naming the field,
// a dead engine is a 500, anything unexpected a 500 with its message.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EngineDeadError } from '../../src/engine/async/async-engine.js';
import { RequestRejectedError } from '../../src/engine/llm-engine.js';
import { SamplingParamsError } from '../../src/sampling/sampling-params.js';
import { ApiError, modelNotFound, toApiError } from '../../src/server/errors.js';
import { MissingChatTemplateError } from '../../src/tokenizer/errors.js';

describe('toApiError', () => {
  test('maps each layer to its status and keeps the message and field', () => {
    const cases: [unknown, number, string, string | null][] = [
      [new SamplingParamsError('top_p', 'top_p must be in (0, 1], got 2.'), 400, 'BadRequestError', 'top_p'],
      [new RequestRejectedError('the prompt is empty', 'prompt'), 400, 'BadRequestError', 'prompt'],
      [new MissingChatTemplateError('/m'), 400, 'BadRequestError', 'messages'],
      [new EngineDeadError('exited'), 500, 'InternalServerError', null],
      [new TypeError('boom'), 500, 'InternalServerError', null],
      [
        { statusCode: 400, code: 'FST_ERR_CTP_EMPTY_JSON_BODY', message: 'empty' },
        400,
        'BadRequestError',
        null,
      ],
      [modelNotFound('x'), 404, 'NotFoundError', 'model'],
    ];
    for (const [error, status, type, param] of cases) {
      const e = toApiError(error);
      assert.ok(e instanceof ApiError);
      assert.equal(e.status, status, String(error));
      assert.deepEqual(e.toBody(), { error: { message: e.message, type, param, code: status } });
    }
    assert.equal(toApiError(new TypeError('boom')).message, 'boom');
  });
});
