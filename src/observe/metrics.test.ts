import assert from 'node:assert/strict';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import tls from 'node:tls';
import pino from 'pino';
import { createCA } from '../../test/support/certs.ts';
import { freePort } from '../../test/support/processes.ts';
import { startGateway } from '../cli/run.ts';
import { withDefaults } from '../dataplane/events.ts';
import { connectionRecord } from '../dataplane/testkit.ts';
import { Metrics } from './metrics.ts';

/** Sum of every sample of `name` whose labels include all of `want`. */
function sample(body: string, name: string, want: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    if (Object.entries(want).every(([k, v]) => labels[k] === v)) {
      total += Number(m[3]);
      found = true;
    }
  }
  return found ? total : Number.NaN;
}

const record = connectionRecord;

describe('Metrics from synthetic events', () => {
  it('counts connections, rejects, bytes, hello time, connect failures, health, reloads, binds', async () => {
    const m = new Metrics({ defaultMetrics: false });
    // The data plane spreads the events object and calls the hooks unbound: both must work.
    const ev = withDefaults(m);
    for (let i = 0; i < 3; i++) ev.connectionOpened('0.0.0.0:443');
    ev.helloParsed(2, 'a.example.com');
    ev.helloParsed(40, 'evil-attacker-chosen.example');
    ev.connectionClosed(record({}));
    ev.connectionClosed(record({ bytesIn: 50, bytesOut: 0, end: 'backend-closed' }));
    ev.connectionClosed(
      record({
        sni: 'evil-attacker-chosen.example',
        client: '198.51.100.7:1234',
        route: null,
        backend: null,
        endpoint: null,
        bytesIn: 517,
        bytesOut: 0,
        end: 'no-route',
      }),
    );
    ev.connectFailed('10.0.0.1:8443', 'ECONNREFUSED');
    ev.connectFailed('10.0.0.1:8443', 'ECONNREFUSED');
    ev.connectFailed('10.0.0.1:8443', 'weird code with spaces');
    ev.healthChanged('10.0.0.1:8443', false);
    ev.pgCancelRequest();
    ev.bindFailed('0.0.0.0:80', 'EACCES');
    m.reloadCompleted(true, '2026-01-02T03:04:05.000Z');
    m.reloadCompleted(false, '2026-01-02T03:05:00.000Z');

    const { type, body } = await m.scrape();
    assert.match(type, /^text\/plain/);
    assert.equal(sample(body, 'snigate_connections_accepted_total', { bind: '0.0.0.0:443' }), 3);
    assert.equal(sample(body, 'snigate_connections_active', { bind: '0.0.0.0:443' }), 0);
    assert.equal(
      sample(body, 'snigate_connections_closed_total', {
        listener: 'default/gw/tls',
        route: 'TLSRoute/default/a',
        backend: 'Service/default/a:443',
        end: 'client-closed',
      }),
      1,
    );
    assert.equal(sample(body, 'snigate_connections_closed_total', { route: '', end: 'no-route' }), 1);
    assert.equal(sample(body, 'snigate_rejects_total', { reason: 'no-route' }), 1);
    assert.equal(sample(body, 'snigate_rejects_total'), 1, 'client-closed/backend-closed are not rejects');
    assert.equal(sample(body, 'snigate_bytes_total', { direction: 'in', route: 'TLSRoute/default/a' }), 150);
    assert.equal(sample(body, 'snigate_bytes_total', { direction: 'out', route: 'TLSRoute/default/a' }), 200);
    assert.equal(sample(body, 'snigate_bytes_total', { direction: 'in', route: '' }), 517);
    assert.equal(sample(body, 'snigate_clienthello_duration_seconds_count'), 2);
    assert.equal(sample(body, 'snigate_clienthello_duration_seconds_bucket', { le: '0.0025' }), 1);
    assert.equal(sample(body, 'snigate_clienthello_duration_seconds_bucket', { le: '0.05' }), 2);
    assert.equal(
      sample(body, 'snigate_backend_connect_failures_total', {
        endpoint: '10.0.0.1:8443',
        code: 'ECONNREFUSED',
      }),
      2,
    );
    assert.equal(sample(body, 'snigate_backend_connect_failures_total', { code: 'other' }), 1);
    assert.equal(sample(body, 'snigate_endpoint_healthy', { endpoint: '10.0.0.1:8443' }), 0);
    assert.equal(sample(body, 'snigate_pg_cancel_requests_total'), 1);
    assert.equal(sample(body, 'snigate_bind_failures_total', { bind: '0.0.0.0:80', code: 'EACCES' }), 1);
    assert.equal(sample(body, 'snigate_config_reloads_total', { result: 'success' }), 1);
    assert.equal(sample(body, 'snigate_config_reloads_total', { result: 'failure' }), 1);
    assert.equal(
      sample(body, 'snigate_config_last_reload_success_timestamp_seconds'),
      Date.parse('2026-01-02T03:04:05.000Z') / 1000,
    );
    assert.equal(sample(body, 'snigate_log_lines_dropped_total'), 0);
    // Never a client-controlled label value.
    assert.doesNotMatch(body, /evil-attacker|198\.51\.100\.7|203\.0\.113\.9/);
    assert.doesNotMatch(body, /process_cpu/, 'default metrics were turned off');
  });

  it('counts HTTP requests by route and code, and what the gateway answered itself by reason', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.httpRequest({ route: 'HTTPRoute/default/api', status: 200, durationMs: 12, error: null });
    m.httpRequest({
      route: 'HTTPRoute/default/api',
      status: 403,
      durationMs: 2,
      error: 'waf-blocked: 942100 949110',
    });
    m.httpRequest({ route: null, status: 404, durationMs: 1, error: 'no-route' });
    m.httpRequest({ route: null, status: 400, durationMs: 1, error: 'Weird <script> text' });
    const text = await m.scrape().then((r) => r.body);
    assert.match(text, /snigate_http_requests_total\{route="HTTPRoute\/default\/api",code="200"\} 1/);
    assert.match(text, /snigate_http_gateway_answers_total\{reason="waf-blocked"\} 1/);
    assert.match(text, /snigate_http_gateway_answers_total\{reason="no-route"\} 1/);
    assert.match(
      text,
      /snigate_http_gateway_answers_total\{reason="other"\} 1/,
      'free text never becomes a label',
    );
    assert.ok(!text.includes('script'));
  });

  it('reads endpoint health from the live registry at scrape time, dropping removed endpoints', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.healthChanged('10.0.0.9:1', false);
    let snap = [
      { endpoint: '10.0.0.1:1', healthy: true },
      { endpoint: '10.0.0.2:1', healthy: false },
    ];
    m.setHealthSource(() => snap);
    let body = (await m.scrape()).body;
    assert.equal(sample(body, 'snigate_endpoint_healthy', { endpoint: '10.0.0.1:1' }), 1);
    assert.equal(sample(body, 'snigate_endpoint_healthy', { endpoint: '10.0.0.2:1' }), 0);
    assert.ok(Number.isNaN(sample(body, 'snigate_endpoint_healthy', { endpoint: '10.0.0.9:1' })));
    snap = [{ endpoint: '10.0.0.2:1', healthy: true }];
    body = (await m.scrape()).body;
    assert.ok(Number.isNaN(sample(body, 'snigate_endpoint_healthy', { endpoint: '10.0.0.1:1' })));
    assert.equal(sample(body, 'snigate_endpoint_healthy', { endpoint: '10.0.0.2:1' }), 1);
  });

  it('reads the fast path figures at scrape time (0 before a source is set)', async () => {
    const m = new Metrics({ defaultMetrics: false });
    let body = (await m.scrape()).body;
    assert.equal(sample(body, 'snigate_fastpath_connections'), 0);
    assert.equal(sample(body, 'snigate_fastpath_records_dropped_total'), 0);
    let stats = { connections: 3, recordsDropped: 2 };
    m.setFastPathSource(() => stats);
    body = (await m.scrape()).body;
    assert.equal(sample(body, 'snigate_fastpath_connections'), 3);
    assert.equal(sample(body, 'snigate_fastpath_records_dropped_total'), 2);
    stats = { connections: 0, recordsDropped: 2 };
    body = (await m.scrape()).body;
    assert.equal(sample(body, 'snigate_fastpath_connections'), 0);
    assert.equal(
      sample(body, 'snigate_fastpath_records_dropped_total'),
      2,
      'a counter, not summed per scrape',
    );
  });

  it('uses its own registry (two instances do not collide) and includes default process metrics', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.connectionOpened('x:1');
    assert.ok(Number.isNaN(sample((await b.scrape()).body, 'snigate_connections_accepted_total')));
    assert.match((await a.scrape()).body, /^process_cpu_user_seconds_total /m);
    assert.equal(sample((await a.scrape()).body, 'snigate_config_reloads_total', { result: 'success' }), 0);
  });
});

describe('Metrics over a real gateway (seed 000 basic)', () => {
  const work = mkdtempSync(join(tmpdir(), 'snigate-metrics-'));
  const ca = createCA('snigate metrics test');
  after(() => rmSync(work, { recursive: true, force: true }));

  it('counts exactly what N routed and M unknown-SNI connections produce', async () => {
    const pair = ca.issue({ cn: 'secure.example.com' });
    const backend = tls.createServer({ cert: pair.certPem, key: pair.keyPem }, (s) => {
      s.on('error', () => {});
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const backendPort = (backend.address() as AddressInfo).port;

    const dir = join(work, 'basic');
    cpSync(join(import.meta.dirname, '../../examples/seed-000/basic'), dir, { recursive: true });
    const bf = join(dir, 'backends.yaml');
    writeFileSync(bf, readFileSync(bf, 'utf8').replaceAll('19443', String(backendPort)));

    const gwPort = await freePort();
    const gw = await startGateway({
      files: [dir],
      address: '127.0.0.1',
      admin: '127.0.0.1:0',
      portOffset: gwPort - 443,
      watch: false,
      logger: pino({ level: process.env.SNIGATE_TEST_LOG ?? 'silent' }),
    });
    try {
      assert.ok(gw.adminUrl);
      const N = 3;
      const M = 2;
      for (let i = 0; i < N; i++) {
        const c = tls.connect({
          host: '127.0.0.1',
          port: gwPort,
          servername: 'secure.example.com',
          rejectUnauthorized: false,
        });
        await once(c, 'secureConnect');
        c.write('ping\n');
        const [d] = (await once(c, 'data')) as [Buffer];
        assert.equal(d.toString(), 'ping\n');
        c.end();
        await once(c, 'close');
      }
      for (let i = 0; i < M; i++) {
        const c = tls.connect({
          host: '127.0.0.1',
          port: gwPort,
          servername: 'unknown.example.org',
          rejectUnauthorized: false,
        });
        // The gateway closes without a TLS alert: the client sees a reset, which is the point.
        await new Promise<void>((resolve) => {
          c.on('error', () => {});
          c.on('close', () => resolve());
        });
      }

      let body = '';
      for (let i = 0; i < 100; i++) {
        body = await (await fetch(`${gw.adminUrl}/metrics`)).text();
        if (sample(body, 'snigate_connections_closed_total') === N + M) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const bind = `127.0.0.1:${gwPort}`;
      const route = 'TLSRoute/default/basic-tls-route';
      assert.equal(sample(body, 'snigate_connections_accepted_total', { bind }), N + M);
      assert.equal(sample(body, 'snigate_connections_active', { bind }), 0);
      assert.equal(sample(body, 'snigate_connections_closed_total'), N + M);
      assert.equal(
        sample(body, 'snigate_connections_closed_total', {
          listener: 'default/tls-gateway/tls-passthrough',
          route,
          backend: 'Service/default/secure-service:443',
        }),
        N,
      );
      assert.equal(sample(body, 'snigate_rejects_total', { reason: 'no-route' }), M);
      assert.equal(sample(body, 'snigate_rejects_total'), M);
      assert.equal(sample(body, 'snigate_clienthello_duration_seconds_count'), N + M);
      assert.ok(
        sample(body, 'snigate_bytes_total', { direction: 'in', route }) > N * 200,
        'ClientHellos and data were counted',
      );
      assert.ok(
        sample(body, 'snigate_bytes_total', { direction: 'out', route }) > N * 500,
        'server flights were counted',
      );
      assert.equal(sample(body, 'snigate_endpoint_healthy', { endpoint: `127.0.0.1:${backendPort}` }), 1);
      assert.ok(Number.isNaN(sample(body, 'snigate_backend_connect_failures_total')));
      assert.equal(sample(body, 'snigate_config_reloads_total', { result: 'success' }), 1);
      assert.equal(sample(body, 'snigate_config_reloads_total', { result: 'failure' }), 0);
      assert.ok(sample(body, 'snigate_config_last_reload_success_timestamp_seconds') > 1.7e9);
      assert.doesNotMatch(body, /unknown\.example\.org/);
      assert.match(body, /^process_resident_memory_bytes /m);
    } finally {
      await gw.stop(0);
      backend.close();
    }
  });
});
