// Seed 001's case scenario for real, on one port: api.* is terminated at the gateway (HTTP routing to a
// plain-HTTP backend), payments.* is passed through to a backend that requires a client certificate.
// Run twice: with the article's intent as valid Ingresses, and as Gateway API (Gateway + HTTPRoute + TLSRoute).
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import {
  echoClient,
  type HttpEchoServer,
  startHttpEcho,
  startTcpEcho,
  type TcpEchoServer,
  tlsOutcome,
} from '../support/echo-server.ts';
import { opensslSClient, runClient } from '../support/processes.ts';
import { manifestDir, REPO, runSnigate, type Snigate } from './helpers.ts';

const ca = createCA('e2e seed-001 CA');
const gatewayCert = ca.issue({ cn: 'api.oladapo.cloud' });
const paymentsCert = ca.issue({ cn: 'payments.oladapo.cloud' });
const clientCert = ca.issue({ cn: 'payments-client', client: true });
let api: HttpEchoServer;
let payments: TcpEchoServer;

before(async () => {
  api = await startHttpEcho({ pod: 'api-gateway-service-0' });
  // The payment service holds its own certificate and insists on a client certificate (mTLS at the backend).
  payments = await startTcpEcho({
    pod: 'payment-service-0',
    tls: { ...paymentsCert, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
  });
});

after(async () => {
  await api?.close();
  await payments?.close();
  ca.cleanup();
});

function secretYaml(): string {
  const indent = (pem: string) =>
    pem
      .trim()
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
  return `apiVersion: v1
kind: Secret
metadata: { name: api-gateway-tls-secret, namespace: default }
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(gatewayCert.certPem)}
  tls.key: |
${indent(gatewayCert.keyPem)}
`;
}

for (const variant of ['hybrid-ingress', 'hybrid-gateway-api'] as const) {
  describe(`seed 001 ${variant}`, () => {
    let gw: Snigate;
    let port: number;
    let dir: ReturnType<typeof manifestDir>;

    before(async () => {
      dir = manifestDir({});
      cpSync(join(REPO, 'examples/seed-001', variant), dir.dir, { recursive: true });
      const backends = readFileSync(join(dir.dir, 'backends.yaml'), 'utf8')
        .replaceAll('19080', String(api.port))
        .replaceAll('19543', String(payments.port));
      writeFileSync(join(dir.dir, 'backends.yaml'), backends);
      dir.write('secret.yaml', secretYaml());
      gw = await runSnigate({ files: [dir.dir], listenerPorts: [80, 443] });
      port = gw.port(443);
    });

    after(async () => {
      await gw?.stop();
      dir?.cleanup();
    });

    test('api.*: openssl sees the GATEWAY certificate; curl /v1/ reaches the API backend over plain HTTP', async () => {
      const s = await opensslSClient({ port, servername: 'api.oladapo.cloud', caFile: ca.caFile });
      assert.ok(s.connected, s.raw.stderr);
      assert.equal(s.peerSubject, 'CN=api.oladapo.cloud');
      assert.ok(s.verified, s.verifyMessage);
      const url = `https://api.oladapo.cloud:${port}/v1/users?limit=1`;
      const resolve = `api.oladapo.cloud:${port}:127.0.0.1`;
      for (const proto of ['--http1.1', '--http2']) {
        const r = await runClient(
          'curl',
          [
            '-sS',
            proto,
            '--cacert',
            ca.caFile,
            '--resolve',
            resolve,
            '-w',
            '\n%{http_code} %{http_version}',
            url,
          ],
          {
            timeoutMs: 10_000,
          },
        );
        const [body, meta] = [
          r.stdout.slice(0, r.stdout.lastIndexOf('\n')),
          r.stdout.slice(r.stdout.lastIndexOf('\n') + 1),
        ];
        assert.match(
          meta,
          proto === '--http2' ? /^200 2$/ : /^200 1\.1$/,
          `${proto}: ${r.stdout}${r.stderr}`,
        );
        const echo = JSON.parse(body) as { path: string; pod: string; headers: Record<string, string[]> };
        assert.equal(echo.pod, 'api-gateway-service-0');
        assert.equal(echo.path, '/v1/users?limit=1');
        assert.deepEqual(echo.headers['X-Forwarded-Proto'] ?? echo.headers['x-forwarded-proto'], ['https']);
      }
      const miss = await runClient(
        'curl',
        [
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--cacert',
          ca.caFile,
          '--resolve',
          resolve,
          `https://api.oladapo.cloud:${port}/admin`,
        ],
        {
          timeoutMs: 10_000,
        },
      );
      assert.equal(miss.stdout, '404', 'only /v1/ is routed');
    });

    test('payments.*: passed through; openssl sees the BACKEND certificate; the mTLS handshake with the backend succeeds', async () => {
      const s = await opensslSClient({ port, servername: 'payments.oladapo.cloud', caFile: ca.caFile });
      assert.equal(
        s.peerSubject,
        'CN=payments.oladapo.cloud',
        'the backend, not the gateway, presents its certificate',
      );
      const r = await echoClient({
        port,
        tls: {
          servername: 'payments.oladapo.cloud',
          ca: ca.certPem,
          cert: clientCert.certPem,
          key: clientCert.keyPem,
        },
      });
      assert.equal(r.pong, 'PONG');
      assert.equal(r.isTls, true);
      assert.equal(r.test.pod, 'payment-service-0');
      assert.equal(r.test.tls?.serverName, 'payments.oladapo.cloud');
      assert.match(
        String(r.test.tls?.clientSubject ?? ''),
        /payments-client/,
        'the backend verified the client certificate itself',
      );
      // Without a client certificate the backend (not the gateway) refuses.
      await assert.rejects(
        echoClient({ port, tls: { servername: 'payments.oladapo.cloud', ca: ca.certPem }, timeoutMs: 5_000 }),
        'no client certificate: the backend ends the session',
      );
      const log = await gw.waitForConnection(
        (c) => c.sni === 'payments.oladapo.cloud' && c.end !== undefined,
      );
      assert.match(String(log.route), /^TLSRoute\/default\/payment/);
      assert.equal(log.endpoint, `127.0.0.1:${payments.port}`);
    });

    test('an SNI nobody serves is closed without a TLS alert', async () => {
      const r = await tlsOutcome({ port, tls: { servername: 'nope.oladapo.cloud', ca: ca.certPem } });
      assert.ok(r.kind === 'eof' || r.kind === 'reset', JSON.stringify(r));
    });
  });
}
