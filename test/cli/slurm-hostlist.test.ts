// Slurm's compressed host lists: ranges with zero padding, lists inside brackets, several brackets in one
// name, several names; malformed and over-long lists are errors saying what is wrong.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expandHostList, HostListError, MAX_HOSTS } from '../../src/cli/slurm-hostlist.js';

test('plain names, ranges, padding and lists expand in order', () => {
  assert.deepEqual(expandHostList('node1'), ['node1']);
  // Each range keeps the width of its own lower bound, as Slurm does (it writes node[01-03,07] for node07).
  assert.deepEqual(expandHostList('node[01-03,7]'), ['node01', 'node02', 'node03', 'node7']);
  assert.deepEqual(expandHostList('node[01-03,07]'), ['node01', 'node02', 'node03', 'node07']);
  assert.deepEqual(expandHostList('gpu[8-10]'), ['gpu8', 'gpu9', 'gpu10']);
  assert.deepEqual(expandHostList('gpu[08-10]'), ['gpu08', 'gpu09', 'gpu10']);
  assert.deepEqual(expandHostList('a[1-2],b,c[5]'), ['a1', 'a2', 'b', 'c5']);
  assert.deepEqual(expandHostList('rack[1-2]-n[1-2].ib'), [
    'rack1-n1.ib',
    'rack1-n2.ib',
    'rack2-n1.ib',
    'rack2-n2.ib',
  ]);
  assert.deepEqual(expandHostList(' 10.0.0.[1-2] '), ['10.0.0.1', '10.0.0.2']);
});

test('malformed lists say what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['node[1-3', /never closed/],
    ['node1-3]', /unbalanced/],
    ['node[[1]]', /unbalanced/],
    ['node[3-1]', /runs backwards/],
    ['node[a-b]', /expected numbers and lo-hi ranges, got "a-b"/],
    ['node[1,,2]', /got ""/],
    ['a,,b', /empty host name/],
    ['a,', /empty host name/],
    ['', /empty host name/],
    ['no de', /not a host name/],
    ['n$1', /not a host name/],
  ];
  for (const [list, message] of cases) {
    assert.throws(
      () => expandHostList(list),
      (e: Error) => e instanceof HostListError && message.test(e.message),
      list,
    );
  }
});

test('a list expanding past the bound is refused before it is built', () => {
  assert.equal(expandHostList(`n[1-${MAX_HOSTS}]`).length, MAX_HOSTS);
  assert.throws(() => expandHostList(`n[1-${MAX_HOSTS + 1}]`), /more than 65536 hosts/);
  assert.throws(() => expandHostList('n[1-1000][1-1000]'), /more than 65536 hosts/);
  assert.throws(() => expandHostList(`a[1-${MAX_HOSTS}],b`), /more than 65536 hosts/);
  assert.throws(() => expandHostList('n[1-999999999]'), /more than 65536 hosts/);
});
