// Entry point of the HTTP process's tokenizer worker thread (started by PromptEncoder): loads the served
// model's tokenizer and encodes the large texts the HTTP thread hands it, one message at a time, so that a
// long prompt never stalls the event loop that answers /health and every other request.

import { parentPort, workerData } from 'node:worker_threads';
import type { ModelSettings } from '../../config/engine-config.js';
import { loadModelTokenizer } from '../../models/model-loader.js';
import { nameThisThread } from '../../util/thread-name.js';
import type { EncodeReply, EncodeRequest } from './protocol.js';

if (parentPort === null)
  throw new Error('tokenizer-worker.js runs only as a worker thread (see PromptEncoder)');
const port = parentPort;
nameThisThread('duet-tokenizer');
const tokenizer = loadModelTokenizer(workerData as ModelSettings);
port.on('message', (m: EncodeRequest) => {
  let reply: EncodeReply;
  try {
    const ids = Int32Array.from(tokenizer.encode(m.text, { addSpecialTokens: m.addSpecialTokens }));
    reply = { id: m.id, ids };
    port.postMessage(reply, [ids.buffer]);
  } catch (e) {
    reply = { id: m.id, error: e instanceof Error ? e.message : String(e) };
    port.postMessage(reply);
  }
});
