// Shared staging buffers for in-flight collectives: the compute thread copies a caller's input into one,
// the communication thread moves data through it, and the compute thread copies the result out. Each op
// gets its own buffer (so two micro-batches never share one); buffers are reused by size class.

const MIN_CLASS_BYTES = 4096;
const MAX_POOLED_PER_CLASS = 4;

/** Power-of-two size classes of SharedArrayBuffers, recycled after their op completes. */
export class StagingPool {
  private readonly free = new Map<number, SharedArrayBuffer[]>();

  /** A buffer of at least `bytes` bytes (its contents are stale). */
  acquire(bytes: number): SharedArrayBuffer {
    let size = MIN_CLASS_BYTES;
    while (size < bytes) size *= 2;
    return this.free.get(size)?.pop() ?? new SharedArrayBuffer(size);
  }

  /** Gives a buffer back once no thread uses it. */
  release(buffer: SharedArrayBuffer): void {
    const list = this.free.get(buffer.byteLength) ?? [];
    if (list.length < MAX_POOLED_PER_CLASS) list.push(buffer);
    this.free.set(buffer.byteLength, list);
  }

  /** Drops every pooled buffer. */
  clear(): void {
    this.free.clear();
  }
}
