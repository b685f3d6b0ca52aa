// The pool of KV cache blocks: reference counts, the free queue (also the LRU eviction order of cached
// blocks), and the prefix cache that maps a block's content hash to blocks holding that content.
//
// A block whose reference count drops to 0 goes back to the free queue but keeps its cached content, so
// a later request with the same prefix can take it back ("touch") until allocation evicts it. Every block
// id 0..numBlocks-1 is usable: no null block is reserved (nothing in Duet pads block tables with one).

import type { BlockHash } from './prefix-hash.js';

/** A broken pool invariant: double free, over-allocation, caching a block twice. A bug, never user error. */
export class BlockPoolError extends Error {
  override readonly name = 'BlockPoolError';
}

/** What a cached block holds: its hash and, to confirm hits exactly, its tokens and parent block. */
export interface CachedBlockContent {
  readonly hash: BlockHash;
  readonly tokenIds: readonly number[];
  /** The block holding the preceding block of the same prefix; null for a sequence's first block. */
  readonly parent: KVBlock | null;
  /** `parent.generation` when this block was cached: a changed generation means the parent was evicted. */
  readonly parentGeneration: number;
}

/** Bookkeeping for one KV block. Fields are changed only by the BlockPool. */
export class KVBlock {
  readonly blockId: number;
  /** Live requests whose block tables hold this block. */
  refCount = 0;
  /** Registered prefix-cache content, or null. */
  cached: CachedBlockContent | null = null;
  /** Bumped each time the cached content is dropped, so children can tell their parent was reused. */
  generation = 0;
  inFreeQueue = false;
  prevFree: KVBlock | null = null;
  nextFree: KVBlock | null = null;

  constructor(blockId: number) {
    this.blockId = blockId;
  }
}

/** Fixed set of KV blocks with reference counting, LRU free queue and the prefix-cache index. */
export class BlockPool {
  readonly numBlocks: number;
  readonly enableCaching: boolean;
  private readonly blocks: KVBlock[];
  /** Free queue: allocation and eviction take from the head; freed cached blocks join at the tail. */
  private freeHead: KVBlock | null = null;
  private freeTail: KVBlock | null = null;
  private numFree = 0;
  /** hash → blocks registered under it (usually one; more when two requests computed the same block). */
  private readonly cache = new Map<BlockHash, KVBlock[]>();
  private numCached = 0;
  /** Cached contents dropped so far (to reuse their blocks, or by a reset). */
  numEvictions = 0;

  constructor(numBlocks: number, enableCaching: boolean) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1) {
      throw new BlockPoolError(`numBlocks must be a positive integer, got ${numBlocks}`);
    }
    this.numBlocks = numBlocks;
    this.enableCaching = enableCaching;
    this.blocks = [];
    for (let i = 0; i < numBlocks; i++) {
      const block = new KVBlock(i);
      this.blocks.push(block);
      this.pushTail(block);
    }
  }

  /** Blocks that can be allocated now (free ones, including cached blocks nobody holds). */
  get numFreeBlocks(): number {
    return this.numFree;
  }

  /** Blocks with registered prefix-cache content (held or free). */
  get numCachedBlocks(): number {
    return this.numCached;
  }

  /** Fraction of blocks held by live requests, 0..1. */
  get usage(): number {
    return 1 - this.numFree / this.numBlocks;
  }

  getBlock(blockId: number): KVBlock {
    const block = this.blocks[blockId];
    if (block === undefined) {
      throw new BlockPoolError(`block id ${blockId} is out of range 0..${this.numBlocks - 1}`);
    }
    return block;
  }

  /** Takes `n` blocks from the head of the free queue (evicting their cached content), each with refCount 1. */
  allocate(n: number): KVBlock[] {
    if (n > this.numFree) {
      throw new BlockPoolError(`cannot allocate ${n} blocks: only ${this.numFree} are free`);
    }
    const out: KVBlock[] = [];
    for (let i = 0; i < n; i++) {
      const block = this.freeHead!;
      this.unlink(block);
      if (block.cached !== null) this.evict(block);
      block.refCount = 1;
      out.push(block);
    }
    return out;
  }

  /** Takes a reference on each block (a prefix-cache hit); a block nobody held leaves the free queue. */
  touch(blocks: readonly KVBlock[]): void {
    for (const block of blocks) {
      if (block.refCount === 0) this.unlink(block);
      block.refCount++;
    }
  }

  /**
   * Drops one reference on each block, in the given order. A block reaching 0 goes to the free queue:
   * cached blocks to the tail (evicted last, in order), uncached ones to the head (nothing to keep).
   */
  free(blocks: readonly KVBlock[]): void {
    for (const block of blocks) {
      if (block.refCount <= 0) {
        throw new BlockPoolError(`double free of block ${block.blockId}: its reference count is already 0`);
      }
      block.refCount--;
      if (block.refCount === 0) {
        if (block.cached !== null) this.pushTail(block);
        else this.pushHead(block);
      }
    }
  }

  /** Registers a held, full, computed block under `hash` (no-op when prefix caching is off). */
  cacheBlock(block: KVBlock, hash: BlockHash, tokenIds: readonly number[], parent: KVBlock | null): void {
    if (!this.enableCaching) return;
    if (block.cached !== null) {
      throw new BlockPoolError(`block ${block.blockId} is already cached`);
    }
    if (block.refCount === 0) {
      throw new BlockPoolError(`block ${block.blockId} is free; only held blocks can be cached`);
    }
    block.cached = { hash, tokenIds, parent, parentGeneration: parent === null ? 0 : parent.generation };
    const bucket = this.cache.get(hash);
    if (bucket === undefined) this.cache.set(hash, [block]);
    else bucket.push(block);
    this.numCached++;
  }

  /**
   * Every cached block with this hash whose tokens equal `tokenIds[start, end)` and whose parent is one of
   * `parents` (null: a sequence's first block), that parent not evicted since. All of them hold the same
   * prefix content; usually there is at most one.
   */
  findCachedBlocks(
    hash: BlockHash,
    tokenIds: readonly number[],
    start: number,
    end: number,
    parents: readonly KVBlock[] | null,
  ): KVBlock[] {
    const found: KVBlock[] = [];
    const bucket = this.cache.get(hash);
    if (bucket === undefined) return found;
    for (const block of bucket) {
      const content = block.cached!;
      if (parents === null ? content.parent !== null : !this.isLiveParent(content, parents)) continue;
      if (content.tokenIds.length !== end - start) continue;
      let same = true;
      for (let i = start; i < end && same; i++) same = content.tokenIds[i - start] === tokenIds[i];
      if (same) found.push(block);
    }
    return found;
  }

  /** Drops all cached content; only allowed when no block is held. Returns false (and does nothing) otherwise. */
  resetPrefixCache(): boolean {
    if (this.numFree !== this.numBlocks) return false;
    for (const block of this.blocks) if (block.cached !== null) this.evict(block);
    return true;
  }

  /** Block ids in free-queue order, head (next to be allocated) first. For tests and debugging. */
  freeQueueBlockIds(): number[] {
    const ids: number[] = [];
    for (let b = this.freeHead; b !== null; b = b.nextFree) ids.push(b.blockId);
    return ids;
  }

  private isLiveParent(content: CachedBlockContent, parents: readonly KVBlock[]): boolean {
    const parent = content.parent;
    return parent !== null && parents.includes(parent) && content.parentGeneration === parent.generation;
  }

  private evict(block: KVBlock): void {
    const content = block.cached!;
    const bucket = this.cache.get(content.hash)!;
    const at = bucket.indexOf(block);
    bucket.splice(at, 1);
    if (bucket.length === 0) this.cache.delete(content.hash);
    block.cached = null;
    block.generation++;
    this.numCached--;
    this.numEvictions++;
  }

  private pushTail(block: KVBlock): void {
    block.prevFree = this.freeTail;
    block.nextFree = null;
    if (this.freeTail !== null) this.freeTail.nextFree = block;
    else this.freeHead = block;
    this.freeTail = block;
    block.inFreeQueue = true;
    this.numFree++;
  }

  private pushHead(block: KVBlock): void {
    block.nextFree = this.freeHead;
    block.prevFree = null;
    if (this.freeHead !== null) this.freeHead.prevFree = block;
    else this.freeTail = block;
    this.freeHead = block;
    block.inFreeQueue = true;
    this.numFree++;
  }

  private unlink(block: KVBlock): void {
    if (!block.inFreeQueue) {
      throw new BlockPoolError(`block ${block.blockId} is not in the free queue`);
    }
    if (block.prevFree !== null) block.prevFree.nextFree = block.nextFree;
    else this.freeHead = block.nextFree;
    if (block.nextFree !== null) block.nextFree.prevFree = block.prevFree;
    else this.freeTail = block.prevFree;
    block.prevFree = null;
    block.nextFree = null;
    block.inFreeQueue = false;
    this.numFree--;
  }
}
