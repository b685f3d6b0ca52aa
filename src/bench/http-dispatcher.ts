// A fetch dispatcher without undici's 300 s header and body timeouts. Node's fetch gives up when a server
// takes more than 5 minutes to send response headers or between two body chunks, which a loaded CPU server
// queueing hundreds of long prompts can do; vLLM's client allows 6 hours. Node bundles undici but does not
// export it, so the Agent class is taken from fetch's own global dispatcher (created by a first fetch of a
// data: URL). If that is unavailable, the default dispatcher (with its timeouts) is used.

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

/** A dispatcher that can be closed when the benchmark ends. */
export interface ClosableDispatcher {
  close(): Promise<void>;
}

interface AgentClass {
  new (options: Record<string, unknown>): ClosableDispatcher;
}

/**
 * An undici Agent with the header and body timeouts off (`undefined` when this Node has no reachable
 * Agent class); pass it as fetch's `dispatcher` option.
 */
export async function createLongLivedDispatcher(): Promise<ClosableDispatcher | undefined> {
  try {
    await fetch('data:,');
    const current = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER];
    if (current === null || typeof current !== 'object') return undefined;
    const Agent = (current as object).constructor as AgentClass;
    if (typeof Agent !== 'function' || Agent.name !== 'Agent') return undefined;
    return new Agent({ headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 60_000 });
  } catch {
    return undefined;
  }
}
