// Policy status and live reload, through `snigate run`: TargetNotFound and Conflicted in the admin /status (and
// `snigate status`), and a BackendTrafficPolicy edit on disk changing the idle timeout of new connections.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import {
  type Materialized,
  manifestDir,
  runSnigate,
  type Snigate,
  type StatusDoc,
  sleep,
  snigateCli,
  waitUntil,
} from './helpers.ts';
import { gateway, openSession, policy, service, tlsRoute, yamlDocs } from './policies-fixtures.ts';

const SNI = 'app.example.com';
const ca = createCA('e2e policies-status CA');
const cert = ca.issue({ cn: SNI, keyType: 'ec' });
let echo: TcpEchoServer;
let dir: Materialized;
let gw: Snigate;

const reloadPolicy = (idle: string) =>
  policy(
    'BackendTrafficPolicy',
    'app-timeouts',
    [{ kind: 'Service', name: 'app' }],
    `timeouts: { idle: ${idle} }`,
  );

before(async () => {
  echo = await startTcpEcho({ pod: 'app-0', namespace: 'default', tls: cert });
  dir = manifestDir({
    'base.yaml': yamlDocs(
      gateway('edge', [
        { name: 'tls', port: 443 },
        { name: 'alt', port: 444 },
      ]),
      tlsRoute('app', [SNI], [{ service: 'app' }], 'edge'),
      service('app', echo.port),
      service('other', echo.port),
    ),
    'bad-policies.yaml': yamlDocs(
      policy(
        'BackendTrafficPolicy',
        'no-such-service',
        [{ kind: 'Service', name: 'nope' }],
        'connectRetries: 1',
      ),
      policy(
        'BackendTrafficPolicy',
        'no-such-port',
        [{ kind: 'Service', name: 'other', sectionName: 'nope' }],
        'connectRetries: 1',
      ),
      policy(
        'BackendTrafficPolicy',
        'no-such-route',
        [{ kind: 'TLSRoute', name: 'ghost' }],
        'connectRetries: 1',
      ),
      policy(
        'BackendTrafficPolicy',
        'older',
        [{ kind: 'Service', name: 'other' }],
        'connectRetries: 1',
        '2026-01-01T00:00:00Z',
      ),
      policy(
        'BackendTrafficPolicy',
        'younger',
        [{ kind: 'Service', name: 'other' }],
        'connectRetries: 3',
        '2026-01-02T00:00:00Z',
      ),
      policy(
        'ClientTrafficPolicy',
        'no-such-gateway',
        [{ kind: 'Gateway', name: 'ghost' }],
        'clientHello: { timeout: 5s }',
      ),
      policy(
        'ClientTrafficPolicy',
        'no-such-listener',
        [{ kind: 'Gateway', name: 'edge', sectionName: 'nope' }],
        'clientHello: { timeout: 5s }',
      ),
      policy(
        'ClientTrafficPolicy',
        'ctp-older',
        [{ kind: 'Gateway', name: 'edge', sectionName: 'alt' }],
        'clientHello: { timeout: 5s }',
        '2026-01-01T00:00:00Z',
      ),
      policy(
        'ClientTrafficPolicy',
        'ctp-younger',
        [{ kind: 'Gateway', name: 'edge', sectionName: 'alt' }],
        'clientHello: { timeout: 6s }',
        '2026-01-02T00:00:00Z',
      ),
    ),
    'reload-policy.yaml': reloadPolicy('1h'),
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443, 444] });
});

after(async () => {
  await gw?.stop();
  await echo?.close();
  dir?.cleanup();
  ca.cleanup();
});

/** idleTimeoutMs of the app backend in the programmed table (admin /config). */
async function appIdleMs(): Promise<number | undefined> {
  const res = await fetch(`${gw.adminUrl}/config`, { signal: AbortSignal.timeout(5_000) });
  const table = (await res.json()) as {
    binds: {
      listeners: {
        routes: { backends: { backends: { id: string; policy: { idleTimeoutMs: number } }[] } }[];
      }[];
    }[];
  };
  for (const b of table.binds)
    for (const l of b.listeners)
      for (const r of l.routes)
        for (const be of r.backends.backends)
          if (be.id === 'Service/default/app:443') return be.policy.idleTimeoutMs;
  return undefined;
}

type Cond = { type: string; status: string; reason: string; message: string };

function accepted(doc: Pick<StatusDoc, 'statuses'>, kind: string, name: string): Cond[] {
  const p = doc.statuses.find((s) => s.kind === kind && s.metadata.name === name);
  assert.ok(p, `no status for ${kind} ${name}`);
  const ancestors = p.status.ancestors as { conditions: Cond[] }[];
  return ancestors.map((a) => {
    const c = a.conditions.find((x) => x.type === 'Accepted');
    assert.ok(c, JSON.stringify(a));
    return c;
  });
}

function expectations(doc: Pick<StatusDoc, 'statuses'>): void {
  for (const [kind, name, status, reason, message] of [
    ['BackendTrafficPolicy', 'no-such-service', 'False', 'TargetNotFound', /Service default\/nope not found/],
    ['BackendTrafficPolicy', 'no-such-port', 'False', 'TargetNotFound', /port nope not found/],
    ['BackendTrafficPolicy', 'no-such-route', 'False', 'TargetNotFound', /TLSRoute default\/ghost not found/],
    ['BackendTrafficPolicy', 'older', 'True', 'Accepted', /attached/],
    ['BackendTrafficPolicy', 'younger', 'False', 'Conflicted', /already has BackendTrafficPolicy older/],
    ['BackendTrafficPolicy', 'app-timeouts', 'True', 'Accepted', /attached/],
    ['ClientTrafficPolicy', 'no-such-gateway', 'False', 'TargetNotFound', /Gateway default\/ghost/],
    ['ClientTrafficPolicy', 'no-such-listener', 'False', 'TargetNotFound', /listener nope/],
    ['ClientTrafficPolicy', 'ctp-older', 'True', 'Accepted', /attached/],
    ['ClientTrafficPolicy', 'ctp-younger', 'False', 'Conflicted', /ctp-older/],
  ] as const) {
    const [c] = accepted(doc, kind, name);
    assert.equal(c?.status, status, `${name}: ${JSON.stringify(c)}`);
    assert.equal(c?.reason, reason, `${name}: ${JSON.stringify(c)}`);
    assert.match(c?.message ?? '', message, name);
  }
}

test('admin /status: TargetNotFound and Conflicted for bad and duplicate policies, Accepted for the rest', async () => {
  expectations(await gw.status());
});

test('`snigate status -o json` reports the same policy conditions', async () => {
  const r = await snigateCli(['status', '--admin', gw.adminUrl, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  expectations(JSON.parse(r.stdout) as Pick<StatusDoc, 'statuses'>);
});

test('admin on loopback refuses a rebound Host name (curl), answers localhost and the IP', async () => {
  const url = new URL(gw.adminUrl);
  const curl = (host: string) =>
    execFileSync(
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Host: ${host}`, `${gw.adminUrl}/config`],
      {
        encoding: 'utf8',
      },
    );
  assert.equal(curl(`evil.example:${url.port}`), '403');
  assert.equal(curl(`localhost:${url.port}`), '200');
  assert.equal(curl(url.host), '200');
});

test('live reload: editing the idle timeout from 1h to 300ms applies to new connections', async () => {
  const first = await openSession({ port: gw.port(443), servername: SNI, ca: ca.certPem });
  let firstOpen = true;
  void first.closed.then(() => {
    firstOpen = false;
  });
  try {
    assert.equal((await first.test()).pod, 'app-0');
    assert.equal(await appIdleMs(), 3_600_000);
    await sleep(800);
    assert.ok(firstOpen, 'idle 1h: closed after 800 ms idle');

    dir.write('reload-policy.yaml', reloadPolicy('300ms'));
    // The reload counter moves when a reload starts; the programmed table is what new connections follow.
    await waitUntil(
      'the edited policy in the programmed table (/config)',
      async () => (await appIdleMs()) === 300,
      {
        timeoutMs: 10_000,
      },
    );
    const doc = await gw.status();
    assert.equal(doc.lastReload?.ok, true, JSON.stringify(doc.lastReload));
    expectations(doc);

    const second = await openSession({ port: gw.port(443), servername: SNI, ca: ca.certPem });
    const local = second.raw.localPort;
    try {
      assert.equal((await second.test()).pod, 'app-0');
      const t0 = Date.now();
      const closed = await Promise.race([second.closed.then(() => true), sleep(5_000).then(() => false)]);
      const elapsed = Date.now() - t0;
      assert.ok(closed, 'a new connection was not closed after 5 s idle');
      assert.ok(elapsed >= 200 && elapsed < 3_000, `closed after ${elapsed} ms idle`);
      const log = await gw.waitForConnection((l) => l.client === `127.0.0.1:${local}`);
      assert.equal(log.end, 'idle-timeout');
    } finally {
      second.close();
    }
    // The connection opened before the edit keeps the settings it started with.
    assert.ok(firstOpen, 'the connection from before the edit was closed by the reload');
    assert.equal((await first.test()).pod, 'app-0');
  } finally {
    first.close();
  }
});
