// The engine worker's body: builds the engine from the config it was started with (logging each stage to
// the main thread), reports `ready` with the facts the HTTP side needs, then hands messages to the loop.

import { type MessagePort, threadId } from 'node:worker_threads';
import type { Logger } from '../../util/logger.js';
import { createEngine } from '../create-engine.js';
import type { LLMEngine } from '../llm-engine.js';
import { samplingDefaultsFrom } from '../sampling-defaults.js';
import { EngineWorkerLoop } from './engine-thread-loop.js';
import type { EngineInfo, EngineWorkerData, FromWorkerMessage, ToWorkerMessage } from './protocol.js';

/** Runs the engine worker on `port` until shutdown or a fatal error. */
export async function runEngineWorker(port: MessagePort, data: EngineWorkerData): Promise<void> {
  const post = (m: FromWorkerMessage) => port.postMessage(m);
  const log = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string) =>
    post({ type: 'log', level, message });
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };

  // Messages that arrive while loading wait here (the client sends none before `ready`, but be safe).
  const early: ToWorkerMessage[] = [];
  let loop: EngineWorkerLoop | null = null;
  port.on('message', (m: ToWorkerMessage) => {
    if (loop) loop.receive(m);
    else if (m.type === 'shutdown') process.exit(0);
    else early.push(m);
  });

  let engine: LLMEngine;
  try {
    engine = await createEngine(data.config, { logger });
  } catch (e) {
    const err = e as Error;
    post({ type: 'startFailed', message: err.message, errorName: err.name });
    port.close();
    return;
  }
  const info: EngineInfo = {
    maxModelLen: engine.maxModelLen,
    vocabSize: engine.loaded.config.vocabSize,
    samplingDefaults: samplingDefaultsFrom(engine.loaded.generationDefaults),
    modelDir: engine.loaded.dir,
    isEmbedded: engine.loaded.isEmbedded,
    isDummy: engine.loaded.isDummy,
    architecture: engine.loaded.config.architecture,
    kernelsName: engine.kernels.name,
    idleKvCacheUsage: engine.stats().kvCacheUsage,
    engineThreadId: threadId,
  };
  loop = new EngineWorkerLoop(engine, {
    post,
    now: () => performance.now() / 1000,
    exit: (code) => {
      port.close();
      process.exit(code);
    },
  });
  post({ type: 'ready', info });
  for (const m of early.splice(0)) loop.receive(m);
}
