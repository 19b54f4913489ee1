/** Endpoint health: passive marking and expiry, active TCP checks, state kept across syncs. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import type { HealthCheck } from '../table/types.ts';
import { HealthRegistry, type WatchedEndpoint } from './health.ts';

function watch(entries: [string, number, HealthCheck | null][]): Map<string, WatchedEndpoint> {
  return new Map(entries.map(([a, p, check]) => [`${a}:${p}`, { endpoint: { address: a, port: p }, check }]));
}

test('passive: unhealthy after threshold consecutive failures, success resets, ejection expires', () => {
  let now = 1000;
  const changes: string[] = [];
  const h = new HealthRegistry({
    ejectMs: 500,
    now: () => now,
    onChange: (e, ok) => changes.push(`${e}=${ok}`),
  });
  h.sync(watch([['10.0.0.1', 1, null]]));
  const k = '10.0.0.1:1';
  h.reportFailure(k, 2, 'ECONNREFUSED');
  assert.equal(h.isHealthy(k), true);
  h.reportSuccess(k);
  h.reportFailure(k, 2, 'ECONNREFUSED');
  assert.equal(h.isHealthy(k), true);
  h.reportFailure(k, 2, 'ECONNREFUSED');
  assert.equal(h.isHealthy(k), false);
  assert.equal(h.snapshot()[0]?.lastError, 'ECONNREFUSED');
  now += 600;
  assert.equal(h.isHealthy(k), true);
  // Still at the threshold: one more failure ejects it again.
  h.reportFailure(k, 2, 'ECONNREFUSED');
  assert.equal(h.isHealthy(k), false);
  assert.deepEqual(changes, [`${k}=false`, `${k}=true`, `${k}=false`]);
  h.close();
});

test('sync keeps known state for endpoints still present and forgets the others', () => {
  const h = new HealthRegistry();
  h.sync(
    watch([
      ['10.0.0.1', 1, null],
      ['10.0.0.2', 2, null],
    ]),
  );
  h.reportFailure('10.0.0.1:1', 1, 'x');
  h.sync(
    watch([
      ['10.0.0.1', 1, null],
      ['10.0.0.3', 3, null],
    ]),
  );
  assert.equal(h.isHealthy('10.0.0.1:1'), false);
  assert.deepEqual(
    h
      .snapshot()
      .map((s) => s.endpoint)
      .sort(),
    ['10.0.0.1:1', '10.0.0.3:3'],
  );
  h.close();
});

test('active checks: a closed port goes unhealthy, a listening one comes back', async () => {
  const server = net.createServer((s) => s.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const check: HealthCheck = { intervalMs: 20, timeoutMs: 200, unhealthyThreshold: 2, healthyThreshold: 2 };
  const events: boolean[] = [];
  const h = new HealthRegistry({ onChange: (_e, ok) => events.push(ok) });
  const k = `127.0.0.1:${port}`;
  const waitFor = async (want: boolean) => {
    for (let i = 0; i < 200 && h.isHealthy(k) !== want; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(h.isHealthy(k), want);
  };
  try {
    await new Promise<void>((r) => server.close(() => r()));
    h.sync(watch([['127.0.0.1', port, check]]));
    await waitFor(false);
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    await waitFor(true);
    assert.deepEqual(events, [false, true]);
    assert.equal(h.snapshot()[0]?.activeCheck, true);
  } finally {
    h.close();
    server.close();
  }
});

test('HTTP checks: the status line decides (503 unhealthy, 200 healthy again), the request carries path and Host', async () => {
  const { createServer } = await import('node:http');
  let status = 503;
  const seen: string[] = [];
  const srv = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.host}`);
    res.writeHead(status).end();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  const check: HealthCheck = {
    intervalMs: 30,
    timeoutMs: 500,
    unhealthyThreshold: 1,
    healthyThreshold: 1,
    http: { path: '/healthz', host: 'api.internal', expectedStatuses: [] },
  };
  const h = new HealthRegistry();
  const k = `127.0.0.1:${port}`;
  try {
    h.sync(watch([['127.0.0.1', port, check]]));
    const until = async (want: boolean) => {
      for (let i = 0; i < 100 && h.isHealthy(k) !== want; i++) await new Promise((r) => setTimeout(r, 20));
      return h.isHealthy(k);
    };
    assert.equal(await until(false), false, '503 is unhealthy although the port accepts connections');
    assert.equal(h.snapshot()[0]?.lastError, 'HTTP 503');
    status = 200;
    assert.equal(await until(true), true);
    assert.ok(seen.includes('GET /healthz api.internal'), seen.join(', '));
  } finally {
    h.close();
    srv.close();
  }
});
