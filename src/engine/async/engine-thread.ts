// Entry point of the engine worker thread (started by AsyncEngine). Relaxed SIMD must be switched on before
// any WebAssembly compiles, so the engine's modules are imported only after enableWasmFeatures().

import { parentPort, workerData } from 'node:worker_threads';
import { enableWasmFeatures } from '../../platforms/cpu/wasm-features.js';
import { nameThisThread } from '../../util/thread-name.js';
import type { EngineWorkerData } from './protocol.js';

enableWasmFeatures();
nameThisThread('duet-engine');
if (parentPort === null) throw new Error('engine-thread.js runs only as a worker thread (see AsyncEngine)');
const { runEngineWorker } = await import('./engine-thread-main.js');
await runEngineWorker(parentPort, workerData as EngineWorkerData);
