/** The Source contract over the seed examples, for the file source and the Kubernetes source; then Kubernetes mode end to end. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { stringify } from 'yaml';
import { startGateway } from '../cli/run.ts';
import { FileSource } from './file-source.ts';
import { FakeKubeServer } from './kube-fake-server.ts';
import { KubeClient, KubeSource } from './kube-source.ts';
import { seedExamples, sourceContract } from './source.contract.ts';

const silent = pino({ level: 'silent' });

sourceContract(
  'files',
  async (docs) => {
    const dir = await mkdtemp(join(tmpdir(), 'snigate-contract-files-'));
    await writeFile(join(dir, 'objects.yaml'), docs.map((d) => stringify(d)).join('---\n'));
    return {
      source: new FileSource({ paths: [dir], debounceMs: 50 }),
      apply: (obj) =>
        writeFile(join(dir, `added-${String((obj.metadata as { name: string }).name)}.yaml`), stringify(obj)),
      close: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { convertsLegacy: true },
);

sourceContract(
  'kubernetes',
  async (docs) => {
    // One creationTimestamp for all, as objects applied together: orderings fall back to namespace/name as in files.
    const server = await FakeKubeServer.start({ creationTimestamp: '2026-01-01T00:00:00Z' });
    const dir = await mkdtemp(join(tmpdir(), 'snigate-contract-kube-'));
    for (const d of docs) server.apply(d);
    const kc = new KubeConfig();
    kc.loadFromFile(await server.writeKubeconfig(dir));
    return {
      source: new KubeSource({ client: new KubeClient(kc), logger: silent, debounceMs: 50 }),
      apply: async (obj) => void server.apply(obj),
      close: async () => {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { convertsLegacy: false },
);

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitFor(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type Parent = {
  controllerName: string;
  conditions: { type: string; status: string; reason: string; observedGeneration: number }[];
};

describe('Kubernetes mode end to end (fake API server)', () => {
  test('startGateway({ kubernetes }) programs the table from the API and the leader writes TLSRoute status', async () => {
    const server = await FakeKubeServer.start();
    const dir = await mkdtemp(join(tmpdir(), 'snigate-kube-e2e-'));
    const basic = seedExamples().find((e) => e.name === 'basic')!;
    server.apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'nginx-gateway' },
      spec: { controllerName: 'snigate.io/gateway-controller' },
    });
    for (const d of basic.docs) server.apply(d);
    const port = await freePort();
    const gw = await startGateway({
      files: [],
      kubernetes: true,
      kubeconfig: await server.writeKubeconfig(dir),
      address: '127.0.0.1',
      portOffset: port - 443,
      admin: 'off',
      logger: silent,
    });
    try {
      const table = gw.reconciler.serving!.table;
      assert.equal(table.binds[0]?.port, port);
      assert.ok(JSON.stringify(table).includes('secure.example.com'));
      assert.ok(gw.dataPlane.listening().length > 0);

      const parents = () =>
        (server.get('TLSRoute', 'basic-tls-route')?.status as { parents?: Parent[] } | undefined)?.parents;
      await waitFor('TLSRoute status', () => parents() !== undefined);
      const accepted = parents()![0]!.conditions.find((c) => c.type === 'Accepted');
      assert.deepEqual(
        { status: accepted?.status, reason: accepted?.reason, gen: accepted?.observedGeneration },
        { status: 'True', reason: 'Accepted', gen: 1 },
      );
      const patch = server.requests.find(
        (r) => r.method === 'PATCH' && r.path.endsWith('/tlsroutes/basic-tls-route/status'),
      );
      assert.equal(patch?.contentType, 'application/merge-patch+json');
      assert.ok(server.get('Lease', 'snigate-leader', 'default'), 'leader election took a Lease');
      assert.equal(
        (
          server.get('GatewayClass', 'nginx-gateway')!.status as {
            conditions: { type: string; status: string }[];
          }
        ).conditions[0]?.status,
        'True',
      );

      // A spec change flows through watch → reload → status, with the new observedGeneration.
      const route = server.get('TLSRoute', 'basic-tls-route') as {
        spec: { parentRefs: { sectionName?: string }[] };
      };
      route.spec.parentRefs[0]!.sectionName = 'no-such-listener';
      server.apply(route as unknown as Record<string, unknown>);
      await waitFor('NoMatchingParent', () =>
        parents()![0]!.conditions.some(
          (c) => c.type === 'Accepted' && c.reason === 'NoMatchingParent' && c.observedGeneration === 2,
        ),
      );
    } finally {
      await gw.stop(0);
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(
      (server.get('Lease', 'snigate-leader', 'default')!.spec as { holderIdentity: string }).holderIdentity,
      '',
      'the lease is released on stop',
    );
  });
});
