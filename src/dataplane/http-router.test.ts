/** HTTP route matching: hosts, paths, headers, query, method, precedence, listener choice. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HttpRule } from '../table/types.ts';
import {
  chooseListener,
  compileRouter,
  type MatchInput,
  normalizeHost,
  normalizePath,
  pathHasPrefix,
} from './http-router.ts';
import { httpListener, rule, vhost } from './http-testkit.ts';

function req(path: string, over: Partial<Omit<MatchInput, 'query'>> & { query?: string } = {}): MatchInput {
  const { query, ...rest } = over;
  return {
    host: 'example.com',
    path,
    method: 'GET',
    headers: {},
    ...rest,
    query: new URLSearchParams(query ?? ''),
  };
}

function named(name: string, match: Parameters<typeof rule>[0]): HttpRule {
  return rule(match, [], { name });
}

test('PathPrefix matches on segment boundaries and ignores a trailing slash in the prefix', () => {
  assert.equal(pathHasPrefix('/foo', '/foo'), true);
  assert.equal(pathHasPrefix('/foo/', '/foo'), true);
  assert.equal(pathHasPrefix('/foo/bar', '/foo'), true);
  assert.equal(pathHasPrefix('/foobar', '/foo'), false);
  const r = compileRouter([
    vhost('*', [named('slash', { path: { type: 'PathPrefix', value: '/v1/' } }), named('root', {})]),
  ]);
  assert.equal(r.match(req('/v1'))?.rule.route.name, 'slash');
  assert.equal(r.match(req('/v1/x'))?.rule.route.name, 'slash');
  assert.equal(r.match(req('/v1x'))?.rule.route.name, 'root');
  assert.equal(r.match(req('/anything'))?.rule.route.name, 'root');
  assert.equal(r.match(req('/v1/x'))?.prefix, '/v1');
  assert.equal(r.match(req('/x'))?.prefix, '');
});

test('Exact and RegularExpression paths; first matching rule wins', () => {
  const r = compileRouter([
    vhost('*', [
      named('exact', { path: { type: 'Exact', value: '/one' } }),
      named('regex', { path: { type: 'RegularExpression', value: '/u/[0-9]+' } }),
      named('bad-regex', { path: { type: 'RegularExpression', value: '(a)\\1' } }),
      named('prefix', { path: { type: 'PathPrefix', value: '/one' } }),
    ]),
  ]);
  assert.equal(r.match(req('/one'))?.rule.route.name, 'exact');
  assert.equal(r.match(req('/one/'))?.rule.route.name, 'prefix');
  assert.equal(r.match(req('/u/42'))?.rule.route.name, 'regex');
  assert.equal(r.match(req('/u/42/x')), null);
  assert.equal(r.match(req('/aa')), null);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0]!, /bad-regex rule 0: path "\(a\)\\\\1": unsupported/);
});

test('headers (names case-insensitive), query params (names case-sensitive) and method', () => {
  const r = compileRouter([
    vhost('*', [
      named('hdr', { headers: [{ type: 'Exact', name: 'X-Version', value: 'two' }] }),
      named('hdr-re', { headers: [{ type: 'RegularExpression', name: 'x-env', value: 'stag(e|ing)' }] }),
      named('query', { queryParams: [{ type: 'Exact', name: 'Mode', value: 'fast' }] }),
      named('query-re', { queryParams: [{ type: 'RegularExpression', name: 'id', value: '[0-9]{3}' }] }),
      named('post', { method: 'POST' }),
      named('all', {
        method: 'PUT',
        headers: [{ type: 'Exact', name: 'a', value: '1' }],
        queryParams: [{ type: 'Exact', name: 'b', value: '2' }],
      }),
      named('default', {}),
    ]),
  ]);
  const name = (m: MatchInput) => r.match(m)?.rule.route.name;
  assert.equal(name(req('/', { headers: { 'x-version': 'two' } })), 'hdr');
  assert.equal(name(req('/', { headers: { 'x-version': 'TWO' } })), 'default');
  assert.equal(name(req('/', { headers: { 'x-env': 'staging' } })), 'hdr-re');
  assert.equal(name(req('/', { headers: { 'x-env': 'prod' } })), 'default');
  assert.equal(name(req('/', { query: 'Mode=fast' })), 'query');
  assert.equal(name(req('/', { query: 'mode=fast' })), 'default');
  assert.equal(name(req('/', { query: 'Mode=fast%20' })), 'default');
  assert.equal(name(req('/', { query: 'x=1&id=123' })), 'query-re');
  assert.equal(name(req('/', { query: 'id=1234' })), 'default');
  assert.equal(name(req('/', { method: 'POST' })), 'post');
  assert.equal(name(req('/', { method: 'PUT', headers: { a: '1' }, query: 'b=2' })), 'all');
  assert.equal(name(req('/', { method: 'PUT', headers: { a: '1' } })), 'default');
});

test('virtual hosts: exact, then wildcard (one or more labels, longest first), then *; misses fall through', () => {
  const r = compileRouter([
    vhost('api.example.com', [named('exact', { path: { type: 'PathPrefix', value: '/api' } })]),
    vhost('*.a.example.com', [named('long-wild', {})]),
    vhost('*.example.com', [named('wild', {})]),
    vhost('*', [named('any', { path: { type: 'Exact', value: '/only' } })]),
  ]);
  const name = (host: string, path = '/') => r.match(req(path, { host }))?.rule.route.name ?? null;
  assert.equal(name('api.example.com', '/api/x'), 'exact');
  // A path the exact host's routes lack is served by the wildcard route (hostname precedence, then rules).
  assert.equal(name('api.example.com', '/other'), 'wild');
  assert.equal(name('x.y.example.com'), 'wild');
  assert.equal(name('b.a.example.com'), 'long-wild');
  assert.equal(name('c.b.a.example.com'), 'long-wild');
  assert.equal(name('example.com'), null);
  assert.equal(name('example.com', '/only'), 'any');
  assert.equal(name('other.org', '/only'), 'any');
});

test('path and host normalization', () => {
  assert.equal(normalizePath('/a/./b/../c'), '/a/c');
  assert.equal(normalizePath('/a/%2e%2e/admin'), '/admin');
  assert.equal(normalizePath('/../../etc'), '/etc');
  assert.equal(normalizePath('/a/b/..'), '/a/');
  assert.equal(normalizePath('/%7Euser/%41%2F'), '/~user/A%2F');
  assert.equal(normalizePath('/plain//path'), '/plain//path');
  assert.equal(normalizeHost('Example.COM:8080'), 'example.com');
  assert.equal(normalizeHost('example.com.'), 'example.com');
  assert.equal(normalizeHost('[::1]:80'), '[::1]');
});

test('plain HTTP: the most specific listener by Host wins, with no fallback (listener isolation)', () => {
  const any = httpListener('empty', null, []);
  const wild = httpListener('wild', '*.example.com', []);
  const wildFoo = httpListener('wild-foo', '*.foo.example.com', []);
  const abc = httpListener('abc', 'abc.foo.example.com', []);
  const all = [abc, wildFoo, wild, any];
  const pick = (host: string) => chooseListener('http', any, all, host).listener?.name ?? null;
  assert.equal(pick('abc.foo.example.com'), 'abc');
  assert.equal(pick('x.foo.example.com'), 'wild-foo');
  assert.equal(pick('bar.example.com'), 'wild');
  assert.equal(pick('bar.com'), 'empty');
  const noAny = [abc, wild];
  assert.equal(chooseListener('http', abc, noAny, 'other.org').reject, 'no-listener');
});

test('HTTPS: a Host that belongs to another listener than the SNI one is misdirected (421)', () => {
  // The HTTPRouteHTTPSListenerDetectMisdirectedRequests matrix (conformance v1.6), by listener.
  const https = httpListener('https', null, [], 'terminate-https');
  const second = httpListener('second', 'second-example.org', [], 'terminate-https');
  const wild = httpListener('wild', '*.wildcard.org', [], 'terminate-https');
  const fourth = httpListener('fourth', 'fourth-example.wildcard.org', [], 'terminate-https');
  const all = [second, fourth, wild, https];
  const sniListener = (sni: string) => chooseListener('http', https, all, sni).listener!;
  const cases: [string, string, string][] = [
    ['example.org', 'example.org', 'https'],
    ['example.org', 'second-example.org', 'misdirected'],
    ['example.org', 'unknown-example.org', 'https'],
    ['second-example.org', 'second-example.org', 'second'],
    ['second-example.org', 'example.org', 'misdirected'],
    ['second-example.org', 'unknown-example.org', 'misdirected'],
    ['third-example.wildcard.org', 'fith-example.wildcard.org', 'wild'],
    ['third-example.wildcard.org', 'fourth-example.wildcard.org', 'misdirected'],
    ['third-example.wildcard.org', 'unknown-example.org', 'misdirected'],
    ['fourth-example.wildcard.org', 'fourth-example.wildcard.org', 'fourth'],
    ['fourth-example.wildcard.org', 'fith-example.wildcard.org', 'misdirected'],
    ['unknown-example.org', 'example.org', 'https'],
  ];
  for (const [sni, host, want] of cases) {
    const c = chooseListener('https', sniListener(sni), all, host);
    assert.equal(c.reject ?? c.listener.name, want, `${sni} / ${host}`);
  }
  assert.equal(chooseListener('https', second, [], 'x').listener, second);
});
