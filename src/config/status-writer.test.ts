import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import type { ObjectStatus } from '../translate/index.ts';
import { FakeKubeServer } from './kube-fake-server.ts';
import { KubeClient } from './kube-source.ts';
import { mergeConditions, StatusWriter, type StatusWriterOptions } from './status-writer.ts';

const CTRL = 'snigate.io/gateway-controller';
const T0 = new Date('2026-01-01T00:00:00.000Z');
const T1 = new Date('2026-01-01T01:00:00.000Z');

let dir: string;
let server: FakeKubeServer;
let client: KubeClient;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snigate-status-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  server = await FakeKubeServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  client = new KubeClient(kc);
});
afterEach(async () => {
  await server.close();
});

function writer(o: Partial<StatusWriterOptions> = {}): StatusWriter {
  return new StatusWriter({
    client,
    logger: pino({ level: 'silent' }),
    controllerName: CTRL,
    now: () => T0,
    qps: 1000,
    burst: 1000,
    ...o,
  });
}

const cond = (type: string, ok: boolean, reason: string, generation = 1) => ({
  type,
  status: ok ? 'True' : 'False',
  reason,
  message: `${type} ${reason}`,
  observedGeneration: generation,
});

function routeStatus(accepted: boolean, o: { generation?: number; section?: string } = {}): ObjectStatus {
  const g = o.generation ?? 1;
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'TLSRoute',
    metadata: { name: 'r1', namespace: 'default', generation: g },
    status: {
      parents: [
        {
          parentRef: {
            group: 'gateway.networking.k8s.io',
            kind: 'Gateway',
            name: 'gw',
            sectionName: o.section ?? 'tls',
          },
          controllerName: CTRL,
          conditions: [
            cond('Accepted', accepted, accepted ? 'Accepted' : 'NotAllowedByListeners', g),
            cond('ResolvedRefs', true, 'ResolvedRefs', g),
          ],
        },
      ],
    },
  };
}

function applyRoute(status?: unknown): void {
  server.apply({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'TLSRoute',
    metadata: { name: 'r1', namespace: 'default' },
    spec: {
      parentRefs: [{ name: 'gw', sectionName: 'tls' }],
      hostnames: ['a.example.com'],
      rules: [{ backendRefs: [{ name: 's', port: 443 }] }],
    },
    ...(status ? { status } : {}),
  });
}

const patches = () => server.requests.filter((r) => r.method === 'PATCH');
type Parent = {
  controllerName: string;
  parentRef: { sectionName?: string };
  conditions: { type: string; status: string; lastTransitionTime: string }[];
};
const liveParents = () => (server.get('TLSRoute', 'r1')!.status as { parents: Parent[] }).parents;

describe('StatusWriter', () => {
  test('writes once through the status subresource (merge patch with resourceVersion); nothing when unchanged', async () => {
    applyRoute();
    const w = writer();
    const r1 = await w.write({ statuses: [routeStatus(true)] });
    assert.deepEqual({ ...r1 }, { written: 1, unchanged: 0, conflicts: 0, failed: 0, skipped: 0 });
    const [p] = patches();
    assert.equal(p?.path, '/apis/gateway.networking.k8s.io/v1/namespaces/default/tlsroutes/r1/status');
    assert.equal(p?.contentType, 'application/merge-patch+json');
    assert.ok((p!.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
    const parents = liveParents();
    assert.equal(parents[0]?.conditions[0]?.lastTransitionTime, '2026-01-01T00:00:00Z');

    const before = server.requests.length;
    const r2 = await w.write({ statuses: [routeStatus(true)] });
    assert.equal(r2.unchanged, 1);
    assert.equal(server.requests.length, before, 'remembered: not even a GET');

    // A fresh writer (another leader) reads the live object and finds nothing to change.
    const r3 = await writer({ now: () => T1 }).write({ statuses: [routeStatus(true)] });
    assert.equal(r3.unchanged, 1);
    assert.equal(patches().length, 1);
  });

  test('lastTransitionTime is kept while a condition keeps its status, and moves when it flips', async () => {
    applyRoute();
    await writer().write({ statuses: [routeStatus(true)] });
    // Same statuses, new generation (observedGeneration changes): written, times kept.
    server.apply({
      ...(server.get('TLSRoute', 'r1') as object),
      spec: { parentRefs: [{ name: 'gw', sectionName: 'tls' }], hostnames: ['b.example.com'], rules: [] },
    });
    await writer({ now: () => T1 }).write({ statuses: [routeStatus(true, { generation: 2 })] });
    let conds = liveParents()[0]!.conditions;
    assert.deepEqual(
      conds.map((c) => [c.type, c.lastTransitionTime]),
      [
        ['Accepted', '2026-01-01T00:00:00Z'],
        ['ResolvedRefs', '2026-01-01T00:00:00Z'],
      ],
    );
    await writer({ now: () => T1 }).write({ statuses: [routeStatus(false, { generation: 2 })] });
    conds = liveParents()[0]!.conditions;
    assert.deepEqual(
      conds.map((c) => [c.type, c.status, c.lastTransitionTime]),
      [
        ['Accepted', 'False', '2026-01-01T01:00:00Z'],
        ['ResolvedRefs', 'True', '2026-01-01T00:00:00Z'],
      ],
    );
  });

  test("other controllers' parents are kept untouched; our stale entries are replaced", async () => {
    const theirs = {
      parentRef: { name: 'other-gw' },
      controllerName: 'example.com/other',
      conditions: [
        {
          type: 'Accepted',
          status: 'False',
          reason: 'Theirs',
          message: 'm',
          lastTransitionTime: '2020-01-01T00:00:00Z',
        },
      ],
    };
    applyRoute({
      parents: [
        theirs,
        { parentRef: { name: 'gw', sectionName: 'old' }, controllerName: CTRL, conditions: [] },
      ],
    });
    await writer().write({ statuses: [routeStatus(true)] });
    const parents = liveParents();
    assert.equal(parents.length, 2);
    assert.deepEqual(parents[0], theirs);
    assert.equal(parents[1]?.controllerName, CTRL);
    assert.equal(parents[1]?.parentRef.sectionName, 'tls');
  });

  test('409 Conflict: read again, merge again, retry (bounded)', async () => {
    applyRoute();
    server.injectStatusConflicts(2);
    const r = await writer().write({ statuses: [routeStatus(true)] });
    assert.equal(r.written, 1);
    assert.equal(r.conflicts, 2);
    assert.equal(patches().length, 3);
    assert.equal(
      server.requests.filter((q) => q.method === 'GET').length,
      3,
      'a fresh GET before every attempt',
    );

    server.injectStatusConflicts(10);
    const r2 = await writer({ maxAttempts: 3 }).write({ statuses: [routeStatus(false)] });
    assert.equal(r2.failed, 1);
    assert.equal(patches().length, 6);
  });

  test('an object whose spec is newer than the snapshot is left for the next reload', async () => {
    applyRoute();
    server.apply({
      ...(server.get('TLSRoute', 'r1') as object),
      spec: { parentRefs: [], hostnames: ['z.example.com'], rules: [] },
    });
    const r = await writer().write({ statuses: [routeStatus(true, { generation: 1 })] });
    assert.equal(r.skipped, 1);
    assert.equal(patches().length, 0);
  });

  test('only the leader writes', async () => {
    applyRoute();
    let leader = false;
    const w = writer({ isLeader: () => leader });
    assert.equal((await w.write({ statuses: [routeStatus(true)] })).skipped, 1);
    assert.equal(server.requests.length, 0);
    leader = true;
    assert.equal((await w.resync())?.written, 1);
  });

  test('Gateway: addresses from --publish-service, listeners merged by name, foreign prefixed conditions kept', async () => {
    server.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'snigate', namespace: 'snigate-system' },
      spec: { type: 'LoadBalancer', ports: [{ port: 443 }] },
      status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }, { hostname: 'lb.example.net' }] } },
    });
    server.apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: 'default' },
      spec: { gatewayClassName: 'snigate', listeners: [{ name: 'tls', port: 443, protocol: 'TLS' }] },
      status: {
        conditions: [
          {
            type: 'example.com/Audited',
            status: 'True',
            reason: 'Ok',
            message: '',
            lastTransitionTime: '2020-01-01T00:00:00Z',
          },
        ],
      },
    });
    const gw: ObjectStatus = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: 'default', generation: 1 },
      status: {
        addresses: [{ type: 'IPAddress', value: '10.0.0.5' }],
        conditions: [cond('Accepted', true, 'Accepted'), cond('Programmed', true, 'Programmed')],
        listeners: [
          {
            name: 'tls',
            attachedRoutes: 1,
            supportedKinds: [{ kind: 'TLSRoute' }],
            conditions: [cond('Accepted', true, 'Accepted')],
          },
        ],
      },
    };
    const r = await writer({ publishService: { namespace: 'snigate-system', name: 'snigate' } }).write({
      statuses: [gw],
    });
    assert.equal(r.written, 1);
    const st = server.get('Gateway', 'gw')?.status as {
      addresses: unknown;
      conditions: { type: string }[];
      listeners: { name: string }[];
    };
    assert.deepEqual(st.addresses, [
      { type: 'IPAddress', value: '203.0.113.7' },
      { type: 'Hostname', value: 'lb.example.net' },
    ]);
    assert.deepEqual(
      st.conditions.map((c) => c.type),
      ['Accepted', 'Programmed', 'example.com/Audited'],
    );
    assert.equal(st.listeners[0]?.name, 'tls');
  });

  test("Ingress status from the translator: loadBalancer replaced, the publish Service's address when set", async () => {
    server.apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'mine', namespace: 'default' },
      spec: { ingressClassName: 'snigate', rules: [{ host: 'mine.example.com' }] },
      status: { loadBalancer: { ingress: [{ ip: '10.9.9.9' }] } },
    });
    const ing = (ip: string): ObjectStatus => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'mine', namespace: 'default', generation: 1 },
      status: { loadBalancer: { ingress: [{ ip }] } },
    });
    assert.equal((await writer().write({ statuses: [ing('192.0.2.10')] })).written, 1);
    assert.deepEqual(server.get('Ingress', 'mine')?.status, {
      loadBalancer: { ingress: [{ ip: '192.0.2.10' }] },
    });

    server.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'snigate', namespace: 'snigate-system' },
      spec: { type: 'LoadBalancer', ports: [{ port: 443 }] },
      status: { loadBalancer: { ingress: [{ hostname: 'lb.example.net' }] } },
    });
    const w = writer({ publishService: { namespace: 'snigate-system', name: 'snigate' } });
    assert.equal((await w.write({ statuses: [ing('192.0.2.10')] })).written, 1);
    assert.deepEqual(server.get('Ingress', 'mine')?.status, {
      loadBalancer: { ingress: [{ hostname: 'lb.example.net' }] },
    });
  });

  test('concurrent writes coalesce: the newest waiting input wins', async () => {
    applyRoute();
    const w = writer();
    const a = w.write({ statuses: [routeStatus(true)] });
    const b = w.write({ statuses: [routeStatus(true, { section: 'x' })] });
    const c = w.write({ statuses: [routeStatus(false)] });
    await Promise.all([a, b, c]);
    assert.equal(a, c, 'none had started: one write, of the newest input');
    assert.equal(patches().length, 1);
    assert.equal(liveParents()[0]?.conditions[0]?.status, 'False');
  });
});

test('mergeConditions keeps a foreign domain-prefixed type only where asked', () => {
  const live = [
    { type: 'Accepted', status: 'True' as const, reason: 'Accepted', message: '', lastTransitionTime: 'old' },
    {
      type: 'Conflicted',
      status: 'True' as const,
      reason: 'HostnameConflict',
      message: '',
      lastTransitionTime: 'old',
    },
    { type: 'x.io/Y', status: 'True' as const, reason: 'R', message: '', lastTransitionTime: 'old' },
  ];
  const desired = [{ type: 'Accepted', status: 'True' as const, reason: 'Accepted', message: 'ok' }];
  assert.deepEqual(
    mergeConditions(live, desired, 'now', true).map((c) => `${c.type}@${c.lastTransitionTime}`),
    ['Accepted@old', 'x.io/Y@old'],
  );
  assert.deepEqual(
    mergeConditions(live, desired, 'now', false).map((c) => c.type),
    ['Accepted'],
  );
});
