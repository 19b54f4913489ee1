/** Hostname intersection and matching, table-driven from the spec's table and the conformance cases. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareSpecificity, hostnameMatches, hostnamesOverlap, intersectHostname } from './hostnames.ts';

test('intersectHostname follows the spec table', () => {
  const cases: [string | null, string, string | null][] = [
    [null, 'abc.example.com', 'abc.example.com'],
    [null, '*.com', '*.com'],
    ['abc.example.com', 'abc.example.com', 'abc.example.com'],
    ['abc.example.com', 'def.example.com', null],
    ['*.example.com', 'abc.example.com', 'abc.example.com'],
    ['*.example.com', 'a.b.example.com', 'a.b.example.com'],
    ['*.example.com', 'example.com', null],
    ['abc.example.com', '*.example.com', 'abc.example.com'],
    ['*.example.com', '*.com', '*.example.com'],
    ['*.com', '*.example.com', '*.example.com'],
    ['*.example.com', '*.example.com', '*.example.com'],
    ['*.example.com', '*.different.com', null],
    ['www.example.com', '*.nomatch.com', null],
    ['*.wildcard.org', '*.org', '*.wildcard.org'],
  ];
  for (const [l, r, want] of cases) assert.equal(intersectHostname(l, r), want, `${l} ∩ ${r}`);
});

test('hostnameMatches: wildcards cover one or more labels, never the bare suffix', () => {
  assert.ok(hostnameMatches('*.com', 'other.example.com'));
  assert.ok(hostnameMatches('*.example.com', 'a.example.com'));
  assert.ok(!hostnameMatches('*.example.com', 'example.com'));
  assert.ok(!hostnameMatches('*.example.com', 'aexample.com'));
  assert.ok(hostnameMatches(null, 'anything'));
  assert.ok(!hostnameMatches('a.example.com', 'b.example.com'));
});

test('compareSpecificity orders exact, longest wildcard, catch-all', () => {
  const sorted = [null, '*.com', 'abc.example.com', '*.example.com'].sort(compareSpecificity);
  assert.deepEqual(sorted, ['abc.example.com', '*.example.com', '*.com', null]);
});

test('hostnamesOverlap', () => {
  assert.ok(hostnamesOverlap('*.example.com', 'foo.example.com'));
  assert.ok(hostnamesOverlap(null, 'x'));
  assert.ok(!hostnamesOverlap('a.com', 'b.com'));
});
