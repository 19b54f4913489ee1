/** Upstream pools: one per endpoint and TLS setting, reused, closed when idle. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHttpEcho } from '../../test/support/echo-server.ts';
import { httpBackend } from './http-testkit.ts';
import { UpstreamPools } from './http-upstream.ts';

test('pools are shared per endpoint, kept while in use, and swept when idle', async () => {
  const echo = await startHttpEcho({ pod: 'p' });
  const pools = new UpstreamPools({ idleMs: 1000, sweepMs: 60_000 });
  try {
    const ep = { address: '127.0.0.1', port: echo.port };
    const b = httpBackend('b', [ep]);
    const key = `127.0.0.1:${echo.port}`;
    const l1 = pools.acquire(b, ep, key);
    const l2 = pools.acquire(b, ep, key);
    assert.equal(l1.pool, l2.pool);
    const tlsLease = pools.acquire(
      httpBackend('t', [ep], {
        protocol: 'https',
        tls: { serverName: 'x', caPem: null, insecureSkipVerify: true },
      }),
      ep,
      key,
    );
    assert.notEqual(tlsLease.pool, l1.pool);
    tlsLease.release();
    for (let i = 0; i < 3; i++) {
      const r = await l1.pool.request({ method: 'GET', path: `/${i}`, headers: { host: 'x' } });
      await r.body.text();
    }
    // Keep-alive: three sequential requests did not need three connections.
    assert.ok(echo.connections < 3, `${echo.connections} connections`);
    l1.release();
    l1.release(); // idempotent
    pools.sweep(Date.now() + 5000);
    assert.equal(pools.size, 1, 'still leased by l2');
    l2.release();
    pools.sweep(Date.now() + 5000);
    assert.equal(pools.size, 0);
  } finally {
    await pools.close();
    await echo.close();
  }
});

test('lease.client(): one connection per request in flight, reused once settled, closed by the sweep', async () => {
  const echo = await startHttpEcho({ pod: 'p' });
  const pools = new UpstreamPools({ idleMs: 1000, sweepMs: 60_000 });
  try {
    const ep = { address: '127.0.0.1', port: echo.port };
    const b = httpBackend('b', [ep]);
    const key = `127.0.0.1:${echo.port}`;
    const l1 = pools.acquire(b, ep, key);
    const l2 = pools.acquire(b, ep, key);
    const c1 = l1.client();
    const c2 = l2.client();
    assert.notEqual(c1, c2, 'two requests in flight never share a connection');
    for (let i = 0; i < 3; i++) {
      const r = await c1.request({ method: 'GET', path: `/${i}`, headers: { host: 'x' } });
      await r.body.text();
    }
    l1.settled();
    l1.release();
    l2.settled();
    l2.release();
    const l3 = pools.acquire(b, ep, key);
    assert.equal(l3.client(), c2, 'the most recently settled connection is taken first');
    l3.settled();
    l3.settled(); // idempotent
    l3.release();
    assert.equal(echo.connections, 1, 'three requests on one keep-alive connection');
    pools.sweep(Date.now() + 5000);
    assert.equal(pools.size, 0);
    assert.ok(c1.closed && c2.closed);
  } finally {
    await pools.close();
    await echo.close();
  }
});
