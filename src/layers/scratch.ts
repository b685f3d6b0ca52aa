// Reusable activation buffers for the stretches of a forward that run without an `await` in between:
// writing and last reading a scratch buffer must happen in one synchronous stretch, so that forwards
// interleaved at their collectives (dual-batch overlap) can share the buffers. Buffers up to a few MiB
// live in the kernels' memory (`kernels.allocate`), where the kernels use them in place: a decode step
// then runs without allocations or copies; larger ones (long prefills) come from
// `kernels.allocateActivations`.

import type { Kernels } from '../kernels/kernels.js';

/** Largest buffer kept in the kernels' memory; larger requests get ordinary (copied) arrays. */
const MAX_KERNEL_BUFFER_BYTES = 4 * 1024 * 1024;

export class Scratch {
  /** Per slot: the buffer (kernel memory or ordinary) and whether it came from `kernels.allocate`. */
  private readonly buffers = new Map<string, { data: Float32Array; allocated: boolean }>();

  constructor(private readonly kernels: Kernels) {}

  /**
   * A view of `n` elements of buffer `slot` (contents undefined), valid until the slot is asked for again.
   * Different slots never overlap.
   */
  get(slot: string, n: number): Float32Array {
    const cur = this.buffers.get(slot);
    if (cur && cur.data.length >= n) return cur.data.subarray(0, n);
    if (cur?.allocated) this.kernels.free(cur.data);
    // Some headroom, so that a slowly growing batch does not reallocate every step.
    const size = Math.max(n, Math.ceil((cur?.data.length ?? 0) * 1.5));
    let next: { data: Float32Array; allocated: boolean };
    if (size * 4 <= MAX_KERNEL_BUFFER_BYTES) {
      try {
        next = { data: this.kernels.allocate(size), allocated: true };
      } catch {
        // The kernels' memory is full: a step activation buffer works too.
        next = { data: this.kernels.allocateActivations(size), allocated: false };
      }
    } else {
      next = { data: this.kernels.allocateActivations(size), allocated: false };
    }
    this.buffers.set(slot, next);
    return next.data.subarray(0, n);
  }

  /** Returns every buffer to the kernels. */
  dispose(): void {
    for (const b of this.buffers.values()) if (b.allocated) this.kernels.free(b.data);
    this.buffers.clear();
  }
}
