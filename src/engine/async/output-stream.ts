// One request's outputs as an async iterable: the AsyncEngine pushes outputs as they arrive from the engine
// thread, the consumer pulls them with `for await`. The output marked finished ends it; leaving the loop
// early cancels the request.

import { AsyncQueue } from '../../util/async-queue.js';
import type { EngineOutput } from './protocol.js';

export class OutputStream extends AsyncQueue<EngineOutput> {
  /** @param onCancel called when the consumer stops before the request finished. */
  constructor(onCancel: () => void) {
    super(onCancel);
  }

  override push(output: EngineOutput): void {
    super.push(output);
    if (output.finished) this.end();
  }
}
