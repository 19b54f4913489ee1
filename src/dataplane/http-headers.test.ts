/** Header plumbing: the flat header lists given to undici and to writeHead. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HeaderList } from './http-filters.ts';
import { downstreamResponseHeaders, toUndiciHeaderList } from './http-headers.ts';

test('response headers: hop-by-hop and Connection-listed names dropped, repeated names kept in order', () => {
  const upstream = {
    'content-type': 'text/plain',
    'set-cookie': ['a=1', 'b=2'],
    connection: 'keep-alive, x-private',
    'keep-alive': 'timeout=5',
    'x-private': 'secret',
    'x-other': undefined,
  };
  assert.deepEqual(downstreamResponseHeaders(upstream, []), [
    'content-type',
    'text/plain',
    'set-cookie',
    'a=1',
    'set-cookie',
    'b=2',
  ]);
  // A Connection value that names only hop-by-hop headers takes the shared set; another value must not see it grown.
  assert.deepEqual(downstreamResponseHeaders({ connection: 'close', 'x-private': 'p' }, []), [
    'x-private',
    'p',
  ]);
  const mods = [
    {
      set: [{ name: 'X-Set', value: 'v' }],
      add: [{ name: 'set-cookie', value: 'c=3' }],
      remove: ['content-type'],
    },
  ];
  assert.deepEqual(downstreamResponseHeaders({ 'content-type': 'a', 'set-cookie': 'a=1' }, mods), [
    'set-cookie',
    'a=1',
    'set-cookie',
    'c=3',
    'x-set',
    'v',
  ]);
});

test('request headers for undici: host first, one pair per value, a filter-set host replaces ours', () => {
  const h: HeaderList = new Map([
    ['accept', ['*/*']],
    ['x-forwarded-for', ['10.0.0.1, 127.0.0.1']],
    ['x-multi', ['1', '2']],
  ]);
  assert.deepEqual(toUndiciHeaderList(h, 'example.org:8443'), [
    'host',
    'example.org:8443',
    'accept',
    '*/*',
    'x-forwarded-for',
    '10.0.0.1, 127.0.0.1',
    'x-multi',
    '1',
    'x-multi',
    '2',
  ]);
  h.set('host', ['rewritten.example']);
  assert.deepEqual(toUndiciHeaderList(h, 'example.org:8443').slice(0, 4), [
    'host',
    'rewritten.example',
    'accept',
    '*/*',
  ]);
});
