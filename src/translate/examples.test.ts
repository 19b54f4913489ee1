/** Every seed example yields the statuses its text promises (the goldens pin the details; this says what matters). */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Condition } from '../api/types.ts';
import { type CaseResult, REPO, runExample } from './golden-support.ts';

const ex = (seed: string, name: string, fixtures: string[] = []): CaseResult =>
  runExample(join(REPO, 'examples', seed, name), fixtures);

function allGood(r: CaseResult, what: string): void {
  const errors = [...r.loadDiagnostics, ...r.diagnostics].filter((d) => d.severity === 'error');
  assert.deepEqual(errors, [], `${what}: no errors`);
  for (const s of r.statuses) {
    if (s.kind === 'Gateway') {
      for (const t of ['Accepted', 'Programmed']) {
        const c = (s.status.conditions as Condition[]).find((x) => x.type === t);
        assert.equal(c?.status, 'True', `${what}: Gateway ${s.metadata.name} ${t}: ${c?.message}`);
      }
    }
    if (s.kind.endsWith('Route')) {
      const parents = s.status.parents as { conditions: Condition[] }[];
      assert.ok(parents.length > 0, `${what}: ${s.kind} ${s.metadata.name} has a parent status`);
      for (const p of parents) {
        for (const t of ['Accepted', 'ResolvedRefs']) {
          const c = p.conditions.find((x) => x.type === t);
          assert.equal(
            c?.status,
            'True',
            `${what}: ${s.kind} ${s.metadata.name} ${t}: ${c?.reason} ${c?.message}`,
          );
        }
      }
    }
  }
}

function sni(r: CaseResult, port: number): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const b of r.table.binds.filter((x) => x.port === port)) {
    for (const l of b.listeners)
      for (const rt of l.routes) out[rt.hostname] = rt.backends.backends.map((x) => `${x.id}@${x.weight}`);
  }
  return out;
}

test('seed 000: every example is accepted, resolved and programmed', () => {
  for (const name of [
    'basic',
    'multi-hostname',
    'postgres',
    'traffic-split',
    'cross-namespace',
    'redis',
    'fallback',
    'custom-protocol',
    'multi-cluster',
  ]) {
    allGood(ex('seed-000', name), name);
  }
});

test('seed 000: each example routes the SNIs its text names to the backends it names', () => {
  assert.deepEqual(sni(ex('seed-000', 'basic'), 443), {
    'secure.example.com': ['Service/default/secure-service:443@1'],
  });
  assert.deepEqual(sni(ex('seed-000', 'multi-hostname'), 443), {
    'api.example.com': ['Service/default/api-service:443@1'],
    'db.example.com': ['Service/default/database-service:5432@1'],
    '*.internal.example.com': ['Service/default/internal-service:443@1'],
  });
  assert.deepEqual(sni(ex('seed-000', 'postgres'), 5432), {
    'postgres.database.svc.cluster.local': ['Service/database/postgres-primary:5432@1'],
  });
  assert.deepEqual(sni(ex('seed-000', 'traffic-split'), 443), {
    'app.example.com': ['Service/default/app-stable:443@90', 'Service/default/app-canary:443@10'],
  });
  assert.deepEqual(sni(ex('seed-000', 'cross-namespace'), 443), {
    'api.example.com': ['Service/backend/api-service:443@1'],
  });
  assert.deepEqual(sni(ex('seed-000', 'redis'), 6379), {
    'redis.cache.svc.cluster.local': ['Service/cache/redis-master:6379@1'],
  });
  assert.deepEqual(sni(ex('seed-000', 'fallback'), 443), {
    'app.example.com': ['Service/default/app-primary:443@100', 'Service/default/app-backup:443@0'],
  });
  assert.deepEqual(sni(ex('seed-000', 'custom-protocol'), 8443), {
    'custom.example.com': ['Service/default/custom-service:8443@1'],
  });
  assert.deepEqual(sni(ex('seed-000', 'multi-cluster'), 443), {
    'app.example.com': ['Service/default/app-local:443@50', 'ServiceImport/default/app-remote:443@50'],
  });
});

test('seed 000 multi-hostname: the legacy snis form is converted with a warning that names the standard form', () => {
  const r = ex('seed-000', 'multi-hostname');
  const w = r.loadDiagnostics.find((d) => d.code === 'legacy-tlsroute-snis');
  assert.ok(w, 'a legacy-tlsroute-snis warning');
  assert.equal(w.severity, 'warning');
  assert.match(w.message, /spec\.hostnames/);
});

test('seed 001: the hybrid case is served on one port, by Ingress and by Gateway API; as written it is refused with the fix', () => {
  for (const name of ['hybrid-ingress', 'hybrid-gateway-api']) {
    const r = ex('seed-001', name, ['_seed-001-secret.yaml']);
    allGood(r, name);
    const b = r.table.binds.find((x) => x.port === 443)!;
    const modes = Object.fromEntries(b.listeners.map((l) => [l.hostname, l.mode]));
    assert.equal(modes['api.oladapo.cloud'], 'terminate-https', name);
    assert.equal(modes['payments.oladapo.cloud'], 'passthrough', name);
  }
  const ing = ex('seed-001', 'hybrid-ingress', ['_seed-001-secret.yaml']);
  for (const s of ing.statuses.filter((x) => x.kind === 'Ingress')) {
    assert.deepEqual((s.status.loadBalancer as { ingress: unknown[] }).ingress, [{ ip: '127.0.0.1' }]);
  }
  const written = ex('seed-001', 'as-written');
  const errs = written.loadDiagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(
    errs.map((d) => d.code),
    ['ingress-tcp-not-supported'],
  );
  assert.match(errs[0]!.message, /ssl-passthrough/);
  assert.match(errs[0]!.hint ?? '', /http:\s*\n\s*paths:/);
});
