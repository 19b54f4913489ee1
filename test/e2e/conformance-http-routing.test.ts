// Gateway API v1.6 conformance, HTTP side, played end to end with real traffic (INDEX.md sections 3 and 4):
// HTTPRouteHTTPSListener, HTTPRouteHTTPSListenerDetectMisdirectedRequests, HTTPRouteHostnameIntersection,
// HTTPRouteListenerHostnameMatching, GatewayHTTPListenerIsolation (both manifests),
// GatewayFrontendClientCertificateValidation (+ InsecureFallback), plus an HTTP → HTTPS RequestRedirect and a
// WebSocket through an HTTPS listener. The upstream manifests are used verbatim; each Gateway gets its own
// loopback address (they would otherwise share, and merge on, one socket per port), and the expectations are the
// upstream Go tests' case tables.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { CertPair } from '../support/certs.ts';
import {
  assertRoutesAccepted,
  type Backends,
  baseYaml,
  conformanceYaml,
  type Expected,
  endpointSlice,
  expectConsistent,
  expectRefused,
  goCheckServerIdentity,
  NS,
  type Req,
  send,
  startBackends,
  toYaml,
  type ValidityPki,
  validityPki,
} from './conformance-kit.ts';
import {
  type Materialized,
  manifestDir,
  runSnigate,
  type Snigate,
  type StatusDoc,
  withTimeout,
} from './helpers.ts';

const ADDRESS: Record<string, string> = {
  // _base.yaml
  'same-namespace': '127.0.0.11',
  'same-namespace-with-https-listener': '127.0.0.12',
  'all-namespaces': '127.0.0.13',
  'backend-namespaces': '127.0.0.14',
  // the tests' own Gateways
  'httproute-hostname-intersection': '127.0.0.21',
  'httproute-hostname-intersection-all': '127.0.0.22',
  'httproute-listener-hostname-matching': '127.0.0.23',
  'http-listener-isolation': '127.0.0.24',
  'http-listener-isolation-with-hostname-intersection': '127.0.0.25',
  'client-validation-default': '127.0.0.26',
  'client-validation-insecure-fallback': '127.0.0.27',
  'redirect-and-websocket': '127.0.0.28',
};

const FILES = [
  'httproute-https-listener.yaml',
  'httproute-https-listener-detect-misdirected-requests.yaml',
  'httproute-hostname-intersection.yaml',
  'httproute-listener-hostname-matching.yaml',
  'gateway-http-listener-isolation.yaml',
  'gateway-http-listener-isolation-with-hostname-intersection.yaml',
  'gateway-with-clientcertificate-validation.yaml',
  'gateway-with-clientcertificate-validation-insecure-fallback.yaml',
];

/** Our own manifest: an HTTP listener that redirects to HTTPS, the HTTPS app, and a WebSocket backend. */
const REDIRECT_AND_WEBSOCKET = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: redirect-and-websocket, namespace: ${NS} }
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 80
    protocol: HTTP
  - name: https
    port: 443
    protocol: HTTPS
    tls:
      certificateRefs: [{ kind: Secret, name: tls-validity-checks-certificate }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: http-to-https, namespace: ${NS} }
spec:
  parentRefs: [{ name: redirect-and-websocket, sectionName: http }]
  hostnames: [app.wildcard.org]
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: { scheme: https, statusCode: 301 }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: https-app, namespace: ${NS} }
spec:
  parentRefs: [{ name: redirect-and-websocket, sectionName: https }]
  hostnames: [app.wildcard.org]
  rules:
  - backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ path: { type: PathPrefix, value: /ws } }]
    backendRefs: [{ name: ws-echo, port: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: ws-echo, namespace: ${NS} }
spec:
  ports: [{ port: 8080, targetPort: 3000, protocol: TCP }]
`;

let pki: ValidityPki;
let backends: Backends;
let ws: WsEcho;
let dir: Materialized;
let gw: Snigate;
let status: StatusDoc;

before(async () => {
  pki = validityPki();
  backends = await startBackends();
  ws = await startWsEcho();
  dir = manifestDir({
    'base.yaml': baseYaml(ADDRESS),
    'pki.yaml': pki.yaml,
    'endpoints.yaml': `${backends.yaml}---\n${toYaml([endpointSlice(NS, 'ws-echo', [{ port: ws.port }])])}`,
    'redirect-and-websocket.yaml': conformanceYaml(REDIRECT_AND_WEBSOCKET, ADDRESS),
    ...Object.fromEntries(FILES.map((f) => [f, conformanceYaml(f, ADDRESS)])),
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [80, 443, 8443], hosts: Object.values(ADDRESS) });
  status = await gw.status();
});

after(async () => {
  await gw?.stop();
  await Promise.all([backends?.close(), ws?.close()]);
  dir?.cleanup();
  pki?.cleanup();
});

test('every Gateway is Accepted and Programmed, on its own address', () => {
  for (const [name, address] of Object.entries(ADDRESS)) {
    const g = status.statuses.find((o) => o.kind === 'Gateway' && o.metadata.name === name);
    assert.ok(g, name);
    const conds = (g.status.conditions ?? []) as { type: string; status: string }[];
    for (const type of ['Accepted', 'Programmed']) {
      assert.equal(
        conds.find((c) => c.type === type)?.status,
        'True',
        `${name} ${type}: ${JSON.stringify(conds)}`,
      );
    }
    assert.deepEqual(g.status.addresses, [{ type: 'IPAddress', value: address }], name);
  }
  assert.equal(status.lastReload?.ok ?? true, true, JSON.stringify(status.lastReload));
});

test('every Gateway, listener and route-parent condition carries the current observedGeneration', () => {
  type C = { type: string; observedGeneration?: number };
  let checked = 0;
  for (const o of status.statuses) {
    const gen = (o.metadata as { generation?: number }).generation;
    assert.ok(typeof gen === 'number', `${o.kind} ${o.metadata.name}: no metadata.generation`);
    const lists: C[][] = [
      (o.status.conditions ?? []) as C[],
      ...((o.status.listeners ?? []) as { conditions: C[] }[]).map((l) => l.conditions),
      ...((o.status.parents ?? []) as { conditions: C[] }[]).map((p) => p.conditions),
    ];
    for (const c of lists.flat()) {
      assert.equal(c.observedGeneration, gen, `${o.kind} ${o.metadata.name} ${c.type}`);
      checked++;
    }
  }
  assert.ok(checked > 100, `only ${checked} conditions`);
});

/** An HTTPS request as tls.MakeTLSRequest… makes it: SNI = serverName, RootCAs = the listener certificate. */
function https(address: string, port: number, sni: string, host: string, path = '/', h2 = false): Req {
  return { address, port, path, host, h2, tls: { servername: sni, ca: pki.server.certPem } };
}

const V1 = 'infra-backend-v1';
const V2 = 'infra-backend-v2';
const V3 = 'infra-backend-v3';

describe('HTTPRouteHTTPSListener', () => {
  const addr = ADDRESS['same-namespace-with-https-listener']!;
  test('routes Accepted, ResolvedRefs=True', () => {
    assertRoutesAccepted(status, ['httproute-https-test', 'httproute-https-test-no-hostname']);
  });
  const cases: [string, number, string?][] = [
    ['example.org', 200, V1],
    ['unknown-example.org', 404],
    ['second-example.org', 200, V2],
  ];
  for (const [host, code, backend] of cases) {
    test(`SNI = Host = ${host} → ${code}${backend ? ` ${backend}` : ''}`, async () => {
      const res = await expectConsistent(https(addr, gw.port(443), host, host), {
        status: code,
        ...(backend ? { backend } : {}),
      });
      if (code === 200) assert.equal(res.echo?.headers['x-forwarded-proto']?.[0], 'https');
    });
  }
});

describe('HTTPRouteHTTPSListenerDetectMisdirectedRequests (HTTP/2)', () => {
  const addr = ADDRESS['same-namespace-with-https-listener']!;
  test('routes Accepted, ResolvedRefs=True', () => {
    assertRoutesAccepted(
      status,
      [1, 2, 3, 4].map((i) => `https-listener-detect-misdirected-requests-test-${i}`),
    );
  });
  // The upstream table, verbatim (fith- sic).
  const cases: [sni: string, host: string, code: number, backend?: string][] = [
    ['example.org', 'example.org', 200, V1],
    ['example.org', 'second-example.org', 421],
    ['example.org', 'unknown-example.org', 404],
    ['second-example.org', 'second-example.org', 200, V2],
    ['second-example.org', 'example.org', 421],
    ['second-example.org', 'unknown-example.org', 421],
    ['third-example.wildcard.org', 'third-example.wildcard.org', 200, V3],
    ['third-example.wildcard.org', 'fith-example.wildcard.org', 200, V3],
    ['third-example.wildcard.org', 'fourth-example.wildcard.org', 421],
    ['third-example.wildcard.org', 'second-example.org', 421],
    ['third-example.wildcard.org', 'unknown-example.org', 421],
    ['fourth-example.wildcard.org', 'fourth-example.wildcard.org', 200, V1],
    ['fourth-example.wildcard.org', 'fith-example.wildcard.org', 421],
    ['unknown-example.org', 'example.org', 200, V1],
    ['unknown-example.org', 'unknown-example.org', 404],
  ];
  for (const [sni, host, code, backend] of cases) {
    test(`SNI ${sni}, :authority ${host} → ${code}${backend ? ` ${backend}` : ''}`, async () => {
      const res = await expectConsistent(
        https(addr, gw.port(443), sni, host, '/detect-misdirected-requests', true),
        {
          status: code,
          ...(backend ? { backend } : {}),
        },
      );
      assert.equal(res.alpn, 'h2', 'the roundtripper speaks HTTP/2 (ALPN h2)');
    });
  }
  // Not upstream: a port in the Host header, or another letter case, does not make a request misdirected.
  const extra: [sni: string, host: string, code: number, backend?: string][] = [
    ['example.org', 'example.org:1234', 200, V1],
    ['example.org', 'EXAMPLE.org', 200, V1],
    ['Second-Example.ORG', 'second-example.org:443', 200, V2],
    ['third-example.wildcard.org', 'Fith-Example.wildcard.org', 200, V3],
    ['second-example.org', 'Example.org:443', 421],
  ];
  for (const [sni, host, code, backend] of extra) {
    test(`(extra) SNI ${sni}, :authority ${host} → ${code}${backend ? ` ${backend}` : ''}`, async () => {
      await expectConsistent(https(addr, gw.port(443), sni, host, '/detect-misdirected-requests', true), {
        status: code,
        ...(backend ? { backend } : {}),
      });
    });
  }
  // Not in the upstream test (it speaks h2 only), but the Listener.Hostname rule does not depend on the protocol.
  test('the same matrix over HTTP/1.1', async () => {
    for (const [sni, host, code, backend] of [...cases, ...extra]) {
      const res = await expectConsistent(
        https(addr, gw.port(443), sni, host, '/detect-misdirected-requests'),
        { status: code, ...(backend ? { backend } : {}) },
        1,
      );
      assert.equal(res.alpn, 'http/1.1');
    }
  });
});

/** A plain-HTTP request to a Gateway's port 80 with the given Host. */
function http(gateway: string, host: string, path: string): Req {
  return { address: ADDRESS[gateway]!, port: gw.port(80), host, path };
}

describe('HTTPRouteHostnameIntersection', () => {
  const G = 'httproute-hostname-intersection';
  test('intersecting routes Accepted, ResolvedRefs=True', () => {
    assertRoutesAccepted(status, [
      'specific-host-matches-listener-specific-host',
      'specific-host-matches-listener-wildcard-host',
      'wildcard-host-matches-listener-specific-host',
      'wildcard-host-matches-listener-wildcard-host',
      'httproute-hostname-intersection-all',
    ]);
  });
  test('no-intersecting-hosts: Accepted=False/NoMatchingListenerHostname; attachedRoutes 2/1/1', () => {
    const r = status.statuses.find(
      (o) => o.kind === 'HTTPRoute' && o.metadata.name === 'no-intersecting-hosts',
    );
    const parents = (r?.status.parents ?? []) as {
      conditions: { type: string; status: string; reason: string }[];
    }[];
    assert.equal(parents.length, 1);
    const acc = parents[0]!.conditions.find((c) => c.type === 'Accepted');
    assert.deepEqual([acc?.status, acc?.reason], ['False', 'NoMatchingListenerHostname']);
    const g = status.statuses.find((o) => o.kind === 'Gateway' && o.metadata.name === G);
    const listeners = (g?.status.listeners ?? []) as { name: string; attachedRoutes: number }[];
    assert.deepEqual(
      listeners.map((l) => [l.name, l.attachedRoutes]),
      [
        ['listener-1', 2],
        ['listener-2', 1],
        ['listener-3', 1],
      ],
    );
  });
  const cases: [host: string, path: string, code: number, backend?: string][] = [
    // specific-host-matches-listener-specific-host
    ['very.specific.com', '/s1', 200, V1],
    ['very.specific.com:1234', '/s1', 200, V1], // the port of the Host header is not part of the match
    ['non.matching.com', '/s1', 404],
    ['foo.nonmatchingwildcard.io', '/s1', 404],
    ['foo.wildcard.io', '/s1', 404],
    ['very.specific.com', '/non-matching-prefix', 404],
    // specific-host-matches-listener-wildcard-host
    ['foo.wildcard.io', '/s2', 200, V2],
    ['bar.wildcard.io', '/s2', 200, V2],
    ['foo.bar.wildcard.io', '/s2', 200, V2],
    ['non.matching.com', '/s2', 404],
    ['wildcard.io', '/s2', 404],
    ['very.specific.com', '/s2', 404],
    ['foo.wildcard.io', '/non-matching-prefix', 404],
    // wildcard-host-matches-listener-specific-host
    ['very.specific.com', '/s3', 200, V3],
    ['non.matching.com', '/s3', 404],
    ['foo.specific.com', '/s3', 404],
    ['foo.wildcard.io', '/s3', 404],
    ['very.specific.com', '/non-matching-prefix', 404],
    // wildcard-host-matches-listener-wildcard-host
    ['foo.anotherwildcard.io', '/s4', 200, V1],
    ['bar.anotherwildcard.io', '/s4', 200, V1],
    ['foo.bar.anotherwildcard.io', '/s4', 200, V1],
    ['anotherwildcard.io', '/s4', 404],
    ['foo.wildcard.io', '/s4', 404],
    ['very.specific.com', '/s4', 404],
    ['foo.anotherwildcard.io', '/non-matching-prefix', 404],
    // no-intersecting-hosts
    ['specific.but.wrong.com', '/s5', 404],
    ['wildcard.io', '/s5', 404],
  ];
  for (const [host, path, code, backend] of cases) {
    test(`${G}: Host ${host} ${path} → ${code}${backend ? ` ${backend}` : ''}`, async () => {
      await expectConsistent(http(G, host, path), { status: code, ...(backend ? { backend } : {}) });
    });
  }
  const all: [string, number][] = [
    ['first.com', 200],
    ['sub.first.com', 200],
    ['second.com', 200],
    ['sub.second.com', 200],
    ['third.com', 404],
    ['sub.third.com', 404],
  ];
  for (const [host, code] of all) {
    test(`${G}-all (no listener hostname): Host ${host} → ${code}`, async () => {
      await expectConsistent(http(`${G}-all`, host, '/'), {
        status: code,
        ...(code === 200 ? { backend: V2 } : {}),
      });
    });
  }
});

describe('HTTPRouteListenerHostnameMatching', () => {
  const G = 'httproute-listener-hostname-matching';
  test('routes Accepted, ResolvedRefs=True', () => {
    assertRoutesAccepted(status, ['backend-v1', 'backend-v2', 'backend-v3']);
  });
  const cases: [string, number, string?][] = [
    ['bar.com', 200, V1],
    ['foo.bar.com', 200, V2],
    ['baz.bar.com', 200, V3],
    ['boo.bar.com', 200, V3],
    ['multiple.prefixes.bar.com', 200, V3],
    ['multiple.prefixes.foo.com', 200, V3],
    ['foo.com', 404],
    ['no.matching.host', 404],
  ];
  for (const [host, code, backend] of cases) {
    test(`Host ${host} → ${code}${backend ? ` ${backend}` : ''}`, async () => {
      await expectConsistent(http(G, host, '/'), { status: code, ...(backend ? { backend } : {}) });
    });
  }
});

describe('GatewayHTTPListenerIsolation', () => {
  // The one table of the Go test, played against both Gateways.
  const listenerPaths = [
    '/empty-hostname',
    '/wildcard-example-com',
    '/wildcard-foo-example-com',
    '/abc-foo-example-com',
  ];
  const hosts = ['bar.com', 'bar.example.com', 'bar.foo.example.com', 'abc.foo.example.com'];
  for (const [gateway, suffix] of [
    ['http-listener-isolation', ''],
    ['http-listener-isolation-with-hostname-intersection', '-with-hostname-intersection'],
  ] as const) {
    test(`${gateway}: routes Accepted, ResolvedRefs=True`, () => {
      assertRoutesAccepted(
        status,
        ['empty-hostname', 'wildcard-example-com', 'wildcard-foo-example-com', 'abc-foo-example-com'].map(
          (l) => `attaches-to-${l}${suffix}`,
        ),
      );
    });
    hosts.forEach((host, i) => {
      // A request reaches only the routes of the most specific listener matching its Host.
      test(`${gateway}: Host ${host} → only ${listenerPaths[i]} (200), other listeners' paths 404`, async () => {
        for (const [j, path] of listenerPaths.entries()) {
          const exp: Expected = i === j ? { status: 200, backend: V1 } : { status: 404 };
          await expectConsistent(http(gateway, host, path), exp);
        }
      });
    });
  }
});

describe('GatewayFrontendClientCertificateValidation', () => {
  const addr = ADDRESS['client-validation-default']!;
  const req = (port: number, sni: string, cert: CertPair | undefined, h2: boolean): Req => ({
    address: addr,
    port: gw.port(port),
    host: sni,
    path: '/',
    h2,
    tls: {
      servername: sni,
      ca: pki.server.certPem,
      ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}),
    },
  });
  test('routes Accepted, ResolvedRefs=True', () => {
    assertRoutesAccepted(status, [
      'client-certificate-validation-https-test',
      'client-certificate-validation-https-test-no-hostname',
    ]);
  });
  const listeners = [
    // default: tls-validity-checks-ca-certificate; perPort 8443: tls-validity-checks-per-port-ca-certificate
    { port: 443, sni: 'example.org', backend: V1, good: () => pki.client, other: () => pki.perPortClient },
    {
      port: 8443,
      sni: 'second-example.org',
      backend: V2,
      good: () => pki.perPortClient,
      other: () => pki.client,
    },
  ];
  for (const l of listeners) {
    for (const h2 of [false, true]) {
      const proto = h2 ? 'h2' : 'HTTP/1.1';
      test(`${l.port} (${proto}): the matching CA's client certificate → 200 ${l.backend}`, async () => {
        await expectConsistent(req(l.port, l.sni, l.good(), h2), { status: 200, backend: l.backend });
      });
      test(`${l.port} (${proto}): the other CA's client certificate → refused`, async () => {
        await expectRefused(req(l.port, l.sni, l.other(), h2));
      });
      test(`${l.port} (${proto}): no client certificate → refused`, async () => {
        await expectRefused(req(l.port, l.sni, undefined, h2));
      });
    }
  }
});

describe('GatewayFrontendClientCertificateValidationInsecureFallback', () => {
  const addr = ADDRESS['client-validation-insecure-fallback']!;
  test('Gateway InsecureFrontendValidationMode=True/ConfigurationChanged; routes Accepted', () => {
    const g = status.statuses.find(
      (o) => o.kind === 'Gateway' && o.metadata.name === 'client-validation-insecure-fallback',
    );
    const c = ((g?.status.conditions ?? []) as { type: string; status: string; reason: string }[]).find(
      (x) => x.type === 'InsecureFrontendValidationMode',
    );
    assert.deepEqual([c?.status, c?.reason], ['True', 'ConfigurationChanged']);
    assertRoutesAccepted(status, [
      'client-cert-validation-insecure-fallback-test',
      'client-cert-validation-insecure-fallback-test-no-hostname',
    ]);
  });
  for (const [port, sni, backend] of [
    [443, 'example.org', V1],
    [8443, 'second-example.org', V2],
  ] as const) {
    for (const [label, cert] of [
      ['default CA cert', () => pki.client],
      ['per-port CA cert', () => pki.perPortClient],
      ['no cert', () => undefined],
    ] as const) {
      test(`${port}: ${label} → 200 ${backend}`, async () => {
        const c = cert();
        await expectConsistent(
          {
            address: addr,
            port: gw.port(port),
            host: sni,
            tls: {
              servername: sni,
              ca: pki.server.certPem,
              ...(c ? { cert: c.certPem, key: c.keyPem } : {}),
            },
          },
          { status: 200, backend },
        );
      });
    }
  }
});

describe('HTTP → HTTPS redirect (RequestRedirect scheme https)', () => {
  const addr = ADDRESS['redirect-and-websocket']!;
  test('routes Accepted, ResolvedRefs=True', () => {
    assertRoutesAccepted(status, ['http-to-https', 'https-app']);
  });
  test('http://app.wildcard.org/some/path?x=1 → 301 https://app.wildcard.org/some/path?x=1, then 200 over HTTPS', async () => {
    const res = await send({
      address: addr,
      port: gw.port(80),
      host: 'app.wildcard.org',
      path: '/some/path?x=1',
    });
    assert.equal(res.status, 301, res.text);
    // Scheme https with no port given: the well-known port, so none in the Location (redirect port defaults).
    assert.equal(res.headers.location, 'https://app.wildcard.org/some/path?x=1');
    const url = new URL(String(res.headers.location));
    const followed = await send(
      https(addr, gw.port(443), url.hostname, url.host, `${url.pathname}${url.search}`),
    );
    assert.equal(followed.status, 200, followed.text);
    assert.match(followed.echo?.pod ?? '', /^infra-backend-v1-/);
    assert.equal(followed.echo?.path, '/some/path?x=1');
  });
  test('a Host matching no route on the HTTP listener → 404, not a redirect', async () => {
    const res = await send({ address: addr, port: gw.port(80), host: 'other.wildcard.org', path: '/' });
    assert.equal(res.status, 404);
  });
});

describe('WebSocket through an HTTPS listener', () => {
  const addr = ADDRESS['redirect-and-websocket']!;
  test('Upgrade: websocket over TLS reaches the backend, frames echo both ways', async () => {
    const { socket, response } = await wsConnect(addr, gw.port(443), 'app.wildcard.org', '/ws/chat');
    try {
      assert.equal(response.statusCode, 101);
      assert.equal(String(response.headers.upgrade).toLowerCase(), 'websocket');
      for (const msg of ['hello', 'x'.repeat(300), 'ünïcødé']) {
        const echoed = await withTimeout(wsRoundTrip(socket, msg), 5_000, 'websocket echo');
        assert.equal(echoed, `echo:${msg}`);
      }
    } finally {
      socket.destroy();
    }
    assert.equal(ws.upgrades.at(-1)?.path, '/ws/chat');
    assert.equal(ws.upgrades.at(-1)?.host, 'app.wildcard.org');
  });
  test('the same path without Upgrade is a plain request to the same backend', async () => {
    const res = await send(https(addr, gw.port(443), 'app.wildcard.org', 'app.wildcard.org', '/ws/plain'));
    assert.equal(res.status, 200);
    assert.equal(res.text, 'ws-echo plain');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// A tiny WebSocket echo backend (RFC 6455, text frames, payload < 64 KiB) and client.

interface WsEcho {
  port: number;
  upgrades: { path: string; host: string }[];
  close(): Promise<void>;
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptKey = (key: string) =>
  createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');

function encodeFrame(payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, len]) : Buffer.from([0x81, 126, len >> 8, len & 0xff]);
  if (mask) head[1] = head[1]! | 0x80;
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([head, key, masked]);
}

/** Decodes one complete frame at the start of buf, or null when more bytes are needed. */
function decodeFrame(buf: Buffer): { payload: Buffer; rest: Buffer } | null {
  if (buf.length < 2) return null;
  let len = buf[1]! & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  }
  const masked = (buf[1]! & 0x80) !== 0;
  const key = masked ? buf.subarray(off, off + 4) : null;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (key) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i % 4]!;
  return { payload, rest: buf.subarray(off + len) };
}

async function startWsEcho(): Promise<WsEcho> {
  const sockets = new Set<Socket>();
  const upgrades: WsEcho['upgrades'] = [];
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ws-echo plain');
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    upgrades.push({ path: req.url ?? '', host: req.headers.host ?? '' });
    const key = req.headers['sec-websocket-key'];
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket' || typeof key !== 'string') {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    );
    let buf: Buffer = Buffer.from(head);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (let f = decodeFrame(buf); f; f = decodeFrame(buf)) {
        buf = f.rest;
        socket.write(encodeFrame(Buffer.from(`echo:${f.payload.toString('utf8')}`), false));
      }
    };
    socket.on('data', onData);
    if (buf.length) onData(Buffer.alloc(0));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    upgrades,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function wsConnect(
  address: string,
  port: number,
  host: string,
  path: string,
): Promise<{ socket: Socket; response: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const req = httpsRequest({
      host: address,
      port,
      path,
      servername: host,
      ca: pki.server.certPem,
      checkServerIdentity: goCheckServerIdentity,
      agent: false,
      timeout: 5_000,
      ALPNProtocols: ['http/1.1'],
      headers: {
        host,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': key,
        'sec-websocket-version': '13',
      },
    } as RequestOptions);
    req.on('upgrade', (response: IncomingMessage, socket: Socket, head: Buffer) => {
      try {
        assert.equal(response.headers['sec-websocket-accept'], acceptKey(key));
        assert.equal(head.length, 0);
      } catch (e) {
        socket.destroy();
        reject(e);
        return;
      }
      resolve({ socket, response });
    });
    req.on('response', (res) => {
      res.resume();
      reject(new Error(`expected 101, got ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('websocket upgrade timed out')));
    req.on('error', reject);
    req.end();
  });
}

function wsRoundTrip(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const f = decodeFrame(buf);
      if (!f) return;
      cleanup();
      resolve(f.payload.toString('utf8'));
    };
    const onClose = () => {
      cleanup();
      reject(new Error('websocket closed before the echo'));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onClose);
    socket.write(encodeFrame(Buffer.from(text), true));
  });
}
