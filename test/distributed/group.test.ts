// Group descriptors: validation of world size, chunk size and peer addresses; descriptors survive
// structured cloning (what postMessage / workerData do) with their shared buffers still shared.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createLoopbackTcpGroup,
  createSharedMemoryGroup,
  createTcpGroup,
  findFreePorts,
  InvalidGroupError,
} from '../../src/distributed/group.js';

test('createSharedMemoryGroup validates its sizes', () => {
  assert.throws(() => createSharedMemoryGroup(0), InvalidGroupError);
  assert.throws(() => createSharedMemoryGroup(2.5), /world size must be an integer in 1..1024, got 2.5/);
  assert.throws(() => createSharedMemoryGroup(2, { chunkBytes: 1000 }), /multiple of 64 between 4096/);
  assert.throws(
    () => createSharedMemoryGroup(128, { chunkBytes: 4096 }),
    /less than 64 bytes per rank for 128 ranks/,
  );
  const g = createSharedMemoryGroup(3, { chunkBytes: 8192 });
  assert.equal(g.kind, 'shm');
  assert.equal(g.mailboxes.length, 3);
  const clone = structuredClone(g);
  new Int32Array(clone.control)[0] = 42;
  assert.equal(new Int32Array(g.control)[0], 42, 'a cloned descriptor shares its memory');
});

test('createTcpGroup validates peers and names the group', async () => {
  assert.throws(() => createTcpGroup([]), /world size must be an integer/);
  assert.throws(() => createTcpGroup([{ host: 'a', port: 0 }]), /peer 0 has port 0/);
  assert.throws(
    () =>
      createTcpGroup([
        { host: 'a', port: 5 },
        { host: 'a', port: 5 },
      ]),
    /peer 1 repeats address a:5/,
  );
  const g = createTcpGroup([{ host: '198.18.0.1', port: 29500 }, { path: '/tmp/x.sock' }], { groupId: 'g' });
  assert.deepEqual(JSON.parse(JSON.stringify(g)), g, 'a TCP descriptor is plain JSON');
  assert.equal(g.groupId, 'g');
  const loop = await createLoopbackTcpGroup(3);
  assert.equal(new Set(loop.peers.map((p) => ('port' in p ? p.port : 0))).size, 3);
  assert.notEqual(loop.groupId, (await createLoopbackTcpGroup(3)).groupId);
  assert.equal((await findFreePorts(2)).length, 2);
});
