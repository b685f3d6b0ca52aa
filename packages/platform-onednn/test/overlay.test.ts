// overlay(): members of the overrides answer from there, every other member — including one the base
// gains that the overrides never heard of, as Duet's contract grows — from the base, bound to it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { overlay } from '../dist/overlay.js';

class Base {
  count = 0;
  constructor(readonly name: string) {}
  bump(): number {
    return ++this.count;
  }
  who(): string {
    return `base ${this.name}`;
  }
}

describe('overlay', () => {
  it('answers overridden members from the overrides and the rest from the base, bound to it', () => {
    const base = new Base('cpu');
    const o = overlay<Base>(base, { name: 'onednn', who: () => 'native' });
    assert.equal(o.name, 'onednn');
    assert.equal(o.who(), 'native');
    const bump = o.bump;
    assert.equal(bump(), 1, 'a detached base method still runs on the base');
    assert.equal(base.count, 1);
    assert.equal(o.count, 1);
    assert.ok(!(o instanceof Base), 'not mistaken for the base class');
    assert.ok('bump' in o && 'name' in o);
  });

  it('passes on members the base gains later', () => {
    const base = new Base('cpu') as Base & { later?: () => string };
    const o = overlay(base, { name: 'x' });
    base.later = () => 'added';
    assert.equal(o.later?.(), 'added');
  });
});
