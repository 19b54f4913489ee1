// Gateway API conformance TLSRouteSimpleSameNamespace and TLSRouteHostnameIntersection (INDEX.md section 2),
// played end to end: the conformance manifests verbatim, plus our EndpointSlices and one address per Gateway.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import { conformancePki } from '../support/certs.ts';
import {
  echoClient,
  type HttpEchoResponse,
  type HttpEchoServer,
  startHttpEcho,
  startTcpEcho,
  type TcpEchoServer,
  tlsOutcome,
} from '../support/echo-server.ts';
import { type Materialized, manifestDir, REPO, routeCondition, runSnigate, type Snigate } from './helpers.ts';

const TESTDATA = join(REPO, 'src/translate/testdata/conformance');
const NS = 'gateway-conformance-infra';
const pki = conformancePki();

/** Each Gateway gets its own loopback address, so Gateways on port 443 do not share (and merge on) one socket. */
const ADDRESS: Record<string, string> = {
  'gateway-tlsroute': '127.0.0.2',
  'gw-tlsroute-exact-hostname-x-1': '127.0.0.3',
  'gw-tlsroute-more-specific-wc-hostname-x-2': '127.0.0.4',
  'gw-tlsroute-less-specific-wc-hostname-x-3': '127.0.0.5',
  'gw-tlsroute-empty-hostname-x-4': '127.0.0.6',
};

let tcpBackends: TcpEchoServer[] = [];
let tlsBackend: HttpEchoServer;
let tlsBackend2: HttpEchoServer;
let dir: Materialized;
let gw: Snigate;

/** The conformance file with `{GATEWAY_CLASS_NAME}` filled in and `spec.addresses` added to each Gateway. */
function conformanceFile(name: string): string {
  const text = readFileSync(join(TESTDATA, name), 'utf8').replaceAll('{GATEWAY_CLASS_NAME}', 'snigate');
  return parseAllDocuments(text)
    .map((d) => {
      const o = d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> };
      if (o.kind === 'Gateway') {
        const address = ADDRESS[o.metadata.name];
        assert.ok(address, `no address for Gateway ${o.metadata.name}`);
        o.spec.addresses = [{ type: 'IPAddress', value: address }];
      }
      return stringify(o);
    })
    .join('---\n');
}

/** The namespace and the Services the two tests use, taken from the conformance base manifests. */
function baseServices(): string {
  const wanted = new Set([
    'Namespace/gateway-conformance-infra',
    'Service/tcp-backend',
    'Service/tls-backend',
    'Service/tls-backend-2',
  ]);
  return parseAllDocuments(readFileSync(join(TESTDATA, '_base.yaml'), 'utf8'))
    .map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string } })
    .filter((o) => o && (o.kind === 'Namespace' || o.metadata.namespace === NS))
    .filter((o) => wanted.has(`${o.kind}/${o.metadata.name}`))
    .map((o) => stringify(o))
    .join('---\n');
}

function slice(name: string, service: string, portName: string | null, port: number): string {
  return stringify({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: [{ ...(portName ? { name: portName } : {}), port, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  });
}

before(async () => {
  // tcp-backend: 2 replicas of the TCP echo, TLS with tls-passthrough-checks-certificate (port echo-tcp-tls).
  tcpBackends = [
    await startTcpEcho({ pod: 'tcp-backend-6b9c7d-a1', tls: pki.passthrough }),
    await startTcpEcho({ pod: 'tcp-backend-6b9c7d-b2', tls: pki.passthrough }),
  ];
  // tls-backend, tls-backend-2: HTTPS echo with tls-checks-certificate (abc.example.com, other.example.com).
  tlsBackend = await startHttpEcho({ pod: 'tls-backend-7f8d9-x1', tls: pki.tlsChecks });
  tlsBackend2 = await startHttpEcho({ pod: 'tls-backend-2-5c4b3-y1', tls: pki.tlsChecks });
  dir = manifestDir({
    'base.yaml': baseServices(),
    'endpoints.yaml': [
      slice('tcp-backend-a', 'tcp-backend', 'echo-tcp-tls', tcpBackends[0]!.port),
      slice('tcp-backend-b', 'tcp-backend', 'echo-tcp-tls', tcpBackends[1]!.port),
      slice('tls-backend-a', 'tls-backend', null, tlsBackend.port),
      slice('tls-backend-2-a', 'tls-backend-2', null, tlsBackend2.port),
    ].join('---\n'),
    'tlsroute-simple-same-namespace.yaml': conformanceFile('tlsroute-simple-same-namespace.yaml'),
    'tlsroute-hostname-intersection.yaml': conformanceFile('tlsroute-hostname-intersection.yaml'),
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443], hosts: Object.values(ADDRESS) });
});

after(async () => {
  await gw?.stop();
  await Promise.all([...tcpBackends.map((b) => b.close()), tlsBackend?.close(), tlsBackend2?.close()]);
  dir?.cleanup();
  pki.ca.cleanup();
});

test('every Gateway listens on its own address', async () => {
  const s = await gw.status();
  for (const address of Object.values(ADDRESS)) {
    assert.ok(
      s.listening.some((l) => l.address === address && l.port === gw.port(443)),
      `${address}:${gw.port(443)} not in ${JSON.stringify(s.listening)}`,
    );
  }
  // WaitForGatewayAddress: status.addresses[] with a type, the address the suite dials.
  for (const [name, address] of Object.entries(ADDRESS)) {
    const g = s.statuses.find((o) => o.kind === 'Gateway' && o.metadata.name === name);
    const addrs = (g?.status.addresses ?? []) as { type?: string; value: string }[];
    assert.deepEqual(addrs, [{ type: 'IPAddress', value: address }], name);
  }
});

describe('TLSRouteSimpleSameNamespace', () => {
  test('TCP echo check through the gateway: banner, PONG, IS_TLS=true, pod tcp-backend-*, serverName', async () => {
    const pods = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await echoClient({
        host: ADDRESS['gateway-tlsroute'],
        port: gw.port(443),
        tls: { servername: 'abc.example.com', ca: pki.ca.certPem },
      });
      assert.equal(r.banner, 'Gateway API Test TCP Server\n');
      assert.equal(r.pong, 'PONG');
      assert.equal(r.isTls, true);
      assert.match(r.test.pod, /^tcp-backend-/);
      assert.equal(r.test.namespace, NS);
      assert.equal(r.test.tls?.serverName, 'abc.example.com');
      // The handshake completed with the backend's certificate (tls-passthrough-checks-certificate).
      assert.equal(r.tls?.authorized, true);
      assert.equal(r.tls?.peerSubjectCN, 'abc.example.com');
      pods.add(r.test.pod);
    }
    // Two endpoints, round-robin: both replicas serve.
    assert.equal(pods.size, 2, [...pods].join(','));
  });

  test('another SNI under the listener hostname but matching no route is rejected without alert', async () => {
    const o = await tlsOutcome({
      host: ADDRESS['gateway-tlsroute'],
      port: gw.port(443),
      tls: { servername: 'other.example.com', ca: pki.ca.certPem },
    });
    assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
  });
});

/** HTTPS GET / with SNI = Host = sni, as the conformance intersection test does. */
function httpsGet(host: string, sni: string): Promise<HttpEchoResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: gw.port(443),
        path: '/',
        servername: sni,
        headers: { host: sni },
        ca: pki.ca.certPem,
        agent: false,
        timeout: 5_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          try {
            assert.equal(res.statusCode, 200, body);
            resolve(JSON.parse(body) as HttpEchoResponse);
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

const TLS_BACKEND = /^tls-backend-7f8d9-/;
const TLS_BACKEND_2 = /^tls-backend-2-/;
const intersection: { gateway: string; routes: string[]; cases: [string, RegExp | 'rejected'][] }[] = [
  {
    gateway: 'gw-tlsroute-exact-hostname-x-1',
    routes: ['tlsroute-more-specific-wc-hostname-x-1'],
    cases: [
      ['abc.example.com', TLS_BACKEND],
      ['non.matching.com', 'rejected'],
    ],
  },
  {
    gateway: 'gw-tlsroute-more-specific-wc-hostname-x-2',
    routes: ['tlsroute-exact-hostname-x-2', 'tlsroute-less-specific-wc-hostname-x-2'],
    cases: [
      ['abc.example.com', TLS_BACKEND], // exact beats wildcard
      ['other.example.com', TLS_BACKEND_2], // *.example.com ∩ *.com = *.example.com
      ['non.matching.com', 'rejected'],
    ],
  },
  {
    gateway: 'gw-tlsroute-less-specific-wc-hostname-x-3',
    routes: ['tlsroute-exact-hostname-x-3', 'tlsroute-more-specific-wc-hostname-x-3'],
    cases: [
      ['abc.example.com', TLS_BACKEND],
      ['other.example.com', TLS_BACKEND_2],
      ['non.matching.com', 'rejected'], // matches the listener's *.com but neither route
    ],
  },
  {
    gateway: 'gw-tlsroute-empty-hostname-x-4',
    routes: ['tlsroute-exact-hostname-x-4', 'tlsroute-less-specific-wc-hostname-x-4'],
    cases: [
      ['abc.example.com', TLS_BACKEND],
      ['other.example.com', TLS_BACKEND_2], // *.com matches two labels deep
      ['non.matching.org', 'rejected'],
    ],
  },
];

describe('TLSRouteHostnameIntersection', () => {
  for (const g of intersection) {
    test(`${g.gateway}: routes ResolvedRefs=True`, async () => {
      const s = await gw.status();
      for (const r of g.routes) {
        const c = routeCondition(s, 'TLSRoute', NS, r, 'ResolvedRefs');
        assert.equal(c?.status, 'True', `${r}: ${JSON.stringify(c)}`);
        assert.equal(c?.reason, 'ResolvedRefs');
        assert.equal(routeCondition(s, 'TLSRoute', NS, r, 'Accepted')?.status, 'True', r);
      }
    });
    for (const [sni, expected] of g.cases) {
      test(`${g.gateway}: ${sni} → ${expected === 'rejected' ? 'rejected (TCP close, no alert)' : expected.source}`, async () => {
        const host = ADDRESS[g.gateway]!;
        if (expected === 'rejected') {
          const o = await tlsOutcome({
            host,
            port: gw.port(443),
            tls: { servername: sni, ca: pki.ca.certPem },
          });
          assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
          return;
        }
        const body = await httpsGet(host, sni);
        assert.match(body.pod, expected);
        assert.equal(body.tls?.serverName, sni);
        assert.equal(body.host, sni);
      });
    }
  }
});
