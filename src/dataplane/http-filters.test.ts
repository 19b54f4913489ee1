/** Redirect and rewrite arithmetic (Gateway API HTTPRoute filter tables), header modifiers. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HttpFilter } from '../table/types.ts';
import {
  applyFilters,
  type HeaderList,
  modifyHeaders,
  modifyPath,
  type RequestPlan,
} from './http-filters.ts';

test('ReplacePrefixMatch keeps the segment boundary (spec table)', () => {
  const cases: [string, string, string, string][] = [
    // prefix (as matched, trailing slash trimmed), request path, replacement, result
    ['/foo', '/foo/bar', '/xyz', '/xyz/bar'],
    ['/foo', '/foo/bar', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo', '/foo/', '/xyz', '/xyz/'],
    ['/foo', '/foo/', '/xyz/', '/xyz/'],
    ['/strip-prefix', '/strip-prefix/three', '/', '/three'],
    ['/strip-prefix', '/strip-prefix', '/', '/'],
    ['', '/a/b', '/x', '/x/a/b'],
  ];
  for (const [prefix, path, value, want] of cases) {
    assert.equal(
      modifyPath({ type: 'ReplacePrefixMatch', value }, path, prefix),
      want,
      `${prefix} ${path} ${value}`,
    );
  }
  assert.equal(modifyPath({ type: 'ReplaceFullPath', value: '/one' }, '/full/path', '/full'), '/one');
});

function plan(over: Partial<RequestPlan> = {}): RequestPlan {
  return {
    authority: 'example.org:8080',
    path: '/a/b',
    search: '?q=1',
    headers: new Map(),
    responseMods: [],
    mirrors: [],
    ...over,
  };
}

function redirectTo(
  f: Partial<Extract<HttpFilter, { type: 'RequestRedirect' }>>,
  scheme: 'http' | 'https',
  port: number,
) {
  const filter: HttpFilter = {
    type: 'RequestRedirect',
    scheme: null,
    hostname: null,
    port: null,
    path: null,
    statusCode: 302,
    ...f,
  };
  return applyFilters([filter], plan({ authority: 'example.org' }), {
    scheme,
    localPort: port,
    prefix: '/a',
  });
}

test('redirect ports: well-known port of a new scheme, else the listener port; default ports left out', () => {
  assert.equal(
    redirectTo({ scheme: 'https', statusCode: 301 }, 'http', 80)?.location,
    'https://example.org/a/b?q=1',
  );
  assert.equal(redirectTo({ scheme: 'https' }, 'http', 8080)?.location, 'https://example.org/a/b?q=1');
  assert.equal(redirectTo({}, 'http', 8080)?.location, 'http://example.org:8080/a/b?q=1');
  assert.equal(redirectTo({}, 'http', 80)?.location, 'http://example.org/a/b?q=1');
  assert.equal(
    redirectTo({ port: 443, scheme: 'https' }, 'http', 80)?.location,
    'https://example.org/a/b?q=1',
  );
  assert.equal(
    redirectTo({ port: 8443, scheme: 'https' }, 'http', 80)?.location,
    'https://example.org:8443/a/b?q=1',
  );
  assert.equal(redirectTo({ port: 80 }, 'https', 443)?.location, 'https://example.org:80/a/b?q=1');
  assert.equal(
    redirectTo({ hostname: 'other.org', path: { type: 'ReplacePrefixMatch', value: '/z' } }, 'https', 443)
      ?.location,
    'https://other.org/z/b?q=1',
  );
  assert.equal(redirectTo({ statusCode: 301 }, 'http', 80)?.status, 301);
});

test('header modifiers: set replaces, add appends a line, remove drops; names case-insensitive', () => {
  const h: HeaderList = new Map([
    ['x-a', ['1']],
    ['x-b', ['2']],
    ['x-c', ['3']],
  ]);
  modifyHeaders(h, {
    set: [{ name: 'X-A', value: 'one' }],
    add: [
      { name: 'X-B', value: 'two' },
      { name: 'X-New', value: 'n' },
    ],
    remove: ['X-C'],
  });
  assert.deepEqual(Object.fromEntries(h), { 'x-a': ['one'], 'x-b': ['2', 'two'], 'x-new': ['n'] });
});

test('URLRewrite changes the authority and the path; filters run in order', () => {
  const p = plan();
  const r = applyFilters(
    [
      { type: 'URLRewrite', hostname: 'internal.svc', path: { type: 'ReplacePrefixMatch', value: '/v2' } },
      { type: 'RequestHeaderModifier', set: [{ name: 'x-r', value: '1' }], add: [], remove: [] },
      { type: 'ResponseHeaderModifier', set: [], add: [], remove: ['server'] },
    ],
    p,
    { scheme: 'http', localPort: 80, prefix: '/a' },
  );
  assert.equal(r, null);
  assert.equal(p.authority, 'internal.svc');
  assert.equal(p.path, '/v2/b');
  assert.deepEqual(p.headers.get('x-r'), ['1']);
  assert.equal(p.responseMods.length, 1);
});
