/** Linear-time regular expressions for user-supplied patterns. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileSafeRegex, type SafeRegex } from './safe-regex.ts';

function ok(src: string): SafeRegex {
  const re = compileSafeRegex(src);
  if ('error' in re) assert.fail(`${src}: ${re.error}`);
  return re;
}

test('patterns match the whole input', () => {
  const re = ok('/api/v[0-9]+');
  assert.equal(re.test('/api/v1'), true);
  assert.equal(re.test('/api/v12'), true);
  assert.equal(re.test('/api/v1/x'), false);
  assert.equal(re.test('x/api/v1'), false);
  // Alternation stays inside the anchors.
  const alt = ok('a|b');
  assert.equal(alt.test('a'), true);
  assert.equal(alt.test('ab'), false);
  assert.equal(ok('.*\\.(png|jpg)').test('/img/x.png'), true);
  assert.equal(ok('(?<ver>v\\d)/\\w+').test('v2/users'), true);
});

test('catastrophic backtracking patterns run in linear time', { timeout: 20_000 }, () => {
  const re = ok('(a+)+$');
  assert.equal(re.test(`${'a'.repeat(50)}!`), false);
  assert.equal(re.test('a'.repeat(50)), true);
  const nested = ok('(x+x+)+y');
  assert.equal(nested.test('x'.repeat(10_000)), false);
  assert.equal(ok('(a|aa)*b').test('a'.repeat(5_000)), false);
});

test('backreferences and lookaheads are reported as unsupported', () => {
  for (const src of ['(a)\\1', '(?=a)a', 'x(?!y)', '(?<n>a)\\k<n>']) {
    const re = compileSafeRegex(src);
    assert.ok('error' in re, src);
    assert.match(re.error, /unsupported/);
  }
});

test('syntax errors and oversized patterns are errors, never throws', () => {
  for (const src of ['(', 'a)|(b', '[z-a]', '*']) {
    const re = compileSafeRegex(src);
    assert.ok('error' in re, src);
    assert.match(re.error, /invalid regular expression/);
  }
  const big = compileSafeRegex('a'.repeat(5000));
  assert.ok('error' in big);
});
