import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HttpMethod, KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { FakeKubeServer } from './kube-fake-server.ts';
import { KINDS, KubeClient, KubeSource, type KubeSourceOptions } from './kube-source.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snigate-kube-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

export function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function setup(
  o: Partial<KubeSourceOptions> = {},
  prepare?: (s: FakeKubeServer) => void,
): Promise<{
  server: FakeKubeServer;
  source: KubeSource;
  lines: Record<string, unknown>[];
  done(): Promise<void>;
}> {
  const server = await FakeKubeServer.start();
  prepare?.(server);
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  const { logger, lines } = captureLogger();
  const source = new KubeSource({
    client: new KubeClient(kc),
    logger,
    debounceMs: 20,
    missingRetryMs: 100,
    backoffMs: { initial: 20, max: 200 },
    ...o,
  });
  return {
    server,
    source,
    lines,
    async done() {
      source.stop();
      await server.close();
    },
  };
}

const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name: 'gw', namespace: 'default' },
  spec: {
    gatewayClassName: 'snigate',
    listeners: [{ name: 'tls', protocol: 'TLS', port: 443, tls: { mode: 'Passthrough' } }],
  },
};

const route = (name: string, host: string, ns = 'default') => ({
  apiVersion: 'gateway.networking.k8s.io/v1alpha2',
  kind: 'TLSRoute',
  metadata: { name, namespace: ns },
  spec: {
    parentRefs: [{ name: 'gw', namespace: 'default' }],
    hostnames: [host],
    rules: [{ backendRefs: [{ name: 'svc', port: 443 }] }],
  },
});

const service = (name: string, ns = 'default') => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: ns },
  spec: { ports: [{ port: 443 }] },
});

describe('KubeSource', () => {
  test('snapshot() after the initial list of every kind; served version, TLS Secrets only', async () => {
    const k = await setup({}, (s) => {
      s.apply(gateway);
      s.apply(route('r1', 'a.example.com'));
      s.apply(service('svc'));
      s.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'cert' },
        type: 'kubernetes.io/tls',
        stringData: { 'tls.crt': 'x', 'tls.key': 'y' },
      });
      s.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'token' },
        type: 'Opaque',
        stringData: { password: 'p' },
      });
      s.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { team: 'a' } } });
    });
    try {
      const snap = await k.source.snapshot();
      assert.equal(snap.resources.gateways.length, 1);
      assert.equal(
        snap.resources.tlsRoutes[0]?.apiVersion,
        'gateway.networking.k8s.io/v1',
        'read at the served v1',
      );
      assert.equal(snap.resources.services[0]?.kind, 'Service', 'list items get their kind back');
      assert.deepEqual(
        snap.resources.secrets.map((s) => s.metadata.name),
        ['cert'],
      );
      assert.equal(snap.resources.namespaces[0]?.metadata.labels?.team, 'a');
      assert.equal(snap.objectCount, 5);
      const secretList = k.server.requests.find((r) => r.path === '/api/v1/secrets' && !r.query.watch);
      assert.equal(secretList?.query.fieldSelector, 'type=kubernetes.io/tls');
      // Every kind was listed once, cluster-wide.
      const lists = k.server.requests.filter((r) => r.method === 'GET' && !r.query.watch).map((r) => r.path);
      assert.equal(new Set(lists).size, KINDS.length);
    } finally {
      await k.done();
    }
  });

  test('watch ADDED/MODIFIED/DELETED change the snapshot and fire onChange (debounced); our status writes do not', async () => {
    const k = await setup({}, (s) => s.apply(gateway));
    try {
      const changes: string[] = [];
      k.source.start((r) => changes.push(r));
      await k.source.snapshot();
      await waitFor('watches open', () => k.server.openWatches() === KINDS.length);

      k.server.apply(route('r1', 'a.example.com'));
      k.server.apply(route('r2', 'b.example.com'));
      await waitFor('ADDED', () => changes.length === 1);
      assert.match(changes[0]!, /ADDED TLSRoute default\/r1 \(\+1 more\)/);
      assert.equal((await k.source.snapshot()).resources.tlsRoutes.length, 2);

      k.server.apply({ ...route('r1', 'c.example.com') });
      await waitFor('MODIFIED', () => changes.length === 2);
      assert.deepEqual((await k.source.snapshot()).resources.tlsRoutes[0]?.spec.hostnames, ['c.example.com']);

      k.server.delete('TLSRoute', 'r2');
      await waitFor('DELETED', () => changes.length === 3);
      assert.match(changes[2]!, /DELETED TLSRoute default\/r2/);
      assert.equal((await k.source.snapshot()).resources.tlsRoutes.length, 1);

      // A status write (what the leader does) changes resourceVersion and status only: no reload.
      const client = new KubeClient(loadKc(await k.server.writeKubeconfig(dir)));
      await client.request(
        HttpMethod.PATCH,
        '/apis/gateway.networking.k8s.io/v1/namespaces/default/tlsroutes/r1/status',
        {
          contentType: 'application/merge-patch+json',
          body: { status: { parents: [] } },
        },
      );
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(changes.length, 3);
      const stored = (await k.source.snapshot()).resources.tlsRoutes[0] as unknown as { status?: unknown };
      assert.deepEqual(stored.status, { parents: [] }, 'the stored object still follows the live one');
    } finally {
      await k.done();
    }
  });

  test('BOOKMARK advances the resourceVersion a re-watch starts from', async () => {
    const k = await setup();
    try {
      k.source.start(() => {});
      await k.source.snapshot();
      await waitFor('watches open', () => k.server.openWatches() === KINDS.length);
      const before = k.source.resourceVersions['Gateway@all'];
      k.server.bookmark();
      const rv = String(k.server.resourceVersion);
      await waitFor('bookmark', () => k.source.resourceVersions['Gateway@all'] === rv);
      assert.notEqual(before, rv);
      const watch = k.server.requests.find((r) => r.query.watch && r.path.endsWith('/gateways'));
      assert.equal(watch?.query.allowWatchBookmarks, 'true');
      // The server ends watches (its timeout): the client re-watches from the bookmark, without a list.
      const listsBefore = k.server.requests.filter(
        (r) => r.path.endsWith('/gateways') && !r.query.watch,
      ).length;
      k.server.closeWatches();
      await waitFor('re-watch', () =>
        k.server.requests.some(
          (r) => r.path.endsWith('/gateways') && r.query.watch && r.query.resourceVersion === rv,
        ),
      );
      assert.equal(
        k.server.requests.filter((r) => r.path.endsWith('/gateways') && !r.query.watch).length,
        listsBefore,
      );
    } finally {
      await k.done();
    }
  });

  test('410 Gone: list again, and what changed meanwhile is seen', async () => {
    const k = await setup({}, (s) => s.apply(route('r1', 'a.example.com')));
    try {
      const changes: string[] = [];
      k.source.start((r) => changes.push(r));
      await k.source.snapshot();
      await waitFor('watches open', () => k.server.openWatches() === KINDS.length);
      const lists = () =>
        k.server.requests.filter((r) => r.path.endsWith('/tlsroutes') && !r.query.watch).length;
      assert.equal(lists(), 1);
      k.server.compact();
      k.server.apply(route('r2', 'b.example.com'));
      await waitFor('re-list', () => lists() === 2);
      await waitFor('change', () => changes.length > 0);
      assert.equal((await k.source.snapshot()).resources.tlsRoutes.length, 2);
      assert.ok(k.lines.some((l) => String(l.msg).includes('410 Gone')));
    } finally {
      await k.done();
    }
  });

  test('a kind whose CRD is missing is skipped with one warning, the rest syncs, and it is picked up later', async () => {
    let removed: ReturnType<FakeKubeServer['removeResource']> | undefined;
    const k = await setup({}, (s) => {
      s.apply(gateway);
      removed = s.removeResource('TLSRoute');
    });
    try {
      const changes: string[] = [];
      k.source.start((r) => changes.push(r));
      const snap = await k.source.snapshot();
      assert.equal(snap.resources.gateways.length, 1);
      assert.equal(snap.resources.tlsRoutes.length, 0);
      await new Promise((r) => setTimeout(r, 350)); // several retries
      const warnings = k.lines.filter(
        (l) => String(l.msg).includes('TLSRoute') && String(l.msg).includes('not served'),
      );
      assert.equal(warnings.length, 1, 'one warning, not one per retry');

      k.server.addResource(removed!);
      k.server.apply(route('r1', 'a.example.com'));
      await waitFor('CRD installed', () => changes.length > 0, 3000);
      assert.equal((await k.source.snapshot()).resources.tlsRoutes.length, 1);
    } finally {
      await k.done();
    }
  });

  test('--watch-namespace scopes namespaced kinds; cluster-scoped kinds stay cluster-wide', async () => {
    const k = await setup({ namespaces: ['team-a', 'team-b'] }, (s) => {
      s.apply(service('a', 'team-a'));
      s.apply(service('b', 'team-b'));
      s.apply(service('c', 'team-c'));
      s.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-c' } });
    });
    try {
      const snap = await k.source.snapshot();
      assert.deepEqual(
        snap.resources.services.map((s) => s.metadata.name),
        ['a', 'b'],
      );
      assert.equal(snap.resources.namespaces.length, 1);
      const paths = new Set(k.server.requests.map((r) => r.path));
      assert.ok(paths.has('/api/v1/namespaces/team-a/services'));
      assert.ok(paths.has('/apis/gateway.networking.k8s.io/v1/gatewayclasses'));
      assert.ok(!paths.has('/api/v1/services'));
    } finally {
      await k.done();
    }
  });

  test('enableCustomResources: false watches no Gateway API kind (Ingress still)', async () => {
    const k = await setup({ enableCustomResources: false });
    try {
      await k.source.snapshot();
      assert.ok(
        k.server.requests.every(
          (r) => !r.path.includes('gateway.networking.k8s.io') && !r.path.includes('gateway.snigate.io'),
        ),
      );
      assert.ok(k.server.requests.some((r) => r.path === '/apis/networking.k8s.io/v1/ingresses'));
    } finally {
      await k.done();
    }
  });

  test('stop() while waiting for the first sync ends snapshot() with an error', async () => {
    const server = await FakeKubeServer.start();
    const kc = loadKc(await server.writeKubeconfig(dir));
    await server.close(); // nothing answers: lists fail and back off
    const source = new KubeSource({
      client: new KubeClient(kc),
      logger: captureLogger().logger,
      backoffMs: { initial: 20, max: 50 },
    });
    const p = source.snapshot();
    await new Promise((r) => setTimeout(r, 60));
    source.stop();
    await assert.rejects(p, /stopped/);
  });
});

function loadKc(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}
