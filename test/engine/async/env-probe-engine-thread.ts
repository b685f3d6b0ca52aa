// An engine worker that only writes one environment variable, as a platform does before it loads native
// code (the oneDNN platform sets OMP_WAIT_POLICY for libgomp), then reports a failed start so the client
// stops waiting. The test reads the variable back on the main thread: it arrives only where the worker
// writes the process's real environment, the one native code reads.

import { parentPort } from 'node:worker_threads';

process.env.DUET_ENGINE_ENV_PROBE = 'set by the engine thread';
parentPort!.postMessage({ type: 'startFailed', message: 'env probe done', errorName: 'EnvProbe' });
