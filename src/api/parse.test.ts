/** parseManifests/toResources: documents, lists, JSON, namespaces, stringData, duplicates and line numbers. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseManifests, splitPath, toResources } from './parse.ts';
import type { Secret } from './types.ts';

const svc = (name: string, ns?: string) =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n${ns ? `  namespace: ${ns}\n` : ''}spec:\n  ports:\n  - port: 443\n`;

describe('parseManifests', () => {
  it('reads multi-document YAML, skips empty documents, defaults namespace and generation', () => {
    const text = `---\n# just a comment\n---\n${svc('a')}---\n\n---\n${svc('b', 'web')}`;
    const { objects, diagnostics } = parseManifests(text, 'm.yaml');
    assert.deepEqual(diagnostics, []);
    assert.deepEqual(
      objects.map((o) => [
        o.object.metadata.namespace,
        o.object.metadata.name,
        o.object.metadata.generation,
        o.line,
      ]),
      [
        ['default', 'a', 1, 4],
        ['web', 'b', 1, 14],
      ],
    );
  });

  it('reports YAML syntax errors with their line and keeps the other documents', () => {
    const text = `${svc('a')}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n   bad: indent\n---\n${svc('c')}`;
    const { objects, diagnostics } = parseManifests(text, 'bad.yaml');
    assert.deepEqual(
      objects.map((o) => o.object.metadata.name),
      ['a', 'c'],
    );
    const err = diagnostics.find((d) => d.code === 'yaml-syntax');
    assert.ok(err);
    assert.equal(err.file, 'bad.yaml');
    assert.equal(err.line, 12);
    assert.equal(diagnostics.length, 1);
  });

  it('reads JSON, including tab-indented JSON', () => {
    const json = JSON.stringify(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'web' } },
      null,
      '\t',
    );
    const { objects, diagnostics } = parseManifests(json, 'ns.json');
    assert.deepEqual(diagnostics, []);
    assert.equal(objects[0]?.object.kind, 'Namespace');
    assert.equal(objects[0]?.object.metadata.namespace, undefined);
  });

  it('unpacks kind: List and points diagnostics at the item', () => {
    const text =
      'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: b}\n  spec:\n    ports:\n    - port: 0\n';
    const { objects, diagnostics } = parseManifests(text, 'list.yaml');
    assert.deepEqual(
      objects.map((o) => [o.object.kind, o.line]),
      [['Namespace', 4]],
    );
    assert.equal(diagnostics.length, 1);
    assert.equal(diagnostics[0]?.path, 'spec.ports[0].port');
    assert.equal(diagnostics[0]?.line, 12);
    assert.deepEqual(diagnostics[0]?.object, { kind: 'Service', namespace: 'default', name: 'b' });
  });

  it('folds stringData into base64 data and drops stringData', () => {
    const text =
      'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Y2VydA==\nstringData:\n  tls.key: key\n';
    const { objects, diagnostics } = parseManifests(text, 's.yaml');
    assert.deepEqual(diagnostics, []);
    const s = objects[0]?.object as Secret;
    assert.deepEqual(s.data, { 'tls.crt': 'Y2VydA==', 'tls.key': Buffer.from('key').toString('base64') });
    assert.equal(s.stringData, undefined);
  });

  it('applies --namespace and rejects objects that state another one', () => {
    const text = `${svc('a')}---\n${svc('b', 'other')}---\n${svc('c', 'team')}`;
    const { objects, diagnostics } = parseManifests(text, 'n.yaml', { namespace: 'team' });
    assert.deepEqual(
      objects.map((o) => `${o.object.metadata.namespace}/${o.object.metadata.name}`),
      ['team/a', 'team/c'],
    );
    assert.equal(diagnostics[0]?.code, 'namespace-mismatch');
    assert.equal(diagnostics[0]?.path, 'metadata.namespace');
    assert.equal(diagnostics[0]?.line, 13);
  });

  it('drops the namespace of cluster-scoped kinds', () => {
    const { objects } = parseManifests(
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n',
      'x.yaml',
    );
    assert.equal(objects[0]?.object.metadata.namespace, undefined);
  });

  it('skips unknown kinds with a warning and rejects unsupported versions', () => {
    const text =
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: i}\nspec: {}\n---\nfoo: bar\n';
    const { objects, diagnostics } = parseManifests(text, 'x.yaml');
    assert.equal(objects.length, 0);
    assert.deepEqual(
      diagnostics.map((d) => [d.severity, d.code, d.line]),
      [
        ['warning', 'unknown-kind', 1],
        ['error', 'unsupported-version', 5],
        ['error', 'missing-kind', 10],
      ],
    );
    assert.match(diagnostics[1]?.message ?? '', /networking\.k8s\.io\/v1/);
  });

  it('points a field error at the field line and rejects the object', () => {
    const text =
      'apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: g\nspec:\n  gatewayClassName: c\n  listeners:\n  - name: a\n    port: 443\n    protocol: TLS\n';
    const { objects, diagnostics } = parseManifests(text, 'g.yaml');
    assert.equal(objects.length, 0);
    assert.equal(diagnostics[0]?.path, 'spec.listeners[0].tls');
    assert.equal(diagnostics[0]?.line, 8, 'missing field: points at the listener');
    assert.match(diagnostics[0]?.hint ?? '', /Passthrough/);
  });
});

describe('toResources', () => {
  it('sorts by namespace/name and lets the last duplicate win with a warning naming both places', () => {
    const a = parseManifests(`${svc('z', 'b')}---\n${svc('y', 'a')}`, 'one.yaml').objects;
    const b = parseManifests(svc('z', 'b').replace('443', '8443'), 'two.yaml').objects;
    const { resources, diagnostics } = toResources([...a, ...b]);
    assert.deepEqual(
      resources.services.map((s) => `${s.metadata.namespace}/${s.metadata.name}:${s.spec.ports?.[0]?.port}`),
      ['a/y:443', 'b/z:8443'],
    );
    assert.equal(diagnostics.length, 1);
    assert.equal(diagnostics[0]?.code, 'duplicate-object');
    assert.match(diagnostics[0]?.message ?? '', /one\.yaml:1 and two\.yaml:1/);
  });
});

describe('splitPath', () => {
  it('handles indices and quoted keys', () => {
    assert.deepEqual(splitPath('spec.rules[2].backendRefs[0].port'), [
      'spec',
      'rules',
      2,
      'backendRefs',
      0,
      'port',
    ]);
    assert.deepEqual(splitPath('data["tls.crt"]'), ['data', 'tls.crt']);
  });
});
