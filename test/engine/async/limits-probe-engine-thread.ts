// An engine worker that only reports the V8 resource limits it was started with (as its failed start's
// message, so the client stops waiting): the test checks the engine thread's young generation size.

import { parentPort, resourceLimits } from 'node:worker_threads';

parentPort!.postMessage({
  type: 'startFailed',
  message: JSON.stringify(resourceLimits),
  errorName: 'LimitsProbe',
});
