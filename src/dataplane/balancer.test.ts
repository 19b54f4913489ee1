/** Backend choice: weights, invalid shares rejected, weight-0 fallback, endpoint round-robin and fail-open. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Balancer } from './balancer.ts';
import type { HealthView } from './health.ts';
import { backend, ep } from './testkit.ts';

function health(down: string[] = []): HealthView & { down: Set<string> } {
  const set = new Set(down);
  return { down: set, isHealthy: (k) => !set.has(k) };
}

/** A deterministic "random" sweeping [0,1) evenly over n calls. */
function sweep(n: number): () => number {
  let i = 0;
  return () => ((i++ % n) + 0.5) / n;
}

test('weighted split follows weight / sum of weights', () => {
  const a = backend('a', [ep(1)], { weight: 3 });
  const b = backend('b', [ep(2)], { weight: 1 });
  const bal = new Balancer({ backends: [a, b] }, health(), sweep(1000));
  const counts = { a: 0, b: 0 };
  for (let i = 0; i < 1000; i++) {
    const p = bal.pick();
    assert.equal(p.reject, undefined);
    counts[p.backend!.id as 'a' | 'b']++;
  }
  assert.deepEqual(counts, { a: 750, b: 250 });
});

test('the invalid backend share is rejected, not redistributed', () => {
  const a = backend('a', [ep(1)], { weight: 1 });
  const bad = backend('bad', [], { weight: 1, invalid: 'BackendNotFound' });
  const empty = backend('empty', [], { weight: 2 });
  const bal = new Balancer({ backends: [a, bad, empty] }, health(), sweep(400));
  const out: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const p = bal.pick();
    const k = p.reject ?? p.backend.id;
    out[k] = (out[k] ?? 0) + 1;
  }
  assert.deepEqual(out, { a: 100, 'backend-invalid': 100, 'no-endpoints': 200 });
});

test('weight 0 gets nothing while a weighted backend is healthy, everything when none is', () => {
  const primary = backend('primary', [ep(1), ep(2)], { weight: 1 });
  const backup = backend('backup', [ep(3)], { weight: 0 });
  const h = health();
  const bal = new Balancer({ backends: [primary, backup] }, h, Math.random);
  for (let i = 0; i < 50; i++) assert.equal(bal.pick().backend?.id, 'primary');
  h.down.add('127.0.0.1:1');
  for (let i = 0; i < 10; i++) {
    const p = bal.pick();
    assert.equal(p.backend?.id, 'primary');
    assert.equal(p.reject === undefined && p.key, '127.0.0.1:2');
  }
  h.down.add('127.0.0.1:2');
  for (let i = 0; i < 10; i++) assert.equal(bal.pick().backend?.id, 'backup');
  // Backup down too: fail open to the weighted backends rather than reject.
  h.down.add('127.0.0.1:3');
  assert.equal(bal.pick().backend?.id, 'primary');
});

test('fallback off: weight-0 backends never take traffic', () => {
  const primary = backend('primary', [ep(1)], { weight: 1 });
  const backup = backend('backup', [ep(3)], { weight: 0, policy: { fallback: false } });
  const bal = new Balancer({ backends: [primary, backup] }, health(['127.0.0.1:1']), Math.random);
  assert.equal(bal.pick().backend?.id, 'primary');
});

test('fallback off on the weighted backend: its endpoints down → no weight-0 backend takes over', () => {
  const primary = backend('primary', [ep(1)], { weight: 1, policy: { fallback: false } });
  const backup = backend('backup', [ep(3)], { weight: 0 });
  const bal = new Balancer({ backends: [primary, backup] }, health(['127.0.0.1:1']), Math.random);
  assert.equal(bal.pick().backend?.id, 'primary');
  assert.equal(bal.fallbackEndpoint(['127.0.0.1:1']), null, 'no fallback for a refused connect either');
});

test('all weights 0: fallback backends share traffic; without fallback, rejected', () => {
  const x = backend('x', [ep(1)], { weight: 0 });
  const y = backend('y', [ep(2)], { weight: 0 });
  const bal = new Balancer({ backends: [x, y] }, health(), Math.random);
  assert.deepEqual([bal.pick().backend?.id, bal.pick().backend?.id], ['x', 'y']);
  const nf = backend('nf', [ep(1)], { weight: 0, policy: { fallback: false } });
  const r = new Balancer({ backends: [nf] }, health(), Math.random).pick();
  assert.equal(r.reject, 'backend-invalid');
  assert.equal(new Balancer({ backends: [] }, health(), Math.random).pick().reject, 'backend-invalid');
});

test('endpoints: round-robin over healthy ones, fail-open when all are down', () => {
  const a = backend('a', [ep(1), ep(2), ep(3)]);
  const h = health(['127.0.0.1:2']);
  const bal = new Balancer({ backends: [a] }, h, Math.random);
  const keys = Array.from({ length: 4 }, () => {
    const p = bal.pick();
    return p.reject === undefined ? p.key : p.reject;
  });
  assert.deepEqual(keys, ['127.0.0.1:1', '127.0.0.1:3', '127.0.0.1:1', '127.0.0.1:3']);
  h.down.add('127.0.0.1:1');
  h.down.add('127.0.0.1:3');
  const p = bal.pick();
  assert.equal(p.reject, undefined);
});

test('nextEndpoint skips tried endpoints, prefers healthy ones, null when exhausted', () => {
  const a = backend('a', [ep(1), ep(2), ep(3)]);
  const bal = new Balancer({ backends: [a] }, health(['127.0.0.1:2']), Math.random);
  assert.equal(bal.nextEndpoint(a, ['127.0.0.1:1'])?.key, '127.0.0.1:3');
  assert.equal(bal.nextEndpoint(a, ['127.0.0.1:1', '127.0.0.1:3'])?.key, '127.0.0.1:2');
  assert.equal(bal.nextEndpoint(a, ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']), null);
});

test('IPv6 endpoint keys are bracketed', () => {
  const a = backend('a', [ep(443, '::1')]);
  const p = new Balancer({ backends: [a] }, health(), Math.random).pick();
  assert.equal(p.reject === undefined && p.key, '[::1]:443');
});
