// First-fit allocator of byte ranges inside one arena's address space, [base, limit). Pure bookkeeping:
// it hands out aligned offsets and tracks the high-water mark `top`; the arena grows its memory to cover
// `top` and maps the offsets to typed arrays.

/** Every block starts on this many bytes: a cache line, and a multiple of a v128. */
export const ARENA_ALIGN = 64;

/** A free range [start, start + size). */
interface FreeBlock {
  start: number;
  size: number;
}

export class ArenaAllocator {
  /** Free ranges below `top`, sorted by start, never adjacent (merged on free). */
  private readonly free: FreeBlock[] = [];
  /** Size of each live block, by start. */
  private readonly live = new Map<number, number>();
  /** End of the highest live block (or `base`). */
  private topOffset: number;

  constructor(
    /** First byte that may be handed out (the module's static data lives below). */
    readonly base: number,
    /** One past the last byte that may be handed out. */
    readonly limit: number,
  ) {
    this.topOffset = alignUp(base);
  }

  /** End of the highest live block: the memory must be at least this large. */
  get top(): number {
    return this.topOffset;
  }

  /** Bytes held by live blocks. */
  get usedBytes(): number {
    let s = 0;
    for (const size of this.live.values()) s += size;
    return s;
  }

  /**
   * Reserves `bytes` (rounded up to the alignment) and returns the start, or -1 when that does not fit
   * while leaving at least `keepFree` bytes between the new top and the limit.
   */
  alloc(bytes: number, keepFree = 0): number {
    const size = alignUp(Math.max(bytes, 1));
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.size < size) continue;
      const start = b.start;
      if (b.size === size) this.free.splice(i, 1);
      else {
        b.start += size;
        b.size -= size;
      }
      this.live.set(start, size);
      return start;
    }
    const start = this.topOffset;
    if (start + size + keepFree > this.limit) return -1;
    this.topOffset = start + size;
    this.live.set(start, size);
    return start;
  }

  /** Size of the live block at `start`, or undefined when there is none. */
  sizeOf(start: number): number | undefined {
    return this.live.get(start);
  }

  /** Returns the block at `start` to the free list. Throws on a start that is not a live block. */
  release(start: number): void {
    const size = this.live.get(start);
    if (size === undefined) throw new ArenaFreeError(start);
    this.live.delete(start);
    let i = 0;
    while (i < this.free.length && this.free[i]!.start < start) i++;
    this.free.splice(i, 0, { start, size });
    // Merge with the next block, then with the previous one.
    const cur = this.free[i]!;
    const next = this.free[i + 1];
    if (next && cur.start + cur.size === next.start) {
      cur.size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.start + prev.size === cur.start) {
      prev.size += cur.size;
      this.free.splice(i, 1);
    }
    // A free block that ends at the top lowers the top.
    const last = this.free[this.free.length - 1];
    if (last && last.start + last.size === this.topOffset) {
      this.topOffset = last.start;
      this.free.pop();
    }
  }
}

/** Freeing an offset that the allocator did not hand out (or freed already). */
export class ArenaFreeError extends Error {
  constructor(start: number) {
    super(`arena: no live block starts at offset ${start} (double free, or not from this arena)`);
    this.name = 'ArenaFreeError';
  }
}

/** Rounds up to ARENA_ALIGN. */
export function alignUp(bytes: number): number {
  return Math.ceil(bytes / ARENA_ALIGN) * ARENA_ALIGN;
}
