// Entry point of the engine worker thread (started by AsyncEngine). The platform's per-thread setup
// (relaxed SIMD on the CPU platform) runs when the engine loads its platform (Platform.prepareThread).

import { parentPort, workerData } from 'node:worker_threads';
import { nameThisThread } from '../../util/thread-name.js';
import type { EngineWorkerData } from './protocol.js';

nameThisThread('duet-engine');
if (parentPort === null) throw new Error('engine-thread.js runs only as a worker thread (see AsyncEngine)');
const { runEngineWorker } = await import('./engine-thread-main.js');
await runEngineWorker(parentPort, workerData as EngineWorkerData);
