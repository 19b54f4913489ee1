// SecurityPolicy and the ingress-nginx protection annotations → HttpRule.security / TableListener.connectionRate.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseManifests, toResources } from '../api/parse.ts';
import { validateRaw } from '../api/validate.ts';
import type { HttpRule, RoutingTable } from '../table/types.ts';
import { DEFAULT_CONTROLLER_NAME, translate } from './index.ts';

const BASE = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: snigate }
spec: { controllerName: ${DEFAULT_CONTROLLER_NAME} }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: snigate
  listeners:
    - { name: web, protocol: HTTP, port: 80 }
    - { name: admin, protocol: HTTP, port: 8080 }
    - { name: pt, protocol: TLS, port: 443, tls: { mode: Passthrough } }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec: { ports: [{ port: 80 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: { name: pt, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: pt }]
  hostnames: ["pt.example.com"]
  rules: [{ backendRefs: [{ name: echo, port: 80 }] }]
`;

function route(name: string, annotations: Record<string, string> = {}): string {
  const ann = Object.keys(annotations).length ? `\n  annotations: ${JSON.stringify(annotations)}` : '';
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: default${ann}
spec:
  parentRefs: [{ name: edge }]
  hostnames: ["${name}.example.com"]
  rules: [{ backendRefs: [{ name: echo, port: 80 }] }]
`;
}

function policy(name: string, target: string, spec: string, created = '2024-01-01T00:00:00Z'): string {
  return `apiVersion: gateway.snigate.io/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name}, namespace: default, creationTimestamp: "${created}" }
spec:
  targetRefs: [${target}]
${spec
  .trim()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
`;
}

const GW = (section?: string) =>
  `{ group: gateway.networking.k8s.io, kind: Gateway, name: edge${section ? `, sectionName: ${section}` : ''} }`;
const RT = (name: string) => `{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${name} }`;

function run(...docs: string[]) {
  const { objects, diagnostics } = parseManifests([BASE, ...docs].join('---\n'), 'test.yaml');
  assert.deepEqual(
    diagnostics.filter((d) => d.severity === 'error'),
    [],
  );
  const { resources } = toResources(objects);
  return translate(resources, {
    controllerName: DEFAULT_CONTROLLER_NAME,
    serveUnknownClasses: true,
    statusAddresses: [],
  });
}

function ruleFor(table: RoutingTable, port: number, host: string): HttpRule {
  const l = table.binds.find((b) => b.port === port)!.listeners[0]!;
  return l.http!.find((v) => v.hostname === host)!.rules[0]!;
}

function accepted(
  r: ReturnType<typeof run>,
  name: string,
): { status: string; reason: string; message: string }[] {
  const s = r.statuses.find((x) => x.kind === 'SecurityPolicy' && x.metadata.name === name)!;
  return (
    s.status.ancestors as {
      conditions: { type: string; status: string; reason: string; message: string }[];
    }[]
  ).map((a) => a.conditions.find((c) => c.type === 'Accepted')!);
}

describe('SecurityPolicy attachment', () => {
  test('Gateway ← listener ← route, section by section; a route can turn the WAF off', () => {
    const r = run(
      route('a'),
      route('b'),
      policy('gw', GW(), 'waf: { mode: Block, paranoiaLevel: 2 }\nipAccess: { deny: ["192.0.2.0/24"] }'),
      policy('web', GW('web'), 'rateLimit: { requests: 5, unit: Second, burst: 10 }'),
      policy('b', RT('b'), 'waf: { enabled: false }'),
      policy('pt', GW('pt'), 'connectionRateLimit: { connections: 20, unit: Second, burst: 40 }'),
    );
    const a80 = ruleFor(r.table, 80, 'a.example.com').security!;
    assert.equal(a80.waf?.enabled, true);
    assert.equal(a80.waf?.paranoia, 2);
    assert.deepEqual(a80.ipAccess, { allow: [], deny: ['192.0.2.0/24'] });
    assert.equal(a80.rateLimit?.rate, 5);
    assert.equal(a80.rateLimit?.scope, 'SecurityPolicy/default/web@Gateway/default/edge/web');
    assert.deepEqual(a80.sources, {
      waf: 'SecurityPolicy/default/gw',
      ipAccess: 'SecurityPolicy/default/gw',
      rateLimit: 'SecurityPolicy/default/web',
    });
    // The other listener has the Gateway's settings only.
    const a8080 = ruleFor(r.table, 8080, 'a.example.com').security!;
    assert.equal(a8080.rateLimit, undefined);
    assert.equal(a8080.waf?.paranoia, 2);
    assert.equal(ruleFor(r.table, 80, 'b.example.com').security?.waf?.enabled, false);
    const pt = r.table.binds.find((b) => b.port === 443)!.listeners[0]!;
    assert.deepEqual(pt.connectionRate, { rate: 20, period: 'second', burst: 40 });
    for (const n of ['gw', 'web', 'b', 'pt']) assert.equal(accepted(r, n)[0]!.reason, 'Accepted', n);
  });

  test('statuses: TargetNotFound, Conflicted (older wins), and notes for settings that do not apply', () => {
    const r = run(
      route('a'),
      policy('old', RT('a'), 'waf: {}', '2024-01-01T00:00:00Z'),
      policy('new', RT('a'), 'waf: { mode: Detect }', '2024-02-01T00:00:00Z'),
      policy('ghost', RT('nope'), 'waf: {}'),
      policy('nolistener', GW('nope'), 'waf: {}'),
      policy('ptwaf', GW('pt'), 'waf: {}'),
    );
    assert.equal(accepted(r, 'old')[0]!.reason, 'Accepted');
    const c = accepted(r, 'new')[0]!;
    assert.deepEqual([c.status, c.reason], ['False', 'Conflicted']);
    assert.match(c.message, /already has SecurityPolicy default\/old/);
    assert.equal(accepted(r, 'ghost')[0]!.reason, 'TargetNotFound');
    assert.equal(accepted(r, 'nolistener')[0]!.reason, 'TargetNotFound');
    assert.match(accepted(r, 'ptwaf')[0]!.message, /HTTPS and HTTP listeners only/);
    assert.equal(ruleFor(r.table, 80, 'a.example.com').security?.waf?.mode, 'block');
  });
});

describe('ingress-nginx annotations', () => {
  const N = 'nginx.ingress.kubernetes.io/';
  test('enable-modsecurity + snippet, limit-rps × burst multiplier, limit-connections, denylist', () => {
    const r = run(
      route('a', {
        [`${N}enable-modsecurity`]: 'true',
        [`${N}modsecurity-snippet`]:
          'SecRuleEngine On\nSecRuleRemoveById 942100 920300-920302\nSecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=2"\nSecRule ARGS "@rx x" "id:1,deny"\nInclude /etc/nginx/conf/evil.conf',
        [`${N}limit-rps`]: '10',
        [`${N}limit-burst-multiplier`]: '3',
        [`${N}limit-connections`]: '4',
        [`${N}denylist-source-range`]: '10.0.0.0/8, bad',
      }),
    );
    const s = ruleFor(r.table, 80, 'a.example.com').security!;
    assert.equal(s.waf?.mode, 'block');
    assert.equal(s.waf?.paranoia, 2);
    assert.deepEqual(s.waf?.exclusions.ruleIds, [942100, 920300, 920301, 920302]);
    assert.deepEqual(
      {
        rate: s.rateLimit?.rate,
        period: s.rateLimit?.period,
        burst: s.rateLimit?.burst,
        key: s.rateLimit?.key,
      },
      { rate: 10, period: 'second', burst: 30, key: { by: 'client-ip' } },
    );
    assert.deepEqual(s.concurrency, { perClientIp: 4, scope: 'HTTPRoute/default/a' });
    assert.deepEqual(s.ipAccess, { allow: [], deny: ['10.0.0.0/8'] });
    const refused = r.diagnostics.find((d) => d.code === 'annotation-refused');
    assert.ok(refused);
    assert.match(refused.message, /SecRule ARGS/);
    assert.match(refused.message, /Include \/etc\/nginx\/conf\/evil\.conf/);
    assert.ok(r.diagnostics.some((d) => d.code === 'annotation-invalid' && /denylist/.test(d.message)));
  });

  test('whitelist-source-range keeps real CIDRs only, with the same check as the deny list', () => {
    const r = run(
      route('w', {
        'nginx.ingress.kubernetes.io/whitelist-source-range':
          '10.0.0.0/8, bad, 300.1.1.1/8, 2001:db8::/32, 192.0.2.1',
      }),
    );
    assert.deepEqual(ruleFor(r.table, 80, 'w.example.com').limits?.allowSourceRanges, [
      '10.0.0.0/8',
      '2001:db8::/32',
      '192.0.2.1',
    ]);
    const d = r.diagnostics.find((x) => x.code === 'annotation-invalid' && /whitelist/.test(x.message));
    assert.match(d?.message ?? '', /bad, 300\.1\.1\.1\/8 is not a CIDR/);
  });

  test('enable-modsecurity alone runs detection-only (ingress-nginx default); limit-rpm; a route policy overrides', () => {
    const r = run(
      route('a', { [`${N}enable-modsecurity`]: 'true', [`${N}limit-rpm`]: '60' }),
      route('b', { [`${N}enable-modsecurity`]: 'true' }),
      policy('b', RT('b'), 'waf: { mode: Block }'),
    );
    const a = ruleFor(r.table, 80, 'a.example.com').security!;
    assert.equal(a.waf?.mode, 'detect');
    assert.deepEqual([a.rateLimit?.rate, a.rateLimit?.period, a.rateLimit?.burst], [60, 'minute', 300]);
    assert.equal(ruleFor(r.table, 80, 'b.example.com').security?.waf?.mode, 'block');
  });
});

describe('SecurityPolicy validation', () => {
  const obj = (spec: Record<string, unknown>) => ({
    apiVersion: 'gateway.snigate.io/v1alpha1',
    kind: 'SecurityPolicy',
    metadata: { name: 'p', namespace: 'default' },
    spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }], ...spec },
  });
  const errors = (spec: Record<string, unknown>) =>
    validateRaw(obj(spec))
      .filter((d) => d.severity === 'error')
      .map((d) => `${d.path}: ${d.message}`);

  test('a full policy is valid', () => {
    assert.deepEqual(
      errors({
        waf: {
          enabled: true,
          mode: 'Detect',
          paranoiaLevel: 3,
          anomalyThreshold: 7,
          exclusions: {
            ruleIds: [942100],
            paths: [{ pathPrefix: '/api', ruleIds: [920420] }],
            targets: [{ ruleIds: [942100], variable: 'ARGS', name: 'q' }],
          },
        },
        rateLimit: {
          key: { type: 'Header', header: 'X-Api-Key' },
          requests: 100,
          unit: 'Minute',
          burst: 20,
          backend: { type: 'Redis', redis: { address: 'redis.ns.svc:6379', failMode: 'Closed' } },
        },
        ipAccess: { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.1.2.3'] },
        clientIPDetection: { xForwardedFor: { trustedCIDRs: ['10.0.0.0/8'] } },
        requestLimits: { maxBodyBytes: 1048576, maxHeaderBytes: 16384, maxConcurrentPerClientIP: 10 },
        connectionRateLimit: { connections: 10, unit: 'Second', burst: 20 },
      }),
      [],
    );
  });

  test('mistakes are errors with the field path', () => {
    const e = errors({
      waf: { mode: 'block', paranoiaLevel: 5, exclusions: { paths: [{ pathPrefix: 'api"', ruleIds: [] }] } },
      rateLimit: { key: { type: 'Header' }, requests: 0, unit: 'Hour', backend: { type: 'Redis' } },
      ipAccess: { deny: ['10.0.0.0/33', 'example.com'] },
    });
    for (const p of [
      'spec.waf.mode',
      'spec.waf.paranoiaLevel',
      'spec.waf.exclusions.paths[0].pathPrefix',
      'spec.waf.exclusions.paths[0].ruleIds',
      'spec.rateLimit.key.header',
      'spec.rateLimit.requests',
      'spec.rateLimit.unit',
      'spec.rateLimit.backend.redis',
      'spec.ipAccess.deny[0]',
      'spec.ipAccess.deny[1]',
    ])
      assert.ok(
        e.some((x) => x.startsWith(`${p}:`)),
        `${p} in ${e.join('\n')}`,
      );
    assert.ok(
      errors({ targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Service', name: 'x' }] }).length > 0,
    );
  });
});
