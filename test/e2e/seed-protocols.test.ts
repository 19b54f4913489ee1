// Seed 000 protocol examples through one `snigate run` with four -f directories: redis-cli to a TLS redis, psql to
// a TLS postgres (the SSLRequest dance), a server-speaks-first custom protocol on 8443, and a ServiceImport backend.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import {
  commandExists,
  postgresBinDir,
  type RunningServer,
  runClient,
  startPostgresTls,
  startRedisTls,
} from '../support/processes.ts';
import {
  type Materialized,
  materializeExample,
  needs,
  runSnigate,
  type Snigate,
  waitUntil,
} from './helpers.ts';

const ca = createCA('e2e seed-protocols CA');
const REDIS_SNI = 'redis.cache.svc.cluster.local';
const PG_SNI = 'postgres.database.svc.cluster.local';
const haveRedis = commandExists('redis-server') && commandExists('redis-cli');
const havePg = postgresBinDir() !== undefined && commandExists('psql');

let redis: RunningServer | undefined;
let pg: RunningServer | undefined;
let custom: TcpEchoServer;
let local: TcpEchoServer;
let remote: TcpEchoServer;
const dirs: Materialized[] = [];
let gw: Snigate;

before(async () => {
  // Without the binary the example still gets a (dead) endpoint, so the other examples run.
  redis = haveRedis
    ? await startRedisTls({ cert: ca.issue({ cn: REDIS_SNI }), caFile: ca.caFile })
    : undefined;
  pg = havePg ? await startPostgresTls({ cert: ca.issue({ cn: PG_SNI }), caFile: ca.caFile }) : undefined;
  custom = await startTcpEcho({
    pod: 'custom-service-0',
    namespace: 'default',
    tls: ca.issue({ cn: 'custom.example.com', keyType: 'ec' }),
  });
  const appCert = ca.issue({ cn: 'app.example.com', keyType: 'ec' });
  local = await startTcpEcho({ pod: 'app-local-0', namespace: 'default', tls: appCert });
  remote = await startTcpEcho({ pod: 'app-remote-0', namespace: 'default', tls: appCert });
  dirs.push(
    materializeExample('redis', { 19379: redis?.port ?? 1 }),
    materializeExample('postgres', { 19532: pg?.port ?? 1 }),
    materializeExample('custom-protocol', { 19843: custom.port }),
    materializeExample('multi-cluster', { 19451: local.port, 19452: remote.port }),
  );
  gw = await runSnigate({ files: dirs.map((d) => d.dir), listenerPorts: [443, 5432, 6379, 8443] });
});

after(async () => {
  await gw?.stop();
  await Promise.all([redis?.stop(), pg?.stop(), custom?.close(), local?.close(), remote?.close()]);
  for (const d of dirs) d.cleanup();
  ca.cleanup();
});

describe('redis over TLS passthrough (6379)', () => {
  test('redis-cli --tls --sni ... PING → PONG through the gateway', async (t) => {
    if (!needs(t, 'redis-server') || !needs(t, 'redis-cli')) return;
    const args = [
      '--tls',
      '--sni',
      REDIS_SNI,
      '--cacert',
      ca.caFile,
      '-h',
      '127.0.0.1',
      '-p',
      String(gw.port(6379)),
    ];
    const r = await runClient('redis-cli', [...args, 'PING'], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'PONG', `stdout=${r.stdout} stderr=${r.stderr}`);
    const set = await runClient('redis-cli', [...args, 'SET', 'snigate', 'passthrough'], {
      timeoutMs: 15_000,
    });
    assert.equal(set.stdout.trim(), 'OK', set.stderr);
    const get = await runClient('redis-cli', [...args, 'GET', 'snigate'], { timeoutMs: 15_000 });
    assert.equal(get.stdout.trim(), 'passthrough', get.stderr);
    const log = await gw.waitForConnection((l) => l.sni === REDIS_SNI);
    assert.equal(log.route, 'TLSRoute/cache/redis-tls-route');
    assert.equal(log.backend, 'Service/cache/redis-master:6379');
  });

  test('redis-cli with a wrong SNI is refused (no route), not served', async (t) => {
    if (!needs(t, 'redis-cli')) return;
    const r = await runClient(
      'redis-cli',
      ['--tls', '--sni', 'other.cache.svc.cluster.local', '--cacert', ca.caFile, '-h', '127.0.0.1'].concat([
        '-p',
        String(gw.port(6379)),
        'PING',
      ]),
      { timeoutMs: 15_000 },
    );
    assert.notEqual(r.stdout.trim(), 'PONG');
  });
});

describe('postgres over TLS passthrough (5432)', () => {
  test('psql sslmode=verify-full through the gateway: select 1', async (t) => {
    if (!needs(t, 'psql')) return;
    if (pg === undefined) {
      needs(t, 'postgres'); // not on PATH on Debian: fails in CI, skips on a dev box
      return;
    }
    const conn = `host=${PG_SNI} hostaddr=127.0.0.1 port=${gw.port(5432)} sslmode=verify-full sslrootcert=${ca.caFile} user=postgres dbname=postgres connect_timeout=10`;
    const r = await runClient('psql', ['-X', '-A', '-t', conn, '-c', 'select 1'], {
      timeoutMs: 20_000,
      env: { ...process.env, PGSSLSNI: '1', PGAPPNAME: 'snigate-e2e' },
    });
    assert.equal(r.code, 0, `psql failed:\n${r.stderr}\n--- postgres ---\n${pg.output().slice(-2000)}`);
    assert.equal(r.stdout.trim(), '1');
    // pg_hba allows only hostssl from loopback: this query came over TLS, terminated by postgres itself.
    const ssl = await runClient(
      'psql',
      ['-X', '-A', '-t', conn, '-c', 'select ssl from pg_stat_ssl where pid = pg_backend_pid()'],
      {
        timeoutMs: 20_000,
      },
    );
    assert.equal(ssl.stdout.trim(), 't', ssl.stderr);
    const log = await gw.waitForConnection((l) => l.sni === PG_SNI);
    assert.equal(log.route, 'TLSRoute/database/postgres-tls-route');
    assert.equal(log.backend, 'Service/database/postgres-primary:5432');
  });
});

describe('custom protocol (8443): backend speaks first', () => {
  test('banner arrives before the client sends anything; PING/PONG; IS_TLS=true; serverName', async () => {
    const r = await echoClient({
      port: gw.port(8443),
      tls: { servername: 'custom.example.com', ca: ca.certPem },
    });
    assert.equal(r.banner, 'Gateway API Test TCP Server\n');
    assert.equal(r.pong, 'PONG');
    assert.equal(r.isTls, true);
    assert.equal(r.test.pod, 'custom-service-0');
    assert.equal(r.test.tls?.serverName, 'custom.example.com');
    // The Gateway has no namespace in the seed: it is `default`.
    const log = await gw.waitForConnection((l) => l.sni === 'custom.example.com');
    assert.equal(log.listener, 'default/custom-gateway/custom-tls');
  });
});

describe('multi-cluster (443): Service + ServiceImport, 50/50', () => {
  test('both the local Service and the ServiceImport backend get connections', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const r = await echoClient({
        port: gw.port(443),
        tls: { servername: 'app.example.com', ca: ca.certPem },
      });
      seen.set(r.test.pod, (seen.get(r.test.pod) ?? 0) + 1);
    }
    // P(one side gets none of 40 at 50/50) = 2^-39.
    assert.ok((seen.get('app-local-0') ?? 0) > 0, JSON.stringify([...seen]));
    assert.ok((seen.get('app-remote-0') ?? 0) > 0, JSON.stringify([...seen]));
    // Log lines come in batches (up to 250 ms late): wait for the 40 records.
    const records = await waitUntil('40 connection records', () => {
      const l = gw.connections().filter((c) => c.sni === 'app.example.com');
      return l.length >= 40 && l;
    });
    const backends = new Set(records.map((l) => l.backend));
    assert.ok(backends.has('ServiceImport/default/app-remote:443'), JSON.stringify([...backends]));
    assert.ok(backends.has('Service/default/app-local:443'), JSON.stringify([...backends]));
  });
});
