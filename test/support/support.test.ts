// Proves each piece of the test harness works on its own, so e2e failures point at snigate, not at the harness.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createNetServer, type Server } from 'node:net';
import { after, describe, type TestContext, test } from 'node:test';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { conformancePki, createCA } from './certs.ts';
import { echoClient, startHttpEcho, startTcpEcho, TCP_BANNER, tlsOutcome } from './echo-server.ts';
import {
  commandExists,
  freePort,
  opensslSClient,
  postgresBinDir,
  runClient,
  SETUP_HINT,
  startDaemon,
  startPostgresTls,
  startRedisTls,
  stopChild,
  waitForPort,
} from './processes.ts';
import { encodeProxyV1, encodeProxyV2, parseProxyHeader } from './proxy-protocol.ts';

const ca = createCA();
const pki = conformancePki();
const server = ca.issue({ cn: 'abc.example.com', sans: ['abc.example.com', 'localhost', 'IP:127.0.0.1'] });

after(() => {
  ca.cleanup();
  pki.ca.cleanup();
});

/** In CI a missing binary is a setup bug and must fail; on a dev box it is a clear skip. */
function needs(t: TestContext, ok: boolean, what: string): boolean {
  if (ok) return true;
  const msg = `${what} is not installed: ${SETUP_HINT}`;
  if (process.env.CI) assert.fail(msg);
  t.skip(msg);
  return false;
}

async function listening(srv: Server): Promise<number> {
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const a = srv.address();
  assert.ok(a !== null && typeof a !== 'string');
  return a.port;
}

describe('certs', () => {
  test('leaf certs of every key type verify against the CA with Node tls', async () => {
    const leaves = [
      { name: 'abc.example.com', pair: server },
      { name: 'ec.example.com', pair: ca.issue({ cn: 'ec.example.com', keyType: 'ec' }) },
      { name: 'pkcs1.example.com', pair: ca.issue({ cn: 'pkcs1.example.com', pkcs1: true }) },
    ];
    assert.match(leaves[2]!.pair.keyPem, /^-----BEGIN RSA PRIVATE KEY-----/);
    assert.match(leaves[1]!.pair.keyPem, /^-----BEGIN PRIVATE KEY-----/);
    for (const { name, pair: leaf } of leaves) {
      const srv = createTlsServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end('hi'));
      const port = await listening(srv);
      try {
        const sock = tlsConnect({ port, host: '127.0.0.1', servername: name, ca: ca.certPem });
        await once(sock, 'secureConnect');
        assert.equal(sock.authorized, true);
        sock.destroy();
      } finally {
        srv.close();
      }
    }
  });

  test('the conformance fixtures carry the documented SANs', () => {
    const out = opensslText(pki.tlsChecks.certFile);
    assert.match(
      out,
      /DNS:abc\.example\.com, DNS:other\.example\.com, URI:spiffe:\/\/abc\.example\.com\/test-identity/,
    );
    assert.match(pki.terminate.certPem, /BEGIN CERTIFICATE/);
    assert.match(opensslText(pki.validity.certFile), /DNS:\*, DNS:\*\.org, DNS:\*\.wildcard\.org/);
  });

  test('createCA is cached per name', () => {
    assert.equal(createCA(), ca);
    assert.notEqual(createCA('tls-checks-ca'), ca);
  });
});

function opensslText(file: string): string {
  return spawnSync('openssl', ['x509', '-in', file, '-noout', '-text'], { encoding: 'utf8' }).stdout;
}

describe('tcp echo server', () => {
  test('plain: banner, PONG, IS_TLS false, TEST json', async () => {
    const echo = await startTcpEcho({ pod: 'tcp-backend-abc', namespace: 'ns1' });
    try {
      const r = await echoClient({ port: echo.port });
      assert.equal(r.banner, TCP_BANNER);
      assert.equal(r.pong, 'PONG');
      assert.equal(r.isTls, false);
      assert.equal(r.test.pod, 'tcp-backend-abc');
      assert.equal(r.test.namespace, 'ns1');
      assert.equal(r.test.isTLS, false);
      assert.equal(r.test.tls, undefined);
      assert.equal(echo.connections, 1);
    } finally {
      await echo.close();
    }
  });

  test('TLS with mTLS: serverName and client subject in TEST, verified by the client', async () => {
    const client = ca.issue({ cn: 'client-1', client: true });
    const echo = await startTcpEcho({ pod: 'tls-1', tls: { ...server, ca: ca.certPem, requestCert: true } });
    try {
      const r = await echoClient({
        port: echo.port,
        tls: { servername: 'abc.example.com', ca: ca.certPem, cert: client.certPem, key: client.keyPem },
      });
      assert.equal(r.isTls, true);
      assert.equal(r.tls?.authorized, true);
      assert.equal(r.tls?.peerSubjectCN, 'abc.example.com');
      assert.equal(r.test.tls?.serverName, 'abc.example.com');
      assert.equal(r.test.tls?.clientSubject, 'CN=client-1');
      assert.equal(r.test.tls?.clientAuthorized, true);
      assert.match(r.test.tls?.version ?? '', /^TLS 1\.[23]$/);
    } finally {
      await echo.close();
    }
  });

  test('PROXY v1 and v2 headers are decoded before TLS', async () => {
    const echo = await startTcpEcho({ pod: 'pp', tls: server, proxyProtocol: true });
    try {
      const e4 = {
        sourceAddress: '192.0.2.7',
        sourcePort: 40000,
        destAddress: '198.51.100.1',
        destPort: 443,
      };
      const e6 = {
        sourceAddress: '2001:db8::7',
        sourcePort: 40001,
        destAddress: '2001:db8::1',
        destPort: 8443,
      };
      for (const preamble of [encodeProxyV1(e4), encodeProxyV2(e4), encodeProxyV2(e6)]) {
        const r = await echoClient({
          port: echo.port,
          preamble,
          tls: { servername: 'abc.example.com', ca: ca.certPem },
        });
        const want = preamble[0] === 0x50 ? e4 : preamble.length > 40 ? e6 : e4;
        assert.equal(r.test.proxy?.sourceAddress, want.sourceAddress);
        assert.equal(r.test.proxy?.sourcePort, want.sourcePort);
        assert.equal(r.test.proxy?.destPort, want.destPort);
      }
      assert.deepEqual(echo.failures, []);
    } finally {
      await echo.close();
    }
  });

  test('proxy header parser: incomplete, invalid, TLVs', () => {
    const v2 = encodeProxyV2(
      { sourceAddress: '10.0.0.1', sourcePort: 1, destAddress: '10.0.0.2', destPort: 2 },
      [{ type: 0x02, value: Buffer.from('abc.example.com') }],
    );
    assert.equal(parseProxyHeader(v2.subarray(0, 20)).status, 'incomplete');
    const ok = parseProxyHeader(Buffer.concat([v2, Buffer.from('rest')]));
    assert.ok(ok.status === 'ok');
    assert.equal(ok.length, v2.length);
    assert.equal(Buffer.from(ok.info.tlvs[0]!.value, 'hex').toString(), 'abc.example.com');
    assert.equal(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')).status, 'invalid');
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4')).status, 'incomplete');
  });

  test('tlsOutcome tells FIN, RST and alert apart', async () => {
    const fin = createNetServer((s) => s.once('data', () => s.end()));
    const rst = createNetServer((s) => s.once('data', () => s.resetAndDestroy()));
    const alert = createTlsServer({ cert: server.certPem, key: server.keyPem, minVersion: 'TLSv1.3' });
    alert.on('tlsClientError', () => {});
    try {
      const tls = { servername: 'abc.example.com' };
      assert.equal((await tlsOutcome({ port: await listening(fin), tls })).kind, 'eof');
      assert.equal((await tlsOutcome({ port: await listening(rst), tls })).kind, 'reset');
      const a = await tlsOutcome({ port: await listening(alert), tls: { ...tls, maxVersion: 'TLSv1.2' } });
      assert.equal(a.kind, 'alert', JSON.stringify(a));
      assert.equal((await tlsOutcome({ port: await freePort(), tls })).kind, 'refused');
    } finally {
      fin.close();
      rst.close();
      alert.close();
    }
  });
});

describe('http echo server', () => {
  test('plain and TLS requests are echoed as JSON', async (t) => {
    const plain = await startHttpEcho({ pod: 'infra-backend-v1-x' });
    const secure = await startHttpEcho({ pod: 'tls-backend-x', tls: server });
    try {
      const res = await fetch(`http://127.0.0.1:${plain.port}/a/b?c=1`, { headers: { 'x-test': 'yes' } });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { path: string; pod: string; headers: Record<string, string[]> };
      assert.equal(body.path, '/a/b?c=1');
      assert.equal(body.pod, 'infra-backend-v1-x');
      assert.deepEqual(body.headers['x-test'], ['yes']);
      assert.equal((await fetch(`http://127.0.0.1:${plain.port}/status/503`)).status, 503);
      if (!needs(t, commandExists('curl'), 'curl')) return;
      const ok = await runClient(
        'curl',
        ['-sS', '--cacert', ca.caFile, '--resolve', `abc.example.com:${secure.port}:127.0.0.1`].concat([
          `https://abc.example.com:${secure.port}/hello`,
        ]),
        { timeoutMs: 10_000 },
      );
      assert.equal(ok.code, 0, ok.stderr);
      const echoed = JSON.parse(ok.stdout) as { tls?: { serverName: string }; host: string; path: string };
      assert.equal(echoed.tls?.serverName, 'abc.example.com');
      assert.equal(echoed.host, `abc.example.com:${secure.port}`);
    } finally {
      await plain.close();
      await secure.close();
    }
  });
});

describe('openssl s_client', () => {
  test('shows the echo server cert, verifies against the CA, reports alerts and bare closes', async (t) => {
    if (!needs(t, commandExists('openssl'), 'openssl')) return;
    const echo = await startTcpEcho({ pod: 'tcp-backend', tls: pki.passthrough });
    const fin = createNetServer((s) => s.once('data', () => s.end()));
    const alert = createTlsServer({ cert: server.certPem, key: server.keyPem, minVersion: 'TLSv1.3' });
    alert.on('tlsClientError', () => {});
    try {
      const ok = await opensslSClient({
        port: echo.port,
        servername: 'abc.example.com',
        caFile: pki.ca.caFile,
      });
      assert.equal(ok.connected, true, ok.raw.stderr);
      assert.equal(ok.verified, true);
      assert.equal(ok.peerSubject, 'CN=abc.example.com');
      assert.deepEqual(ok.peerSans, ['abc.example.com']);
      const wrongCa = await opensslSClient({
        port: echo.port,
        servername: 'abc.example.com',
        caFile: ca.caFile,
      });
      assert.equal(wrongCa.connected, false);
      assert.equal(wrongCa.verified, false);
      const closed = await opensslSClient({ port: await listening(fin), servername: 'x.example.com' });
      assert.equal(closed.connected, false);
      assert.equal(closed.closedWithoutAlert, true, closed.raw.stderr);
      const alerted = await opensslSClient({
        port: await listening(alert),
        servername: 'x',
        extraArgs: ['-tls1_2'],
      });
      assert.equal(alerted.connected, false);
      assert.match(alerted.alert ?? '', /alert protocol version/, alerted.raw.stderr);
    } finally {
      await echo.close();
      fin.close();
      alert.close();
    }
  });
});

describe('processes', () => {
  test('runClient kills a child at its timeout', async () => {
    const r = await runClient('sleep', ['5'], { timeoutMs: 200 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
  });

  test('redis-server with TLS answers PING via redis-cli --tls', async (t) => {
    if (!needs(t, commandExists('redis-server') && commandExists('redis-cli'), 'redis-server/redis-cli'))
      return;
    const redis = await startRedisTls({ cert: server, caFile: ca.caFile });
    try {
      const args = ['--tls', '--cacert', ca.caFile, '-h', '127.0.0.1', '-p', String(redis.port), 'PING'];
      const r = await runClient('redis-cli', args, { timeoutMs: 10_000 });
      assert.equal(r.stdout.trim(), 'PONG', `${r.stderr}\n${redis.output()}`);
    } finally {
      await redis.stop();
    }
  });

  test('postgres with TLS answers select 1 via psql sslmode=verify-full', async (t) => {
    if (!needs(t, postgresBinDir() !== undefined && commandExists('psql'), 'postgresql/psql')) return;
    const pg = await startPostgresTls({ cert: server, caFile: ca.caFile });
    try {
      const conn = `host=abc.example.com hostaddr=127.0.0.1 port=${pg.port} user=postgres dbname=postgres`;
      const r = await runClient(
        'psql',
        [`${conn} sslmode=verify-full sslrootcert=${ca.caFile}`, '-tAc', 'select 1'],
        {
          timeoutMs: 10_000,
        },
      );
      assert.equal(r.stdout.trim(), '1', `${r.stderr}\n${pg.output()}`);
      const plain = await runClient('psql', [`${conn} sslmode=disable`, '-tAc', 'select 1'], {
        timeoutMs: 10_000,
      });
      assert.notEqual(plain.code, 0, 'non-TLS connections must be refused by pg_hba');
    } finally {
      await pg.stop();
    }
  });
});

describe('daemon helpers', () => {
  test('startDaemon waits for the ready line; waitForPort sees the listener; stopChild ends it', async () => {
    const port = await freePort();
    const script = `require('net').createServer().listen(${port}, '127.0.0.1', () => console.log('ready on ${port}'))`;
    const { child, output } = await startDaemon({
      cmd: process.execPath,
      args: ['-e', script],
      readyLine: /ready on \d+/,
      timeoutMs: 10_000,
    });
    try {
      await waitForPort(port);
      assert.match(output(), /ready on/);
    } finally {
      await stopChild(child, 'SIGTERM', 2000);
    }
    assert.notEqual(child.signalCode ?? child.exitCode, null);
    await assert.rejects(waitForPort(port, '127.0.0.1', 300), /nothing listening/);
  });
});
