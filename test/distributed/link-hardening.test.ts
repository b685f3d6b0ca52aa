// Hostile peers on a rank's data port (issue 10, finding 6): a stranger that never completed the handshake
// cannot make the rank allocate (a 4 GiB frame announcement closes the connection), and even an
// authenticated peer is bounded: no frame larger than the group's chunk size, and frames sent ahead of
// their receive are buffered only up to a bound (then TCP flow control holds the sender back).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { connectCommunicator } from '../../src/distributed/connect.js';
import { createLoopbackTcpGroup, type TcpGroupDescriptor } from '../../src/distributed/group.js';
import { encodeHeader, FRAME_HEADER_BYTES, FrameType } from '../../src/distributed/tcp-link.js';

/** Dials `port` on loopback until it accepts (the rank starts listening a little after it is started). */
async function dialUntilOpen(port: number, timeoutMs = 10_000): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const socket = await new Promise<Socket | null>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(null));
    });
    if (socket) return socket;
    if (Date.now() > deadline) throw new Error(`port ${port} never opened`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface StreamResult {
  readonly closedByRank: boolean;
  readonly bytesWritten: number;
}

/**
 * Writes `total` bytes (after `head`) to `socket` in 1 MiB pieces, waiting for TCP to drain between them,
 * until done, or the rank closes the connection, or a write waits longer than `stallMs`.
 */
async function stream(socket: Socket, head: Buffer, total: number, stallMs: number): Promise<StreamResult> {
  let closed = false;
  socket.on('error', () => {});
  socket.on('data', () => {}); // read (and drop) what the rank says, so its end arrives
  socket.resume();
  // The rank either destroys the connection or ends it (after telling an authenticated peer why).
  for (const event of ['close', 'end']) {
    socket.once(event, () => {
      closed = true;
    });
  }
  const piece = Buffer.alloc(1 << 20, 0x41);
  socket.write(head);
  let written = 0;
  while (written < total && !closed) {
    const drained = socket.write(piece);
    written += piece.length;
    if (!drained) {
      const ok = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), stallMs);
        const done = () => {
          clearTimeout(timer);
          resolve(true);
        };
        socket.once('drain', done);
        socket.once('close', done);
        socket.once('end', done);
      });
      if (!ok) break;
    }
  }
  // Give a close that is under way a moment to arrive.
  await new Promise((r) => setTimeout(r, 200));
  return { closedByRank: closed, bytesWritten: written };
}

/** Reads one Duet frame (header and payload) from `socket`. */
function readFrame(socket: Socket): Promise<{ type: number; payload: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < FRAME_HEADER_BYTES) return;
      const length = buf.readUInt32LE(8);
      if (buf.length < FRAME_HEADER_BYTES + length) return;
      socket.off('data', onData);
      socket.pause();
      resolve({
        type: buf.readUInt8(4),
        payload: buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length),
      });
    };
    socket.on('data', onData);
    socket.resume();
    socket.once('close', () => reject(new Error('closed before a frame arrived')));
  });
}

/** The header of a data frame of the first collective, announcing `length` bytes. */
function dataHeader(length: number): Buffer {
  return encodeHeader({ type: FrameType.data, kind: 1, step: 0, seq: 1, chunk: 0, length });
}

function controlFrame(type: number, body: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(body));
  return Buffer.concat([
    encodeHeader({ type, kind: 0, step: 0, seq: 0, chunk: 0, length: payload.length }),
    payload,
  ]);
}

/** Completes the handshake with rank 0 as rank 1 of `group` (the test holds the link key). */
async function handshakeAsRank1(group: TcpGroupDescriptor): Promise<Socket> {
  const port = (group.peers[0] as { port: number }).port;
  const socket = await dialUntilOpen(port);
  const challenge = await readFrame(socket);
  assert.equal(challenge.type, FrameType.challenge, 'the acceptor opens with a challenge');
  const nq = (JSON.parse(challenge.payload.toString()) as { nonce: string }).nonce;
  const nonce = 'ab'.repeat(32);
  const mac = createHmac('sha256', group.linkKey)
    .update(JSON.stringify(['hello', nq, group.groupId, 2, 1, nonce]))
    .digest('hex');
  socket.write(
    controlFrame(FrameType.hello, { protocol: 2, groupId: group.groupId, worldSize: 2, rank: 1, nonce, mac }),
  );
  const welcome = await readFrame(socket);
  assert.equal(welcome.type, FrameType.welcome);
  assert.equal((JSON.parse(welcome.payload.toString()) as { ok?: boolean }).ok, true);
  return socket;
}

test('finding 6: a raw socket announcing a 4 GiB frame without a handshake is closed and the rank does not grow', async () => {
  const group = await createLoopbackTcpGroup(2);
  const rank0 = connectCommunicator(group, 0, { connectTimeoutMs: 30_000, timeoutMs: 30_000 });
  const port = (group.peers[0] as { port: number }).port;
  const attacker = await dialUntilOpen(port);
  const header = dataHeader(0xffff_ffff);
  const rssBefore = process.memoryUsage().rss;
  // 256 MiB of frame body: a rank that accepted the frame would hold it all (the rank runs in this process).
  const result = await stream(attacker, header, 256 << 20, 3000);
  const grewMiB = (process.memoryUsage().rss - rssBefore) / (1 << 20);
  assert.ok(
    result.closedByRank,
    `the rank kept the connection open (${result.bytesWritten >> 20} MiB written)`,
  );
  // Tolerance 64 MiB: the test's own 1 MiB write buffer, socket buffers and GC noise, far below the 256 MiB
  // an accepted frame would have taken.
  assert.ok(grewMiB < 64, `the process grew by ${grewMiB.toFixed(0)} MiB`);

  // The group still forms with the real rank 1 and works.
  const rank1 = await connectCommunicator(group, 1, { connectTimeoutMs: 30_000, timeoutMs: 30_000 });
  const comm0 = await rank0;
  try {
    const a = new Float32Array([1, 2]);
    const b = new Float32Array([10, 20]);
    await Promise.all([comm0.allReduce(a).wait(), rank1.allReduce(b).wait()]);
    assert.deepEqual([...a], [11, 22]);
    assert.deepEqual([...b], [11, 22]);
  } finally {
    await Promise.all([comm0.close(), rank1.close()]);
  }
});

test('finding 6: a hello that does not know the link key is refused before any data frame is read', async () => {
  const group = await createLoopbackTcpGroup(2);
  const rank0 = connectCommunicator(group, 0, { connectTimeoutMs: 3000 });
  const socket = await dialUntilOpen((group.peers[0] as { port: number }).port);
  const challenge = await readFrame(socket);
  assert.equal(challenge.type, FrameType.challenge);
  // The plaintext group id is not enough: the mac is made with a guessed key.
  const forged = createHmac('sha256', 'guess').update('x').digest('hex');
  socket.write(
    controlFrame(FrameType.hello, {
      protocol: 2,
      groupId: group.groupId,
      worldSize: 2,
      rank: 1,
      nonce: 'cd'.repeat(32),
      mac: forged,
    }),
  );
  const answer = await readFrame(socket);
  assert.match(JSON.parse(answer.payload.toString()).error, /does not authenticate/);
  socket.destroy();
  await assert.rejects(rank0, /ranks \[1\] did not connect/);
});

test('finding 6: an authenticated peer may not send a frame larger than the group chunk size', async () => {
  const group = await createLoopbackTcpGroup(2, { chunkBytes: 64 * 1024 });
  const rank0 = connectCommunicator(group, 0, { connectTimeoutMs: 10_000, timeoutMs: 10_000 });
  const socket = await handshakeAsRank1(group);
  const comm0 = await rank0;
  try {
    const header = dataHeader(64 * 1024 + 4);
    const result = await stream(socket, header, 16 << 20, 3000);
    assert.ok(result.closedByRank, 'the oversized frame closed the link');
    await assert.rejects(comm0.allReduce(new Float32Array(4)).wait(), /exceeds the group's chunk size 65536/);
  } finally {
    socket.destroy();
    await comm0.close();
  }
});

test('finding 6: frames sent ahead of any receive are buffered only up to a bound', async () => {
  const chunkBytes = 64 * 1024;
  const group = await createLoopbackTcpGroup(2, { chunkBytes });
  const rank0 = connectCommunicator(group, 0, { connectTimeoutMs: 10_000, timeoutMs: 30_000 });
  const socket = await handshakeAsRank1(group);
  const comm0 = await rank0;
  try {
    // Well-formed frames of the largest allowed size, back to back, that rank 0 never posts a receive for.
    const frame = Buffer.concat([dataHeader(chunkBytes), Buffer.alloc(chunkBytes)]);
    socket.on('error', () => {});
    let written = 0;
    for (;;) {
      if (written >= 256 << 20) break;
      written += frame.length;
      if (!socket.write(frame)) {
        const drained = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 1500);
          socket.once('drain', () => {
            clearTimeout(timer);
            resolve(true);
          });
        });
        if (!drained) break;
      }
    }
    // Rank 0 keeps 16 chunks (1 MiB) and stops reading; what else was accepted sits in the kernel's
    // socket buffers (a few MiB on loopback). 32 MiB is a generous bound on both, far below the 256 MiB
    // an unbounded buffer would take.
    assert.ok(written < 32 << 20, `rank 0 accepted ${written >> 20} MiB of early frames`);
  } finally {
    socket.destroy();
    await comm0.close();
  }
});
