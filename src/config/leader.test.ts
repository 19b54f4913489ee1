import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { FakeKubeServer } from './kube-fake-server.ts';
import { KubeClient } from './kube-source.ts';
import { LeaderElector, microTime } from './leader.ts';

let dir: string;
let server: FakeKubeServer;
let client: KubeClient;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snigate-lease-'));
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

function elector(identity: string, events: string[]): LeaderElector {
  return new LeaderElector({
    client,
    logger: pino({ level: 'silent' }),
    namespace: 'snigate-system',
    name: 'snigate-leader',
    identity,
    leaseDurationMs: 1000,
    renewDeadlineMs: 700,
    retryMs: 50,
    onStartedLeading: () => events.push(`${identity} leads`),
    onStoppedLeading: () => events.push(`${identity} stops`),
  });
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const lease = () =>
  server.get('Lease', 'snigate-leader', 'snigate-system') as { spec: Record<string, unknown> } | undefined;

test('two electors on one Lease: exactly one leads, and release on stop hands over at once', async () => {
  const events: string[] = [];
  const a = elector('pod-a', events);
  const b = elector('pod-b', events);
  a.start();
  await waitFor('a leads', () => a.isLeader);
  b.start();
  // b keeps trying over several lease renewals and must not take over a live lease.
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(a.isLeader, true);
  assert.equal(b.isLeader, false);
  assert.equal(lease()?.spec.holderIdentity, 'pod-a');
  assert.equal(lease()?.spec.leaseDurationSeconds, 1);
  assert.match(String(lease()?.spec.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

  const stoppedAt = Date.now();
  await a.stop();
  assert.equal(a.isLeader, false);
  assert.equal(lease()?.spec.holderIdentity, '', 'released: holder emptied');
  await waitFor('b leads', () => b.isLeader);
  assert.ok(Date.now() - stoppedAt < 900, 'taken over before the lease would have expired');
  assert.equal(lease()?.spec.holderIdentity, 'pod-b');
  assert.equal(lease()?.spec.leaseTransitions, 1);
  await b.stop();
  assert.deepEqual(events, ['pod-a leads', 'pod-a stops', 'pod-b leads', 'pod-b stops']);
});

test('a lease whose holder stopped renewing is taken over after it expires (by our own clock)', async () => {
  server.apply({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'snigate-leader', namespace: 'snigate-system' },
    spec: {
      holderIdentity: 'crashed-pod',
      leaseDurationSeconds: 1,
      renewTime: microTime(new Date()),
      leaseTransitions: 3,
    },
  });
  const events: string[] = [];
  const b = elector('pod-b', events);
  const started = Date.now();
  b.start();
  await waitFor('b leads', () => b.isLeader, 4000);
  assert.ok(Date.now() - started >= 900, 'not before the lease expired');
  assert.equal(lease()?.spec.leaseTransitions, 4);
  await b.stop();
});

test('a leader that cannot renew steps down', async () => {
  const events: string[] = [];
  const a = elector('pod-a', events);
  a.start();
  await waitFor('a leads', () => a.isLeader);
  server.removeResource('Lease'); // every request now fails
  await waitFor('a steps down', () => !a.isLeader, 3000);
  await a.stop();
  assert.deepEqual(events, ['pod-a leads', 'pod-a stops']);
});
