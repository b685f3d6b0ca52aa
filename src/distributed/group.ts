// Group descriptors: the serializable description of a process group that a launcher creates once and
// hands to every rank, which then calls `connectCommunicator(descriptor, rank)`. Two transports:
// shared memory between worker threads of one process (the SharedArrayBuffers travel inside the
// descriptor through postMessage / workerData), and TCP (or Unix sockets) between processes and hosts.

import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { allocateSharedControl, allocateSharedMailbox } from './shm-layout.js';

/** Default bytes per pipelined chunk (shared-memory round, TCP frame). */
export const DEFAULT_CHUNK_BYTES = 512 * 1024;

/**
 * Ranks that are worker threads of one process. Every rank reads the same SharedArrayBuffers: `control`
 * holds the synchronisation counters, `mailboxes[r]` is rank r's double-buffered chunk area. A descriptor
 * serves one group lifetime: a rank joins it once.
 */
export interface SharedMemoryGroupDescriptor {
  readonly kind: 'shm';
  readonly worldSize: number;
  /** Bytes of one mailbox chunk; large collectives are moved in rounds of this size. */
  readonly chunkBytes: number;
  readonly control: SharedArrayBuffer;
  readonly mailboxes: readonly SharedArrayBuffer[];
}

/** Where a TCP rank listens (and where the others dial it): a host and port, or a Unix socket path. */
export type TcpPeerAddress = { readonly host: string; readonly port: number } | { readonly path: string };

/**
 * Ranks in separate processes or hosts, joined by a full mesh of TCP (or Unix socket) connections.
 * Rank r listens on `peers[r]` while the group forms and dials every lower rank; the handshake checks
 * `groupId` and `worldSize`, so two groups on one network do not cross, and each side proves it knows
 * `linkKey` (an HMAC over a nonce the other side chose) before any data frame is accepted. `groupId` is a
 * name, not a secret; `linkKey` is: hand the descriptor only to the group's ranks.
 */
export interface TcpGroupDescriptor {
  readonly kind: 'tcp';
  readonly worldSize: number;
  readonly groupId: string;
  readonly peers: readonly TcpPeerAddress[];
  /** Bytes of one frame; large messages are split into frames of this size and pipelined. */
  readonly chunkBytes: number;
  /** Key (hex) the ranks authenticate each other's connections with; random unless given. */
  readonly linkKey: string;
}

export type GroupDescriptor = SharedMemoryGroupDescriptor | TcpGroupDescriptor;

/** A group description that cannot work (bad world size, peer list, chunk size). */
export class InvalidGroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidGroupError';
  }
}

function checkWorldSize(worldSize: number): void {
  if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 1024)
    throw new InvalidGroupError(`world size must be an integer in 1..1024, got ${worldSize}`);
}

function checkChunkBytes(chunkBytes: number): void {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 4096 || chunkBytes % 64 !== 0 || chunkBytes > 1 << 28)
    throw new InvalidGroupError(
      `chunkBytes must be a multiple of 64 between 4096 and 268435456, got ${chunkBytes}`,
    );
}

/** Creates a shared-memory group of `worldSize` worker-thread ranks. */
export function createSharedMemoryGroup(
  worldSize: number,
  options: { chunkBytes?: number } = {},
): SharedMemoryGroupDescriptor {
  checkWorldSize(worldSize);
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunkBytes(chunkBytes);
  // Reduce-scatter and all-to-all give each destination rank a 64-byte-aligned share of a chunk.
  if (chunkBytes / worldSize < 64)
    throw new InvalidGroupError(
      `chunkBytes ${chunkBytes} leaves less than 64 bytes per rank for ${worldSize} ranks; use at least ${64 * worldSize}`,
    );
  return {
    kind: 'shm',
    worldSize,
    chunkBytes,
    control: allocateSharedControl(worldSize),
    mailboxes: Array.from({ length: worldSize }, () => allocateSharedMailbox(chunkBytes)),
  };
}

/** Describes a TCP group over the given addresses (`peers[r]` is where rank r listens). */
export function createTcpGroup(
  peers: readonly TcpPeerAddress[],
  options: { groupId?: string; chunkBytes?: number; linkKey?: string } = {},
): TcpGroupDescriptor {
  checkWorldSize(peers.length);
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunkBytes(chunkBytes);
  const seen = new Set<string>();
  peers.forEach((p, r) => {
    const key = 'path' in p ? `unix:${p.path}` : `${p.host}:${p.port}`;
    if ('port' in p && (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535))
      throw new InvalidGroupError(`peer ${r} has port ${p.port}; a port in 1..65535 is required`);
    if (seen.has(key))
      throw new InvalidGroupError(`peer ${r} repeats address ${key}; each rank needs its own`);
    seen.add(key);
  });
  return {
    kind: 'tcp',
    worldSize: peers.length,
    groupId: options.groupId ?? randomUUID(),
    peers: peers.map((p) => ({ ...p })),
    chunkBytes,
    linkKey: options.linkKey ?? randomBytes(32).toString('hex'),
  };
}

/** Finds `count` free TCP ports on `host` (ports the OS picks; another process could still take them). */
export async function findFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, host, () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('listening server has no TCP port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** A TCP group of `worldSize` ranks on the loopback interface (for processes or threads of one host). */
export async function createLoopbackTcpGroup(
  worldSize: number,
  options: { groupId?: string; chunkBytes?: number; linkKey?: string } = {},
): Promise<TcpGroupDescriptor> {
  checkWorldSize(worldSize);
  const ports = await findFreePorts(worldSize);
  return createTcpGroup(
    ports.map((port) => ({ host: '127.0.0.1', port })),
    options,
  );
}
