/** loadPaths against the seed documents, the v1.6 conformance manifests and a scratch directory tree. */

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatDiagnostic } from '../api/diagnostics.ts';
import { parseManifests } from '../api/parse.ts';
import { loadPaths } from './load.ts';

const SHARED = new URL('../../../shared/', import.meta.url).pathname;
const SEEDS = join(SHARED, 'seeds');
const CONFORMANCE = join(SHARED, 'conformance/gateway-api-v1.6');
const TESTDATA = new URL('./testdata/', import.meta.url).pathname;

const errors = <T extends { severity: string }>(ds: T[]): T[] => ds.filter((d) => d.severity === 'error');

describe('seed 000 (TLSRoute how-to): every ```yaml block loads', async () => {
  const file = (await readdir(SEEDS)).find((f) => f.startsWith('000_'));
  assert.ok(file, 'seed 000 present');
  const text = await readFile(join(SEEDS, file), 'utf8');
  const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  it('has the nine examples', () => {
    assert.equal(blocks.length, 9);
  });
  for (const block of blocks) {
    const title = /^# (\S+)/.exec(block)?.[1] ?? 'block';
    it(title, () => {
      const { objects, diagnostics } = parseManifests(block, title, {});
      assert.deepEqual(errors(diagnostics), [], diagnostics.map(formatDiagnostic).join('\n'));
      const docs = block.split(/^---$/m).length;
      const legacy = title === 'tlsroute-multi-hostname.yaml';
      assert.equal(objects.length, legacy ? 3 : docs);
      const codes = new Set(diagnostics.map((d) => d.code));
      assert.equal(codes.has('legacy-tlsroute-snis'), legacy);
      for (const c of codes) assert.ok(['deprecated-version', 'legacy-tlsroute-snis'].includes(c), c);
      for (const o of objects) assert.ok(o.object.metadata.namespace, 'namespace defaulted');
    });
  }
  it('strict mode rejects only the multi-hostname example', () => {
    const rejected = blocks.filter(
      (b) => errors(parseManifests(b, 'x', { strict: true }).diagnostics).length > 0,
    );
    assert.equal(rejected.length, 1);
    assert.match(rejected[0] ?? '', /multi-hostname/);
  });
});

describe('seed 001 (termination vs passthrough): the two Ingress examples', () => {
  it('api-gateway-ingress loads clean', async () => {
    const r = await loadPaths([join(TESTDATA, 'seed-001-api-gateway-ingress.yaml')]);
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.resources.ingresses[0]?.metadata.name, 'api-gateway-ingress');
  });
  it('payment-service-ingress is rejected with the corrected YAML in the hint', async () => {
    const r = await loadPaths([join(TESTDATA, 'seed-001-payment-service-ingress.yaml')]);
    assert.equal(r.objects.length, 0);
    assert.equal(r.diagnostics.length, 1);
    const d = r.diagnostics[0]!;
    assert.equal(d.code, 'ingress-tcp-not-supported');
    assert.equal(d.path, 'spec.rules[0].tcp');
    assert.equal(d.line, 11);
    assert.match(d.message, /to pass TLS through to payment-service, use `http.paths`/);
    assert.match(d.message, /ssl-passthrough: "true"/);
    const hint = d.hint ?? '';
    assert.match(hint, /host: payments\.oladapo\.cloud/);
    assert.match(hint, /name: payment-service\n\s+port:\n\s+number: 443/);
    assert.match(hint, /pathType: Prefix/);
    // The hint is itself a valid manifest.
    const fixed = parseManifests(hint.replace(/^write instead:\n/, ''), 'hint.yaml');
    assert.deepEqual(fixed.diagnostics, []);
    assert.equal(fixed.objects.length, 1);
  });
});

describe('conformance v1.6 manifests', () => {
  it('all load with no errors; unknown kinds are skipped with warnings', async () => {
    const r = await loadPaths([CONFORMANCE]);
    assert.equal(r.files.length, 66);
    assert.deepEqual(errors(r.diagnostics).map(formatDiagnostic), []);
    const unknown = new Set(
      r.diagnostics.filter((d) => d.code === 'unknown-kind').map((d) => d.object?.kind),
    );
    assert.deepEqual([...unknown].sort(), ['Deployment', 'ListenerSet', 'UDPRoute']);
    assert.ok(r.resources.gateways.some((g) => g.spec.listeners.some((l) => l.protocol === 'INVALID')));
    assert.ok(r.resources.tlsRoutes.length > 10);
  });
  it('each file loads on its own with no errors', async () => {
    for (const f of (await readdir(CONFORMANCE)).filter((x) => x.endsWith('.yaml'))) {
      const r = await loadPaths([join(CONFORMANCE, f)]);
      assert.deepEqual(errors(r.diagnostics).map(formatDiagnostic), [], f);
    }
  });
});

describe('loadPaths on a directory tree', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'snigate-load-'));
    await mkdir(join(dir, 'b/nested'), { recursive: true });
    await mkdir(join(dir, '.hidden'));
    const ns = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`;
    await writeFile(join(dir, 'a.yaml'), ns('from-a'));
    await writeFile(join(dir, 'b/nested/c.yml'), ns('from-c'));
    await writeFile(
      join(dir, 'b/d.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'from-d' } }),
    );
    await writeFile(join(dir, 'b/notes.txt'), 'not a manifest');
    await writeFile(join(dir, '.hidden/e.yaml'), ns('hidden'));
    await writeFile(join(dir, '.f.yaml'), ns('hidden-file'));
    // Same object, different content: a real conflict (identical copies are not reported).
    await writeFile(join(dir, 'z.yaml'), `${ns('from-a')}  labels:\n    team: z\n`);
    await writeFile(join(dir, 'y.yaml'), ns('from-c'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('recurses, filters extensions, skips hidden entries, sorts, and reports duplicates', async () => {
    const r = await loadPaths([dir]);
    assert.deepEqual(
      r.files.map((f) => f.slice(dir.length + 1)),
      ['a.yaml', 'b/d.json', 'b/nested/c.yml', 'y.yaml', 'z.yaml'],
    );
    assert.deepEqual(
      r.resources.namespaces.map((n) => n.metadata.name),
      ['from-a', 'from-c', 'from-d'],
    );
    assert.deepEqual(
      r.diagnostics.map((d) => d.code),
      ['duplicate-object'],
    );
    assert.match(r.diagnostics[0]?.message ?? '', /a\.yaml:1 and .*z\.yaml:1/);
  });

  it('reports a missing path and still loads the others', async () => {
    const r = await loadPaths([join(dir, 'nope'), join(dir, 'a.yaml')]);
    assert.equal(r.diagnostics[0]?.code, 'path-not-found');
    assert.equal(r.diagnostics[0]?.severity, 'error');
    assert.equal(r.objects.length, 1);
  });

  it('passes --namespace through', async () => {
    await writeFile(
      join(dir, 'b/svc.yaml'),
      'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 443}]}\n',
    );
    const r = await loadPaths([join(dir, 'b/svc.yaml')], { namespace: 'team' });
    assert.equal(r.resources.services[0]?.metadata.namespace, 'team');
  });
});
