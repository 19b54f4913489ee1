/** The conditions Gateway API v1.6 conformance asserts (testdata/README.md, INDEX.md), checked on translate(). */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Condition } from '../api/types.ts';
import { type CaseResult, runCase, TESTDATA } from './golden-support.ts';

const NS = 'gateway-conformance-infra';
const cache = new Map<string, CaseResult>();
function load(name: string): CaseResult {
  let r = cache.get(name);
  if (!r) {
    r = runCase(join(TESTDATA, 'conformance', name), ['_base.yaml', '_pki.yaml']);
    cache.set(name, r);
  }
  return r;
}

/** Statuses of the objects the case file itself defines (not the base manifests). */
function own(r: CaseResult, kind: string) {
  return r.statuses.filter(
    (s) => s.kind === kind && r.caseKeys.has(`${kind}/${s.metadata.namespace ?? ''}/${s.metadata.name}`),
  );
}

function statusOf(r: CaseResult, kind: string, name: string, ns = NS): Record<string, unknown> {
  const s = r.statuses.find(
    (x) => x.kind === kind && x.metadata.name === name && (x.metadata.namespace ?? '') === ns,
  );
  assert.ok(s, `no status for ${kind} ${ns}/${name}`);
  return s.status;
}

/** Subset match, like the harness: `Type=Status/Reason` (empty reason = any). */
function hasCond(conds: unknown, spec: string, ctx: string): void {
  const m = /^(\w+)=(True|False|Unknown)(?:\/(\w+))?$/.exec(spec)!;
  const c = (conds as Condition[]).find((x) => x.type === m[1]);
  assert.ok(c, `${ctx}: no ${m[1]} condition`);
  assert.equal(`${c.status}/${c.reason}`, `${m[2]}/${m[3] ?? c.reason}`, `${ctx}: ${m[1]}: ${c.message}`);
  assert.equal(c.observedGeneration, 1, `${ctx}: observedGeneration`);
}

function routeParent(r: CaseResult, kind: string, name: string, conds: string[], ns = NS): void {
  const parents = statusOf(r, kind, name, ns).parents as { conditions: Condition[] }[];
  assert.equal(parents.length, 1, `${kind} ${name}: one parent status`);
  for (const c of conds) hasCond(parents[0]!.conditions, c, `${kind} ${name}`);
}

interface ListenerExpect {
  conds?: string[];
  attached?: number;
  kinds?: string[] | 'empty';
}
function listener(r: CaseResult, gw: string, name: string, e: ListenerExpect): void {
  const ls = statusOf(r, 'Gateway', gw).listeners as {
    name: string;
    attachedRoutes: number;
    supportedKinds: { kind: string }[];
    conditions: Condition[];
  }[];
  const l = ls.find((x) => x.name === name);
  assert.ok(l, `${gw}: no listener ${name}`);
  for (const c of e.conds ?? []) hasCond(l.conditions, c, `${gw}/${name}`);
  if (e.attached !== undefined) assert.equal(l.attachedRoutes, e.attached, `${gw}/${name} attachedRoutes`);
  if (e.kinds === 'empty') assert.deepEqual(l.supportedKinds, [], `${gw}/${name} supportedKinds`);
  else
    for (const k of e.kinds ?? [])
      assert.ok(
        l.supportedKinds.some((x) => x.kind === k),
        `${gw}/${name} supports ${k}`,
      );
}

function gateway(r: CaseResult, gw: string, conds: string[]): void {
  for (const c of conds) hasCond(statusOf(r, 'Gateway', gw).conditions, c, gw);
}

/** SNI → backend Service name per listener of the table, for a Gateway. */
function sniRoutes(r: CaseResult, gw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const b of r.table.binds) {
    for (const l of b.listeners) {
      if (l.gateway.name !== gw) continue;
      for (const rt of l.routes)
        out[rt.hostname] = rt.backends.backends.map((x) => x.id.split('/')[2]).join(',');
    }
  }
  return out;
}

test('base manifests: every Gateway Accepted and Programmed, with a typed address', () => {
  const r = load('tlsroute-simple-same-namespace.yaml');
  for (const gw of [
    'same-namespace',
    'same-namespace-with-https-listener',
    'all-namespaces',
    'backend-namespaces',
  ]) {
    const s = r.statuses.find((x) => x.kind === 'Gateway' && x.metadata.name === gw)!;
    hasCond(s.status.conditions, 'Accepted=True', gw);
    hasCond(s.status.conditions, 'Programmed=True', gw);
    assert.equal((s.status.addresses as { type: string }[])[0]?.type, 'IPAddress');
  }
});

test('TLSRouteSimpleSameNamespace', () => {
  const r = load('tlsroute-simple-same-namespace.yaml');
  routeParent(r, 'TLSRoute', 'gateway-conformance-infra-test', [
    'Accepted=True/Accepted',
    'ResolvedRefs=True/ResolvedRefs',
  ]);
  assert.deepEqual(sniRoutes(r, 'gateway-tlsroute'), { 'abc.example.com': 'tcp-backend:8443' });
  listener(r, 'gateway-tlsroute', 'https', { attached: 1, kinds: ['TLSRoute'] });
});

test('TLSRouteHostnameIntersection: exact beats wildcard, wildcards intersect, multi-label', () => {
  const r = load('tlsroute-hostname-intersection.yaml');
  for (const s of r.statuses.filter((x) => x.kind === 'TLSRoute')) {
    for (const p of s.status.parents as { conditions: Condition[] }[])
      hasCond(p.conditions, 'ResolvedRefs=True/ResolvedRefs', s.metadata.name);
  }
  assert.deepEqual(sniRoutes(r, 'gw-tlsroute-exact-hostname-x-1'), { 'abc.example.com': 'tls-backend:443' });
  assert.deepEqual(sniRoutes(r, 'gw-tlsroute-more-specific-wc-hostname-x-2'), {
    'abc.example.com': 'tls-backend:443',
    '*.example.com': 'tls-backend-2:443',
  });
  assert.deepEqual(sniRoutes(r, 'gw-tlsroute-less-specific-wc-hostname-x-3'), {
    'abc.example.com': 'tls-backend:443',
    '*.example.com': 'tls-backend-2:443',
  });
  assert.deepEqual(sniRoutes(r, 'gw-tlsroute-empty-hostname-x-4'), {
    'abc.example.com': 'tls-backend:443',
    '*.com': 'tls-backend-2:443',
  });
});

test('TLSRouteInvalidBackendRefNonexistent / UnknownKind: Accepted, ResolvedRefs False, share rejected', () => {
  const a = load('tlsroute-invalid-backendref-nonexistent.yaml');
  routeParent(a, 'TLSRoute', 'invalid-backend-ref-nonexistent', [
    'Accepted=True',
    'ResolvedRefs=False/BackendNotFound',
  ]);
  const b = load('tlsroute-invalid-backendref-unknown-kind.yaml');
  routeParent(b, 'TLSRoute', 'invalid-backend-ref-unknown-kind', [
    'Accepted=True',
    'ResolvedRefs=False/InvalidKind',
  ]);
  const backend = a.table.binds
    .flatMap((x) => x.listeners)
    .find((l) => l.gateway.name === 'gateway-tlsroute-invalid-backend-ref-nonexistent')?.routes[0]?.backends
    .backends[0];
  assert.equal(backend?.invalid, 'BackendNotFound');
});

test('TLSRouteInvalidNoMatchingListenerHostname', () => {
  const r = load('tlsroute-invalid-no-matching-listener-hostname.yaml');
  routeParent(r, 'TLSRoute', 'tlsroute-hostname-mismatch-1', ['Accepted=False/NoMatchingListenerHostname']);
  routeParent(r, 'TLSRoute', 'tlsroute-hostname-mismatch-2', ['Accepted=False/NoMatchingListenerHostname']);
  for (const gw of ['gateway-tls-exact-hostname', 'gateway-tls-wildcard-hostname']) {
    const ls = statusOf(r, 'Gateway', gw).listeners as { attachedRoutes: number }[];
    assert.deepEqual(
      ls.map((l) => l.attachedRoutes),
      [0],
    );
  }
});

test('TLSRouteInvalidNoMatchingListener', () => {
  const r = load('tlsroute-invalid-no-matching-listener.yaml');
  const routes = own(r, 'TLSRoute');
  const reasons = routes.map(
    (s) => (s.status.parents as { conditions: Condition[]; parentRef: { name: string } }[])[0],
  );
  const byGw = Object.fromEntries(
    reasons.map((p) => [p!.parentRef.name, p!.conditions.find((c) => c.type === 'Accepted')?.reason]),
  );
  assert.deepEqual(byGw, {
    'gateway-tlsroute-http-only': 'NotAllowedByListeners',
    'gateway-tlsroute-https-only': 'NotAllowedByListeners',
    'gateway-tlsroute-tls-passthrough-only': 'NoMatchingParent',
  });
  listener(r, 'gateway-tlsroute-http-only', 'http', { attached: 0 });
  listener(r, 'gateway-tlsroute-https-only', 'https', { attached: 0 });
});

test('TLSRouteInvalidReferenceGrant: seven wrong grants give RefNotPermitted', () => {
  const r = load('tlsroute-invalid-reference-grant.yaml');
  routeParent(r, 'TLSRoute', 'gateway-conformance-infra-test', ['ResolvedRefs=False/RefNotPermitted']);
});

test('TLSRouteListenerPassthroughSupportedKinds: TCPRoute on a TLS listener is InvalidRouteKinds', () => {
  const r = load('tlsroute-listener-passthrough-supported-kinds.yaml');
  listener(r, 'gateway-tlsroute-passthrough-supported-kind', 'tls-passthrough', {
    conds: ['ResolvedRefs=False/InvalidRouteKinds'],
    attached: 0,
    kinds: ['TLSRoute'],
  });
});

test('TLSRouteListenerTerminateSupportedKinds and mixed termination on one port', () => {
  const r = load('tlsroute-listener-terminate-supported-kinds.yaml');
  const gw = own(r, 'Gateway').find((s) =>
    (s.status.listeners as { name: string }[]).some((l) => l.name === 'tls-terminate'),
  )!;
  listener(r, gw.metadata.name, 'tls-terminate', {
    conds: ['Accepted=True/Accepted'],
    attached: 0,
    kinds: ['TLSRoute'],
  });
  const m = load('tlsroute-mixed-termination-same-namespace.yaml');
  for (const l of ['tls-terminate', 'tls-passthrough']) {
    listener(m, 'gateway-tlsroute-mixed-termination', l, {
      conds: ['Accepted=True/Accepted'],
      attached: 1,
      kinds: ['TLSRoute'],
    });
  }
  assert.deepEqual(sniRoutes(m, 'gateway-tlsroute-mixed-termination'), {
    'abc.example.com': 'tcp-backend:8443',
    'tls.example.com': 'tcp-backend:3000',
  });
});

test('HTTPRouteDisallowedKind: NotAllowedByListeners with ResolvedRefs=True', () => {
  const r = load('httproute-disallowed-kind.yaml');
  routeParent(r, 'HTTPRoute', 'disallowed-kind', [
    'Accepted=False/NotAllowedByListeners',
    'ResolvedRefs=True',
  ]);
  const ls = statusOf(r, 'Gateway', 'tlsroutes-only').listeners as { attachedRoutes: number }[];
  assert.equal(ls[0]?.attachedRoutes, 0);
});

test('GatewayListenerUnsupportedProtocol', () => {
  const r = load('gateway-invalid-listeners-unsupported-protocol.yaml');
  const gws = own(r, 'Gateway');
  const only = gws.find((g) => (g.status.listeners as unknown[]).length === 1)!;
  hasCond(only.status.conditions, 'Accepted=False/ListenersNotValid', only.metadata.name);
  listener(r, only.metadata.name, 'invalid', {
    conds: ['Accepted=False/UnsupportedProtocol'],
    kinds: 'empty',
    attached: 0,
  });
  const two = gws.find((g) => (g.status.listeners as unknown[]).length === 2)!;
  hasCond(two.status.conditions, 'Accepted=True/ListenersNotValid', two.metadata.name);
  hasCond(two.status.conditions, 'Programmed=True', two.metadata.name);
  listener(r, two.metadata.name, 'http', { conds: ['Accepted=True/Accepted'], kinds: ['HTTPRoute'] });
  listener(r, two.metadata.name, 'invalid', {
    conds: ['Accepted=False/UnsupportedProtocol'],
    kinds: 'empty',
  });
});

test('GatewayInvalidRouteKind', () => {
  const r = load('gateway-invalid-route-kind.yaml');
  const gws = own(r, 'Gateway');
  assert.equal(gws.length, 2);
  for (const g of gws) {
    const l = (
      g.status.listeners as { name: string; supportedKinds: { kind: string }[]; conditions: Condition[] }[]
    )[0]!;
    hasCond(l.conditions, 'ResolvedRefs=False/InvalidRouteKinds', g.metadata.name);
    const kinds = l.supportedKinds.map((k) => k.kind);
    assert.ok(kinds.length === 0 || (kinds.length === 1 && kinds[0] === 'HTTPRoute'), g.metadata.name);
  }
});

test('GatewayInvalidTLSConfiguration: every broken certificateRef is InvalidCertificateRef', () => {
  const r = load('gateway-invalid-tls-configuration.yaml');
  const gws = own(r, 'Gateway');
  assert.equal(gws.length, 4);
  for (const g of gws)
    listener(r, g.metadata.name, 'https', {
      conds: ['ResolvedRefs=False/InvalidCertificateRef'],
      kinds: ['HTTPRoute'],
      attached: 0,
    });
});

test('Gateway certificate ReferenceGrants', () => {
  for (const f of [
    'gateway-secret-missing-reference-grant.yaml',
    'gateway-secret-invalid-reference-grant.yaml',
  ]) {
    const r = load(f);
    const g = own(r, 'Gateway')[0]!;
    const l = (g.status.listeners as { name: string }[])[0]!;
    listener(r, g.metadata.name, l.name, {
      conds: ['ResolvedRefs=False/RefNotPermitted'],
      kinds: ['HTTPRoute'],
      attached: 0,
    });
  }
  for (const f of [
    'gateway-secret-reference-grant-specific.yaml',
    'gateway-secret-reference-grant-all-in-namespace.yaml',
  ]) {
    const r = load(f);
    const g = own(r, 'Gateway')[0]!;
    const l = (g.status.listeners as { name: string }[])[0]!;
    listener(r, g.metadata.name, l.name, { conds: ['Programmed=True/Programmed', 'ResolvedRefs=True'] });
  }
});

test('GatewayWithAttachedRoutes: counts, hostname mismatch, invalid listener still counts', () => {
  const r = load('gateway-with-attached-routes.yaml');
  const gws = own(r, 'Gateway');
  const attached = Object.fromEntries(
    gws.map((g) => [
      g.metadata.name,
      (g.status.listeners as { attachedRoutes: number }[]).map((l) => l.attachedRoutes),
    ]),
  );
  assert.deepEqual(attached, {
    'gateway-with-one-attached-route': [1],
    'gateway-with-two-attached-routes': [2],
    'unresolved-gateway-with-one-attached-unresolved-route': [1],
  });
  listener(r, 'unresolved-gateway-with-one-attached-unresolved-route', 'tls', {
    conds: ['Programmed=False', 'ResolvedRefs=False'],
  });
  routeParent(r, 'HTTPRoute', 'http-route-not-accepted', ['Accepted=False/NoMatchingListenerHostname']);
  routeParent(r, 'HTTPRoute', 'http-route-4', ['Accepted=True', 'ResolvedRefs=False']);
});

test('GatewayInvalidParametersRef and GatewayStaticAddresses', () => {
  const r = load('gateway-invalid-parameters-ref.yaml');
  gateway(r, own(r, 'Gateway')[0]!.metadata.name, ['Accepted=False/InvalidParameters']);
  const a = load('gateway-static-addresses.yaml');
  gateway(a, own(a, 'Gateway')[0]!.metadata.name, ['Accepted=False/UnsupportedAddress']);
});

test('HTTPRoute and TCPRoute ReferenceGrant and parentRef cases', () => {
  routeParent(
    load('httproute-invalid-cross-namespace-backend-ref.yaml'),
    'HTTPRoute',
    'invalid-cross-namespace-backend-ref',
    ['Accepted=True', 'ResolvedRefs=False/RefNotPermitted'],
  );
  routeParent(load('httproute-invalid-reference-grant.yaml'), 'HTTPRoute', 'reference-grant', [
    'Accepted=True',
    'ResolvedRefs=False/RefNotPermitted',
  ]);
  routeParent(load('httproute-reference-grant.yaml'), 'HTTPRoute', 'reference-grant', [
    'Accepted=True',
    'ResolvedRefs=True',
  ]);
  routeParent(
    load('httproute-partially-invalid-via-invalid-reference-grant.yaml'),
    'HTTPRoute',
    'invalid-reference-grant',
    ['ResolvedRefs=False/RefNotPermitted'],
  );
  routeParent(
    load('httproute-invalid-cross-namespace-parent-ref.yaml'),
    'HTTPRoute',
    'invalid-cross-namespace-parent-ref',
    ['Accepted=False/NotAllowedByListeners', 'ResolvedRefs=True'],
    'gateway-conformance-web-backend',
  );
  routeParent(
    load('httproute-invalid-parentref-not-matching-section-name.yaml'),
    'HTTPRoute',
    'httproute-listener-not-matching-section-name',
    ['Accepted=False/NoMatchingParent'],
  );
  routeParent(
    load('httproute-invalid-nonexistent-backendref.yaml'),
    'HTTPRoute',
    'invalid-nonexistent-backend-ref',
    ['ResolvedRefs=False/BackendNotFound'],
  );
  routeParent(
    load('httproute-invalid-backendref-unknown-kind.yaml'),
    'HTTPRoute',
    'invalid-backend-ref-unknown-kind',
    ['ResolvedRefs=False/InvalidKind'],
  );
  routeParent(
    load('tcproute-invalid-cross-namespace-backend-ref.yaml'),
    'TCPRoute',
    'tcp-invalid-cross-namespace-backend-ref',
    ['ResolvedRefs=False/RefNotPermitted'],
  );
  routeParent(
    load('tcproute-invalid-backendref-nonexistent.yaml'),
    'TCPRoute',
    'tcp-route-invalid-backend-ref-nonexistent',
    ['ResolvedRefs=False/BackendNotFound'],
  );
  routeParent(load('tcproute-invalid-non-tcp-listener.yaml'), 'TCPRoute', 'tcp-route', [
    'Accepted=False/NotAllowedByListeners',
  ]);
});

test('Frontend client-certificate validation and backend client certificate', () => {
  const r = load('gateway-with-invalid-clientcertificate-validation.yaml');
  const reasons = r.statuses
    .filter((s) => s.kind === 'Gateway')
    .flatMap((g) =>
      (g.status.listeners as { conditions: Condition[] }[]).map(
        (l) => l.conditions.find((c) => c.type === 'ResolvedRefs')!.reason,
      ),
    );
  for (const want of ['InvalidCACertificateRef', 'InvalidCACertificateKind', 'RefNotPermitted'])
    assert.ok(reasons.includes(want), want);
  const insecure = load('gateway-with-clientcertificate-validation-insecure-fallback.yaml');
  gateway(insecure, own(insecure, 'Gateway')[0]!.metadata.name, [
    'InsecureFrontendValidationMode=True/ConfigurationChanged',
  ]);
  const be = load('gateway-invalid-tls-backend-configuration.yaml');
  for (const g of own(be, 'Gateway')) {
    hasCond(g.status.conditions, 'Accepted=True/Accepted', g.metadata.name);
    const rr = (g.status.conditions as Condition[]).find((c) => c.type === 'ResolvedRefs')!;
    assert.ok(
      ['InvalidClientCertificateRef', 'RefNotPermitted'].includes(rr.reason),
      `${g.metadata.name}: ${rr.reason}`,
    );
  }
});

test('BackendTLSPolicyTLSRouteTerminate: policy Accepted/ResolvedRefs for the Gateway; the backend is re-encrypted', () => {
  const r = load('backendtlspolicy-tlsroute-terminate.yaml');
  const p = statusOf(r, 'BackendTLSPolicy', 'btls-tlsroute-terminate-test');
  const ancestors = p.ancestors as { ancestorRef: { kind: string; name: string }; conditions: Condition[] }[];
  const gw = ancestors.find(
    (a) => a.ancestorRef.kind === 'Gateway' && a.ancestorRef.name === 'gateway-btls-tlsroute-terminate',
  );
  assert.ok(gw, 'an ancestor entry for the Gateway');
  hasCond(gw.conditions, 'Accepted=True/Accepted', 'policy');
  hasCond(gw.conditions, 'ResolvedRefs=True/ResolvedRefs', 'policy');
  const b = r.table.binds
    .flatMap((x) => x.listeners)
    .find((l) => l.gateway.name === 'gateway-btls-tlsroute-terminate')?.routes[0]?.backends.backends[0];
  assert.equal(b?.tls?.serverName, 'abc.example.com');
  assert.ok(b?.tls?.caPem?.includes('BEGIN CERTIFICATE'));
});
