/** Table building at scale: route targets (unique and duplicate keys), winners per hostname, age order. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { EndpointSlice, Gateway, KubeObject, Resources, Service, TLSRoute } from '../api/types.ts';
import { emptyResources } from '../api/types.ts';
import type { SniRoute } from '../table/types.ts';
import { compareSpecificity } from './hostnames.ts';
import { DEFAULT_CONTROLLER_NAME, translate } from './index.ts';
import { byAge, sortedByAge } from './sort.ts';
import { winnersBySpecificity } from './table.ts';

const OPTS = { controllerName: DEFAULT_CONTROLLER_NAME, serveUnknownClasses: true, statusAddresses: [] };

function resources(
  routes: { name: string; created: string; hostnames: string[]; service: string }[],
): Resources {
  const res = emptyResources();
  const gw: Gateway = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'default', generation: 1 },
    spec: {
      gatewayClassName: 'snigate',
      listeners: [{ name: 'tls', protocol: 'TLS', port: 443, tls: { mode: 'Passthrough' } }],
    },
  };
  res.gateways.push(gw);
  for (const name of ['one', 'two']) {
    const svc: Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: { ports: [{ port: 443 }] },
    };
    const slice: EndpointSlice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ port: 8443 }],
      endpoints: [{ addresses: [name === 'one' ? '10.0.0.1' : '10.0.0.2'] }],
    };
    res.services.push(svc);
    res.endpointSlices.push(slice);
  }
  for (const r of routes) {
    const route: TLSRoute = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'TLSRoute',
      metadata: { name: r.name, namespace: 'default', generation: 1, creationTimestamp: r.created },
      spec: {
        parentRefs: [{ name: 'gw' }],
        hostnames: r.hostnames,
        rules: [{ backendRefs: [{ name: r.service, port: 443 }] }],
      },
    };
    res.tlsRoutes.push(route);
  }
  return res;
}

function served(res: Resources): string[] {
  const l = translate(res, OPTS).table.binds[0]!.listeners[0]!;
  return l.routes.map(
    (r) => `${r.hostname}→${r.route.name}:${r.backends.backends.map((b) => b.id).join(',')}`,
  );
}

test('each route serves its hostnames with its own backends', () => {
  const res = resources([
    { name: 'a', created: '2024-01-01T00:00:00Z', hostnames: ['a.example.com'], service: 'one' },
    {
      name: 'b',
      created: '2024-01-02T00:00:00Z',
      hostnames: ['b.example.com', '*.example.com'],
      service: 'two',
    },
  ]);
  assert.deepEqual(served(res), [
    'a.example.com→a:Service/default/one:443',
    'b.example.com→b:Service/default/two:443',
    '*.example.com→b:Service/default/two:443',
  ]);
});

test('two routes with the same namespace/name: the later one is the target of both (Map semantics)', () => {
  // Loaders never produce this; translate() still answers as when targets were a Map keyed kind/ns/name.
  const res = resources([
    { name: 'dup', created: '2024-01-01T00:00:00Z', hostnames: ['old.example.com'], service: 'one' },
    { name: 'dup', created: '2024-01-02T00:00:00Z', hostnames: ['new.example.com'], service: 'two' },
    { name: 'other', created: '2024-01-03T00:00:00Z', hostnames: ['other.example.com'], service: 'one' },
  ]);
  assert.deepEqual(served(res), [
    'new.example.com→dup:Service/default/two:443',
    'old.example.com→dup:Service/default/two:443',
    'other.example.com→other:Service/default/one:443',
  ]);
});

test('one hostname claimed by several routes: the oldest wins', () => {
  const res = resources([
    { name: 'young', created: '2024-01-02T00:00:00Z', hostnames: ['x.example.com'], service: 'two' },
    { name: 'old', created: '2024-01-01T00:00:00Z', hostnames: ['x.example.com'], service: 'one' },
  ]);
  assert.deepEqual(served(res), ['x.example.com→old:Service/default/one:443']);
});

const hostname = fc.oneof(
  fc.constant('*'),
  fc
    .tuple(
      fc.boolean(),
      fc.array(fc.constantFrom('a', 'b', 'ab', 'x-y', 'example', 'com'), { minLength: 1, maxLength: 3 }),
    )
    .map(([wild, labels]) => `${wild ? '*.' : ''}${labels.join('.')}`),
);

test('winnersBySpecificity: first claim per hostname, sorted by compareSpecificity (property)', () => {
  fc.assert(
    fc.property(fc.array(hostname, { maxLength: 40 }), (hosts) => {
      const claims: SniRoute[] = hosts.map((h, i) => ({
        hostname: h,
        route: { kind: 'TLSRoute', namespace: 'ns', name: `r${i}` },
        backends: { backends: [] },
      }));
      // The reference: what tableListener did before, a Map (first insertion wins) then a sort.
      const winners = new Map<string, SniRoute>();
      for (const c of claims) if (!winners.has(c.hostname)) winners.set(c.hostname, c);
      const expected = [...winners.values()].sort((a, b) => compareSpecificity(a.hostname, b.hostname));
      assert.deepEqual(winnersBySpecificity(claims), expected);
    }),
  );
});

test('sortedByAge: the order of .sort(byAge), keys built once (property)', () => {
  const obj = fc.record({
    ns: fc.option(fc.constantFrom('a', 'a-b', 'b', 'a.b'), { nil: undefined }),
    name: fc.constantFrom('x', 'x-1', 'y', 'x.y'),
    ts: fc.option(fc.constantFrom('2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z'), { nil: undefined }),
  });
  fc.assert(
    fc.property(fc.array(obj, { maxLength: 30 }), (specs) => {
      const objs: KubeObject[] = specs.map((s, i) => ({
        apiVersion: 'v1',
        kind: 'X',
        metadata: { name: s.name, namespace: s.ns, creationTimestamp: s.ts, uid: String(i) },
      }));
      const items = objs.map((o) => ({ o }));
      assert.deepEqual(
        sortedByAge(items, (x) => x.o).map((x) => x.o),
        [...objs].sort(byAge),
      );
    }),
  );
});
