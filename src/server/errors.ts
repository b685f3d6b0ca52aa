// HTTP errors of the OpenAI-compatible server, in vLLM's wire shape
//   {"error": {"message": "...", "type": "BadRequestError", "param": "temperature", "code": 400}}
// and the one place where errors of the engine, the tokenizer and the sampling parameters are mapped to
// HTTP statuses: invalid input is a 400, only real faults are 500s.

import { EngineDeadError, EngineRequestError } from '../engine/async/async-engine.js';
import { RequestRejectedError } from '../engine/llm-engine.js';
import { SamplingParamsError } from '../sampling/sampling-params.js';
import { ChatTemplateError, MissingChatTemplateError, TokenIdOutOfRangeError } from '../tokenizer/errors.js';

/** The body of every error reply. */
export interface ErrorBody {
  readonly error: {
    readonly message: string;
    /** The error class name, as vLLM: BadRequestError, NotFoundError, InternalServerError... */
    readonly type: string;
    /** The request field at fault, when known. */
    readonly param: string | null;
    /** The HTTP status. */
    readonly code: number;
  };
}

/** An error with its HTTP status; `type` is what the reply's error.type says. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = type;
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.status } };
  }
}

/** 400: the request is malformed or asks for something out of range. */
export class BadRequestError extends ApiError {
  constructor(message: string, param: string | null = null) {
    super(400, 'BadRequestError', message, param);
  }
}

/** 401: every route but the open probes needs `Authorization: Bearer <api key>` when the server has one. */
export class AuthenticationError extends ApiError {
  constructor(message = 'Unauthorized: send a valid API key as "Authorization: Bearer <key>"') {
    super(401, 'AuthenticationError', message);
  }
}

/** 403: a web page of an origin the server does not allow (CORS, --allowed-origins). */
export class ForbiddenError extends ApiError {
  constructor(message: string) {
    super(403, 'ForbiddenError', message);
  }
}

/** 404: unknown model or route. */
export class NotFoundError extends ApiError {
  constructor(message: string, param: string | null = null) {
    super(404, 'NotFoundError', message, param);
  }
}

/** 415: a request body that is not JSON (Content-Type other than application/json). */
export class UnsupportedMediaTypeError extends ApiError {
  constructor(message: string) {
    super(415, 'UnsupportedMediaTypeError', message);
  }
}

/** 500: a fault of the server or the engine, not of the request. */
export class InternalServerError extends ApiError {
  constructor(message: string) {
    super(500, 'InternalServerError', message);
  }
}

/** 503: the engine is not running (still loading, or dead). */
export class ServiceUnavailableError extends ApiError {
  constructor(message: string) {
    super(503, 'ServiceUnavailableError', message);
  }
}

/** The error the model name check raises, worded as vLLM. */
export function modelNotFound(model: string): NotFoundError {
  return new NotFoundError(`The model \`${model}\` does not exist.`, 'model');
}

/** Fastify's own errors carry a status and a code such as FST_ERR_CTP_INVALID_JSON_BODY. */
interface FrameworkError {
  readonly statusCode?: number;
  readonly code?: string;
  readonly message: string;
}

/** Maps anything thrown while serving a request to an ApiError. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof SamplingParamsError) return new BadRequestError(e.message, e.field);
  if (e instanceof RequestRejectedError) return new BadRequestError(e.message, e.param);
  if (e instanceof MissingChatTemplateError || e instanceof ChatTemplateError) {
    return new BadRequestError(e.message, 'messages');
  }
  if (e instanceof TokenIdOutOfRangeError) return new BadRequestError(e.message, 'tokens');
  if (e instanceof EngineDeadError) return new InternalServerError(`the engine is dead: ${e.message}`);
  if (e instanceof EngineRequestError) return new InternalServerError(e.message);
  const f = e as FrameworkError;
  if (typeof f?.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500) {
    if (f.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return new ApiError(413, 'BadRequestError', `the request body is too large: ${f.message}`);
    }
    return new ApiError(f.statusCode, f.statusCode === 404 ? 'NotFoundError' : 'BadRequestError', f.message);
  }
  return new InternalServerError(e instanceof Error ? e.message : String(e));
}
