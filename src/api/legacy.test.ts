/** Legacy TLSRoute `matches[].snis` rewriting (and --strict rejection), through parseManifests. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mapLegacyPath } from './legacy.ts';
import { parseManifests } from './parse.ts';
import type { TLSRoute } from './types.ts';

// The "Multi-Hostname" example of seed 000, verbatim.
const MULTI = `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata:
  name: multi-hostname-tls
  namespace: default
  labels: {team: edge}
spec:
  parentRefs:
    - name: tls-gateway
      sectionName: tls-passthrough
  rules:
    - matches:
        - snis:
            - "api.example.com"
      backendRefs:
        - name: api-service
          port: 443
    - matches:
        - snis:
            - "db.example.com"
      backendRefs:
        - name: database-service
          port: 5432
    - matches:
        - snis:
            - "*.internal.example.com"
      backendRefs:
        - name: internal-service
          port: 443
`;

describe('legacy TLSRoute snis', () => {
  it('rewrites one route per rule with a warning that shows the standard form', () => {
    const { objects, diagnostics } = parseManifests(MULTI, 'multi.yaml');
    const routes = objects.map((o) => o.object as TLSRoute);
    assert.deepEqual(
      routes.map((r) => [r.metadata.name, r.spec.hostnames, r.spec.rules[0]?.backendRefs?.[0]?.name]),
      [
        ['multi-hostname-tls-0', ['api.example.com'], 'api-service'],
        ['multi-hostname-tls-1', ['db.example.com'], 'database-service'],
        ['multi-hostname-tls-2', ['*.internal.example.com'], 'internal-service'],
      ],
    );
    for (const [i, r] of routes.entries()) {
      assert.equal(r.apiVersion, 'gateway.networking.k8s.io/v1');
      assert.equal(r.metadata.namespace, 'default');
      assert.deepEqual(r.metadata.labels, { team: 'edge' });
      assert.equal(
        r.metadata.annotations?.['snigate.io/converted-from'],
        `multi-hostname-tls spec.rules[${i}]`,
      );
      assert.deepEqual(r.spec.parentRefs, [{ name: 'tls-gateway', sectionName: 'tls-passthrough' }]);
      assert.equal(r.spec.rules.length, 1);
      assert.equal(r.spec.rules[0]?.matches, undefined);
      assert.equal(objects[i]?.line, 1);
    }
    const legacy = diagnostics.filter((d) => d.code === 'legacy-tlsroute-snis');
    assert.equal(legacy.length, 1);
    assert.equal(legacy[0]?.severity, 'warning');
    assert.equal(legacy[0]?.path, 'spec.rules[0].matches');
    assert.equal(legacy[0]?.line, 12);
    assert.match(legacy[0]?.message ?? '', /one TLSRoute per backend with `spec.hostnames`/);
    assert.match(legacy[0]?.hint ?? '', /hostnames:\n\s+- api\.example\.com/);
    assert.doesNotMatch(legacy[0]?.hint ?? '', /converted-from/);
    assert.ok(diagnostics.every((d) => d.severity !== 'error'));
  });

  it('rejects the route under --strict with the same message as an error', () => {
    const { objects, diagnostics } = parseManifests(MULTI, 'multi.yaml', { strict: true });
    assert.equal(objects.length, 0);
    const legacy = diagnostics.find((d) => d.code === 'legacy-tlsroute-snis');
    assert.equal(legacy?.severity, 'error');
    assert.match(legacy?.hint ?? '', /multi-hostname-tls-2/);
  });

  it('keeps the name of a single-rule route and falls back to spec.hostnames for a rule without snis', () => {
    const text = `apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: one}
spec:
  hostnames: [fallback.example.com]
  rules:
  - matches: [{}]
    backendRefs: [{name: s, port: 443}]
`;
    const { objects } = parseManifests(text, 'one.yaml');
    const r = objects[0]?.object as TLSRoute;
    assert.equal(r.metadata.name, 'one');
    assert.deepEqual(r.spec.hostnames, ['fallback.example.com']);
  });

  it('is an error when a rule has neither snis nor route hostnames', () => {
    const text = MULTI.replace('            - "db.example.com"\n', '').replace(
      '        - snis:\n      backendRefs',
      '        - {}\n      backendRefs',
    );
    const { objects, diagnostics } = parseManifests(text, 'm.yaml');
    assert.equal(objects.length, 0);
    assert.ok(
      diagnostics.some(
        (d) => d.severity === 'error' && d.code === 'legacy-tlsroute-snis' && d.path === 'spec.rules[1]',
      ),
    );
  });

  it('maps errors inside a converted part back to the original rule', () => {
    const text = MULTI.replace('port: 5432', 'port: 0');
    const { objects, diagnostics } = parseManifests(text, 'm.yaml');
    assert.equal(objects.length, 0, 'one broken part rejects the whole route');
    const err = diagnostics.find((d) => d.severity === 'error');
    assert.equal(err?.path, 'spec.rules[1].backendRefs[0].port');
    assert.equal(err?.line, 23);
    assert.equal(err?.object?.name, 'multi-hostname-tls');
    assert.equal(mapLegacyPath('spec.hostnames[0]', 2), 'spec.rules[2].matches');
  });
});
