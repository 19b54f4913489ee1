/** StringTable, StringMap and NameIndex against Map, including substrings, tags, growth and non-Latin-1 keys. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HASH_START, hashRange, hashStep, NameIndex, StringMap, StringTable } from './string-table.ts';

test('StringTable: tags and ranges are part of the key, the first value stays', () => {
  const t = new StringTable<string>();
  assert.equal(t.add('a.example.com', 'exact'), true);
  assert.equal(t.add('a.example.com', 'wild', 1), true);
  assert.equal(t.add('*.b.example.com', 'wild-b', 1, 2), true);
  assert.equal(t.add('*.a.example.com', 'again', 0, 2), false);
  assert.equal(t.size, 3);
  assert.equal(t.get('a.example.com'), 'exact');
  assert.equal(t.get('a.example.com', 1), 'wild');
  assert.equal(t.get('x.b.example.com', 1, 2), 'wild-b');
  assert.equal(t.get('x.b.example.com', 0, 2), undefined);
  assert.equal(t.get('x.a.example.com', 0, 1), undefined);
  assert.equal(t.get('a.example.co'), undefined);
  assert.equal(t.has(''), false);
  t.set('', 'empty');
  t.set('a.example.com', 'replaced');
  assert.equal(t.get(''), 'empty');
  assert.equal(t.get('a.example.com'), 'replaced');
  assert.equal(t.size, 4);
});

test('StringTable: getHashed takes the state of a right-to-left pass, so suffixes need no substring', () => {
  const t = new StringTable<number>(12345);
  t.add('example.com', 7);
  const name = 'www.example.com';
  let h = t.seed;
  const states = new Map<number, number>();
  for (let i = name.length - 1; i >= 0; i--) {
    h = hashStep(h, name.charCodeAt(i));
    states.set(i, h);
  }
  assert.equal(states.get(4), hashRange(t.seed, name, 4, name.length));
  assert.equal(t.getHashed(name, 4, name.length, 0, states.get(4)!), 7);
  assert.equal(t.getHashed(name, 0, name.length, 0, states.get(0)!), undefined);
});

test('StringTable: lengths present per tag', () => {
  const t = new StringTable<number>();
  t.add('abc', 1);
  t.add('*.abcdef', 2, 1, 2);
  assert.equal(t.mayHaveLength(3, 0), true);
  assert.equal(t.mayHaveLength(3, 1), false);
  assert.equal(t.mayHaveLength(6, 1), true);
  assert.equal(t.mayHaveLength(6, 0), false);
  assert.equal(t.mayHaveLength(1000, 0), false);
  t.add('x'.repeat(1000), 3);
  assert.equal(t.mayHaveLength(1000, 0), true);
});

test('StringTable: keys in the record and in the overflow (long, or beyond Latin-1) never mix up', () => {
  const t = new StringTable<string>();
  const long = `${'a'.repeat(47)}.example.com`;
  const wide = 'ü.\u4e2d.example';
  t.add('ü.example', 'latin1');
  t.add(long, 'long');
  t.add(wide, 'wide');
  t.add('a'.repeat(48), 'exactly-inline');
  assert.equal(t.get('ü.example'), 'latin1');
  assert.equal(t.get(long), 'long');
  assert.equal(t.get(`${'a'.repeat(47)}.example.con`), undefined);
  assert.equal(t.get(wide), 'wide');
  assert.equal(t.get('ü.\u4e2e.example'), undefined);
  assert.equal(t.get('a'.repeat(48)), 'exactly-inline');
  // Same low byte as an inline key's character, but a wide code unit: must not match.
  assert.equal(t.get('\u01fc.example'), undefined);
});

test('StringTable: 50k keys grow the table and all stay findable', () => {
  const t = new StringTable<number>(HASH_START, 4);
  const n = 50_000;
  for (let i = 0; i < n; i++) assert.equal(t.add(`h${i}.bench.example`, i), true);
  for (let i = 0; i < n; i++) assert.equal(t.get(`h${i}.bench.example`), i);
  assert.equal(t.get('h50000.bench.example'), undefined);
  assert.equal(t.size, n);
});

test('StringTable: any UTF-16 code units, same answers as a Map (property)', () => {
  const key = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 6 }),
    fc.string({ minLength: 45, maxLength: 60 }),
    fc.constantFrom('a', 'A', 'ü', '\u4e2d', '\ud83d\ude00', 'a.b', ''),
  );
  fc.assert(
    fc.property(
      fc.array(fc.tuple(key, fc.integer({ min: 0, max: 1 }), fc.boolean()), { maxLength: 80 }),
      fc.array(key),
      (ops, probes) => {
        const t = new StringTable<number>(7, 1);
        const ref = new Map<string, number>();
        ops.forEach(([k, tag, replace], i) => {
          const rk = `${tag}|${k}`;
          if (replace) {
            t.set(k, i, tag);
            ref.set(rk, i);
          } else {
            assert.equal(t.add(k, i, tag), !ref.has(rk));
            if (!ref.has(rk)) ref.set(rk, i);
          }
        });
        assert.equal(t.size, ref.size);
        for (const k of [...probes, ...ops.map(([k]) => k)]) {
          for (const tag of [0, 1]) {
            assert.equal(t.get(k, tag), ref.get(`${tag}|${k}`));
            assert.equal(t.has(k, tag), ref.has(`${tag}|${k}`));
          }
        }
      },
    ),
  );
});

test('StringMap: get/has/set/size like Map', () => {
  const m = new StringMap<number>();
  m.set('a', 1).set('b', 2).set('a', 3);
  assert.equal(m.get('a'), 3);
  assert.equal(m.has('b'), true);
  assert.equal(m.has('c'), false);
  assert.equal(m.get('c'), undefined);
  assert.equal(m.size, 2);
});

test('NameIndex: by namespace and name, later set replaces', () => {
  const ix = new NameIndex<string>();
  ix.set('default', 'web', 'one');
  ix.set('prod', 'web', 'two');
  ix.set('default', 'web', 'three');
  assert.equal(ix.get('default', 'web'), 'three');
  assert.equal(ix.get('prod', 'web'), 'two');
  assert.equal(ix.get('prod', 'api'), undefined);
  assert.equal(ix.get('staging', 'web'), undefined);
});
