// Seed 000 "Multi-Hostname TLS Routing": the legacy `rules[].matches[].snis` form is converted (with a warning)
// and each SNI reaches its own backend; --strict refuses the legacy form.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, startTcpEcho, type TcpEchoServer, tlsOutcome } from '../support/echo-server.ts';
import { type Materialized, materializeExample, runSnigate, type Snigate, snigateCli } from './helpers.ts';

const ca = createCA('e2e seed-multi-hostname CA');
let api: TcpEchoServer;
let db: TcpEchoServer;
let internal: TcpEchoServer;
let dir: Materialized;
let gw: Snigate;

before(async () => {
  const cert = (cn: string, sans: string[]) => ca.issue({ cn, sans, keyType: 'ec' });
  api = await startTcpEcho({
    pod: 'api-service-0',
    namespace: 'default',
    tls: cert('api.example.com', ['api.example.com']),
  });
  db = await startTcpEcho({
    pod: 'database-service-0',
    namespace: 'default',
    tls: cert('db.example.com', ['db.example.com']),
  });
  // Node checks wildcards RFC 6125 style (one label), so the cert names both test hosts explicitly.
  internal = await startTcpEcho({
    pod: 'internal-service-0',
    namespace: 'default',
    tls: cert('internal.example.com', ['x.internal.example.com', 'a.b.internal.example.com']),
  });
  dir = materializeExample('multi-hostname', { 19444: api.port, 19432: db.port, 19445: internal.port });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443] });
});

after(async () => {
  await gw?.stop();
  await Promise.all([api?.close(), db?.close(), internal?.close()]);
  dir?.cleanup();
  ca.cleanup();
});

const cases = [
  { sni: 'api.example.com', pod: 'api-service-0', route: 'multi-hostname-tls-0', backend: 'api-service:443' },
  {
    sni: 'db.example.com',
    pod: 'database-service-0',
    route: 'multi-hostname-tls-1',
    backend: 'database-service:5432',
  },
  {
    sni: 'x.internal.example.com',
    pod: 'internal-service-0',
    route: 'multi-hostname-tls-2',
    backend: 'internal-service:443',
  },
  // `*.internal.example.com` matches one or more labels (Gateway API hostname rules).
  {
    sni: 'a.b.internal.example.com',
    pod: 'internal-service-0',
    route: 'multi-hostname-tls-2',
    backend: 'internal-service:443',
  },
];

for (const c of cases) {
  test(`${c.sni} reaches ${c.pod}`, async () => {
    const r = await echoClient({ port: gw.port(443), tls: { servername: c.sni, ca: ca.certPem } });
    assert.equal(r.pong, 'PONG');
    assert.equal(r.isTls, true);
    assert.equal(r.test.pod, c.pod);
    assert.equal(r.test.tls?.serverName, c.sni);
    assert.equal(r.tls?.authorized, true);
    const log = await gw.waitForConnection((l) => l.sni === c.sni);
    assert.equal(log.route, `TLSRoute/default/${c.route}`);
    assert.equal(log.backend, `Service/default/${c.backend}`);
  });
}

test('internal.example.com itself does not match *.internal.example.com: rejected without alert', async () => {
  const o = await tlsOutcome({
    port: gw.port(443),
    tls: { servername: 'internal.example.com', ca: ca.certPem },
  });
  assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
});

test('the conversion was logged as a warning by `snigate run`', () => {
  const w = gw.logs().find((l) => l.code === 'legacy-tlsroute-snis');
  assert.ok(w, 'no legacy-tlsroute-snis warning in the run log');
  assert.equal(w.level, 40);
});

test('snigate validate warns legacy-tlsroute-snis and exits 0; --strict exits 1', async () => {
  const v = await snigateCli(['validate', '-f', dir.dir]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /^warning\[legacy-tlsroute-snis\] TLSRoute default\/multi-hostname-tls/m);
  assert.match(v.stdout, /0 error\(s\), 1 warning\(s\)/);

  const s = await snigateCli(['validate', '--strict', '-f', dir.dir]);
  assert.equal(s.code, 1, s.stdout + s.stderr);
  assert.match(s.stdout, /^error\[legacy-tlsroute-snis\]/m);
});
