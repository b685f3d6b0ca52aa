// Per-request KV block tables on top of the block pool: finds a waiting request's longest cached prefix,
// allocates the slots a step needs (or says it cannot), registers newly computed full blocks in the
// prefix cache, and returns a finished or preempted request's blocks.

import { BlockPool, type KVBlock } from './block-pool.js';
import { extendBlockHashes } from './prefix-hash.js';
import type { EngineRequest } from './request.js';

/** A broken manager contract (e.g. a prefix hit offered to a request that already holds blocks). */
export class KVCacheManagerError extends Error {
  override readonly name = 'KVCacheManagerError';
}

/** Settings of the KV cache manager. */
export interface KVCacheManagerConfig {
  /** Tokens per KV block, 1..256. */
  readonly blockSize: number;
  /** Blocks in the whole cache. */
  readonly numBlocks: number;
  /** Reuse the KV of full blocks whose token prefix was seen before. */
  readonly enablePrefixCaching: boolean;
}

/** A prefix-cache hit for a request that holds no blocks yet; hand it back to `allocateSlots`. */
export interface ComputedBlocks {
  readonly blocks: readonly KVBlock[];
  /** `blocks.length * blockSize`: leading tokens whose KV is already in those blocks. */
  readonly numTokens: number;
}

/** No prefix hit. */
export const NO_COMPUTED_BLOCKS: ComputedBlocks = Object.freeze({ blocks: Object.freeze([]), numTokens: 0 });

interface RequestBlocks {
  /** The block table: block i holds the KV of tokens [i*blockSize, (i+1)*blockSize). */
  readonly blocks: KVBlock[];
  /** Leading blocks already registered in the prefix cache (or taken from it). */
  numCachedBlocks: number;
}

/** Block tables of live requests over one BlockPool. */
export class KVCacheManager {
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  readonly pool: BlockPool;
  private readonly tables = new Map<string, RequestBlocks>();

  constructor(config: KVCacheManagerConfig) {
    if (!Number.isInteger(config.blockSize) || config.blockSize < 1 || config.blockSize > 256) {
      throw new KVCacheManagerError(`blockSize must be an integer in 1..256, got ${config.blockSize}`);
    }
    this.blockSize = config.blockSize;
    this.enablePrefixCaching = config.enablePrefixCaching;
    this.pool = new BlockPool(config.numBlocks, config.enablePrefixCaching);
  }

  /** Fraction of blocks held by live requests, 0..1. */
  get usage(): number {
    return this.pool.usage;
  }

  get numFreeBlocks(): number {
    return this.pool.numFreeBlocks;
  }

  /** Blocks needed to hold the KV of `numTokens` tokens. */
  numBlocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * The longest prefix of the request's tokens already in the prefix cache, in whole blocks, for a
   * request that holds no blocks. Never the whole sequence: the last token is always left to compute, so
   * the step produces logits to sample from.
   */
  getComputedBlocks(request: EngineRequest): ComputedBlocks {
    if (!this.enablePrefixCaching || request.skipPrefixCacheHits || this.tables.has(request.requestId)) {
      return NO_COMPUTED_BLOCKS;
    }
    extendBlockHashes(request.blockHashes, request.allTokenIds, this.blockSize);
    const maxBlocks = Math.floor((request.numTokens - 1) / this.blockSize);
    const hits: KVBlock[] = [];
    let level: KVBlock[] | null = null;
    for (let i = 0; i < maxBlocks; i++) {
      const start = i * this.blockSize;
      const hash = request.blockHashes[i]!;
      level = this.pool.findCachedBlocks(hash, request.allTokenIds, start, start + this.blockSize, level);
      if (level.length === 0) break;
      hits.push(level[0]!);
    }
    return { blocks: hits, numTokens: hits.length * this.blockSize };
  }

  /**
   * Makes room for `numNewTokens` more tokens after the request's computed ones (and after `computed`, a
   * prefix hit from getComputedBlocks). Takes the hit blocks and allocates fresh ones; returns the ids
   * added to the block table, or null, changing nothing, when the free blocks do not suffice.
   */
  allocateSlots(
    request: EngineRequest,
    numNewTokens: number,
    computed: ComputedBlocks = NO_COMPUTED_BLOCKS,
  ): number[] | null {
    const existing = this.tables.get(request.requestId);
    if (existing !== undefined && computed.blocks.length > 0) {
      throw new KVCacheManagerError(
        `request ${request.requestId} already holds blocks; prefix hits are only for requests without any`,
      );
    }
    const numHeld = (existing?.blocks.length ?? 0) + computed.blocks.length;
    const numTokensAfter = request.numComputedTokens + computed.numTokens + numNewTokens;
    const numNewBlocks = Math.max(0, this.numBlocksFor(numTokensAfter) - numHeld);
    // A hit block nobody holds sits in the free queue: taking it costs a free block too.
    let numHitsFromFree = 0;
    for (const block of computed.blocks) if (block.refCount === 0) numHitsFromFree++;
    if (numNewBlocks + numHitsFromFree > this.pool.numFreeBlocks) return null;

    const entry = existing ?? { blocks: [], numCachedBlocks: 0 };
    // Touch hits before allocating, so allocation cannot evict them.
    this.pool.touch(computed.blocks);
    entry.blocks.push(...computed.blocks);
    entry.numCachedBlocks += computed.blocks.length;
    const fresh = this.pool.allocate(numNewBlocks);
    entry.blocks.push(...fresh);
    if (existing === undefined) this.tables.set(request.requestId, entry);
    return [...computed.blocks, ...fresh].map((b) => b.blockId);
  }

  /**
   * Registers in the prefix cache every full block whose KV is computed (all of it lies below
   * `request.numComputedTokens`). Call after the step that computed them has run.
   */
  cacheComputedBlocks(request: EngineRequest): void {
    if (!this.enablePrefixCaching) return;
    const entry = this.tables.get(request.requestId);
    if (entry === undefined) return;
    const numFull = Math.min(Math.floor(request.numComputedTokens / this.blockSize), entry.blocks.length);
    if (numFull <= entry.numCachedBlocks) return;
    extendBlockHashes(request.blockHashes, request.allTokenIds, this.blockSize);
    for (let i = entry.numCachedBlocks; i < numFull; i++) {
      const block = entry.blocks[i]!;
      if (block.cached !== null) continue;
      const start = i * this.blockSize;
      const tokens = request.allTokenIds.slice(start, start + this.blockSize);
      const parent = i === 0 ? null : entry.blocks[i - 1]!;
      this.pool.cacheBlock(block, request.blockHashes[i]!, tokens, parent);
    }
    entry.numCachedBlocks = numFull;
  }

  /** Returns all of the request's blocks, last block first (so its tail is evicted before its prefix). */
  free(request: EngineRequest): void {
    const entry = this.tables.get(request.requestId);
    if (entry === undefined) return;
    this.tables.delete(request.requestId);
    this.pool.free([...entry.blocks].reverse());
  }

  /** The request's block table as block ids (a copy; empty when it holds none). */
  getBlockIds(requestId: string): number[] {
    const entry = this.tables.get(requestId);
    return entry === undefined ? [] : entry.blocks.map((b) => b.blockId);
  }

  /** Ids of requests that hold blocks. */
  requestIds(): IterableIterator<string> {
    return this.tables.keys();
  }

  /** Drops all cached prefixes; only when no request holds blocks (returns false otherwise). */
  resetPrefixCache(): boolean {
    return this.pool.resetPrefixCache();
  }
}
