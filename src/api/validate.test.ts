/** Table-driven negative cases: each validation rule rejects (or warns) with the expected code and field path. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Resource } from './types.ts';
import { validateObject, validateRaw } from './validate.ts';

const GW = 'gateway.networking.k8s.io/v1';
const meta = { name: 'x', namespace: 'default' };

function gateway(listeners: unknown[], extra: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: GW,
    kind: 'Gateway',
    metadata: meta,
    spec: { gatewayClassName: 'snigate', listeners, ...extra },
  };
}
const tlsListener = { name: 'tls', port: 443, protocol: 'TLS', tls: { mode: 'Passthrough' } };
function tlsRoute(spec: Record<string, unknown>, apiVersion = GW): unknown {
  return {
    apiVersion,
    kind: 'TLSRoute',
    metadata: meta,
    spec: {
      parentRefs: [{ name: 'gw' }],
      hostnames: ['a.example.com'],
      rules: [{ backendRefs: [{ name: 's', port: 443 }] }],
      ...spec,
    },
  };
}
function httpRoute(rule: Record<string, unknown>, spec: Record<string, unknown> = {}): unknown {
  return { apiVersion: GW, kind: 'HTTPRoute', metadata: meta, spec: { rules: [rule], ...spec } };
}
const redirect = (extra: Record<string, unknown>) => ({
  type: 'RequestRedirect',
  requestRedirect: { ...extra },
});
const ingress = (path: Record<string, unknown>): unknown => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: meta,
  spec: { rules: [{ host: 'a.example.com', http: { paths: [path] } }] },
});
const svcBackend = { service: { name: 'web', port: { number: 80 } } };

interface Case {
  name: string;
  object: unknown;
  code: string;
  path: string;
  severity?: 'error' | 'warning';
}

const cases: Case[] = [
  // metadata and versions
  { name: 'name not DNS-1123', object: gateway([tlsListener]), code: 'invalid-field', path: 'metadata.name' },
  {
    name: 'unsupported apiVersion',
    object: { ...(gateway([tlsListener]) as object), apiVersion: 'gateway.networking.k8s.io/v1alpha1' },
    code: 'unsupported-version',
    path: 'apiVersion',
  },
  {
    name: 'deprecated TLSRoute v1alpha2',
    object: tlsRoute({}, 'gateway.networking.k8s.io/v1alpha2'),
    code: 'deprecated-version',
    path: 'apiVersion',
    severity: 'warning',
  },
  {
    name: 'label value not a string',
    object: { ...(tlsRoute({}) as object), metadata: { ...meta, labels: { v: 1 } } },
    code: 'invalid-field',
    path: 'metadata.labels.v',
  },
  // Gateway listeners
  { name: 'no listeners', object: gateway([]), code: 'invalid-field', path: 'spec.listeners' },
  {
    name: 'gatewayClassName missing',
    object: { apiVersion: GW, kind: 'Gateway', metadata: meta, spec: { listeners: [tlsListener] } },
    code: 'missing-field',
    path: 'spec.gatewayClassName',
  },
  {
    name: 'listener name pattern',
    object: gateway([{ ...tlsListener, name: 'TLS_1' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].name',
  },
  {
    name: 'port 0',
    object: gateway([{ ...tlsListener, port: 0 }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].port',
  },
  {
    name: 'port 70000',
    object: gateway([{ ...tlsListener, port: 70000 }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].port',
  },
  {
    name: 'port as string',
    object: gateway([{ ...tlsListener, port: '443' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].port',
  },
  {
    name: 'protocol pattern',
    object: gateway([{ ...tlsListener, protocol: 'TLS PASSTHROUGH' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].protocol',
  },
  {
    name: 'listener hostname with port',
    object: gateway([{ ...tlsListener, hostname: 'a.example.com:443' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].hostname',
  },
  {
    name: 'listener hostname IP',
    object: gateway([{ ...tlsListener, hostname: '10.0.0.1' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].hostname',
  },
  {
    name: 'listener hostname uppercase',
    object: gateway([{ ...tlsListener, hostname: 'App.example.com' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].hostname',
  },
  {
    name: 'TLS without tls',
    object: gateway([{ name: 'tls', port: 443, protocol: 'TLS' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].tls',
  },
  {
    name: 'TLS tls:{} defaults to Terminate without certs',
    object: gateway([{ name: 'tls', port: 443, protocol: 'TLS', tls: {} }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].tls.certificateRefs',
  },
  {
    name: 'HTTP with tls',
    object: gateway([{ name: 'h', port: 80, protocol: 'HTTP', tls: { mode: 'Passthrough' } }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].tls',
  },
  {
    name: 'HTTPS passthrough',
    object: gateway([{ name: 'h', port: 443, protocol: 'HTTPS', tls: { mode: 'Passthrough' } }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].tls.mode',
  },
  {
    name: 'HTTPS terminate without certs',
    object: gateway([{ name: 'h', port: 443, protocol: 'HTTPS', tls: { mode: 'Terminate' } }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].tls.certificateRefs',
  },
  {
    name: 'tls mode enum',
    object: gateway([{ ...tlsListener, tls: { mode: 'passthrough' } }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].tls.mode',
  },
  {
    name: 'TCP with hostname',
    object: gateway([{ name: 't', port: 5432, protocol: 'TCP', hostname: 'db.example.com' }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].hostname',
  },
  {
    name: 'duplicate listener names',
    object: gateway([tlsListener, { ...tlsListener, port: 8443 }]),
    code: 'invalid-field',
    path: 'spec.listeners[1].name',
  },
  {
    name: 'duplicate port/protocol/hostname',
    object: gateway([tlsListener, { ...tlsListener, name: 'tls2' }]),
    code: 'invalid-field',
    path: 'spec.listeners[1]',
  },
  {
    name: 'too many listeners',
    object: gateway(
      Array.from({ length: 65 }, (_, i) => ({ ...tlsListener, name: `l${i}`, port: 1000 + i })),
    ),
    code: 'invalid-field',
    path: 'spec.listeners',
  },
  {
    name: 'from enum',
    object: gateway([{ ...tlsListener, allowedRoutes: { namespaces: { from: 'Any' } } }]),
    code: 'invalid-field',
    path: 'spec.listeners[0].allowedRoutes.namespaces.from',
  },
  {
    name: 'Selector without selector',
    object: gateway([{ ...tlsListener, allowedRoutes: { namespaces: { from: 'Selector' } } }]),
    code: 'missing-field',
    path: 'spec.listeners[0].allowedRoutes.namespaces.selector',
  },
  {
    name: 'too many kinds',
    object: gateway([
      { ...tlsListener, allowedRoutes: { kinds: Array.from({ length: 9 }, () => ({ kind: 'TLSRoute' })) } },
    ]),
    code: 'invalid-field',
    path: 'spec.listeners[0].allowedRoutes.kinds',
  },
  {
    name: 'kind missing in kinds',
    object: gateway([{ ...tlsListener, allowedRoutes: { kinds: [{ group: 'x' }] } }]),
    code: 'missing-field',
    path: 'spec.listeners[0].allowedRoutes.kinds[0].kind',
  },
  // TLSRoute / TCPRoute
  {
    name: 'TLSRoute v1 without hostnames',
    object: tlsRoute({ hostnames: undefined }),
    code: 'missing-field',
    path: 'spec.hostnames',
  },
  {
    name: 'TLSRoute empty hostnames',
    object: tlsRoute({ hostnames: [] }),
    code: 'invalid-field',
    path: 'spec.hostnames',
  },
  {
    name: 'TLSRoute IP hostname',
    object: tlsRoute({ hostnames: ['192.168.1.1'] }),
    code: 'invalid-field',
    path: 'spec.hostnames[0]',
  },
  {
    name: 'TLSRoute wildcard not first',
    object: tlsRoute({ hostnames: ['a.*.example.com'] }),
    code: 'invalid-field',
    path: 'spec.hostnames[0]',
  },
  {
    name: 'TLSRoute two rules in v1',
    object: tlsRoute({
      rules: [{ backendRefs: [{ name: 'a', port: 1 }] }, { backendRefs: [{ name: 'b', port: 1 }] }],
    }),
    code: 'invalid-field',
    path: 'spec.rules',
  },
  {
    name: 'TLSRoute no backendRefs',
    object: tlsRoute({ rules: [{}] }),
    code: 'missing-field',
    path: 'spec.rules[0].backendRefs',
  },
  {
    name: 'TLSRoute 17 backendRefs',
    object: tlsRoute({
      rules: [{ backendRefs: Array.from({ length: 17 }, () => ({ name: 's', port: 1 })) }],
    }),
    code: 'invalid-field',
    path: 'spec.rules[0].backendRefs',
  },
  {
    name: 'backendRef Service without port',
    object: tlsRoute({ rules: [{ backendRefs: [{ name: 's' }] }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].backendRefs[0].port',
  },
  {
    name: 'backendRef weight too big',
    object: tlsRoute({ rules: [{ backendRefs: [{ name: 's', port: 1, weight: 1000001 }] }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].backendRefs[0].weight',
  },
  {
    name: 'backendRef negative weight',
    object: tlsRoute({ rules: [{ backendRefs: [{ name: 's', port: 1, weight: -1 }] }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].backendRefs[0].weight',
  },
  {
    name: 'parentRefs > 32',
    object: tlsRoute({ parentRefs: Array.from({ length: 33 }, (_, i) => ({ name: `g${i}` })) }),
    code: 'invalid-field',
    path: 'spec.parentRefs',
  },
  {
    name: 'same parent twice without sectionName',
    object: tlsRoute({ parentRefs: [{ name: 'gw' }, { name: 'gw' }] }),
    code: 'invalid-field',
    path: 'spec.parentRefs[1]',
  },
  {
    name: 'TLSRoute matches left in place',
    object: tlsRoute({
      rules: [{ matches: [{ snis: ['a.example.com'] }], backendRefs: [{ name: 's', port: 1 }] }],
    }),
    code: 'legacy-tlsroute-snis',
    path: 'spec.rules[0].matches',
  },
  {
    name: 'TCPRoute two rules',
    object: {
      apiVersion: GW,
      kind: 'TCPRoute',
      metadata: meta,
      spec: { rules: [{ backendRefs: [{ name: 'a', port: 1 }] }, { backendRefs: [{ name: 'b', port: 1 }] }] },
    },
    code: 'invalid-field',
    path: 'spec.rules',
  },
  {
    name: 'TCPRoute no rules',
    object: { apiVersion: GW, kind: 'TCPRoute', metadata: meta, spec: {} },
    code: 'missing-field',
    path: 'spec.rules',
  },
  // HTTPRoute
  {
    name: 'HTTPRoute path without slash',
    object: httpRoute({ matches: [{ path: { type: 'PathPrefix', value: 'api' } }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].matches[0].path.value',
  },
  {
    name: 'HTTPRoute path type enum',
    object: httpRoute({ matches: [{ path: { type: 'Prefix', value: '/' } }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].matches[0].path.type',
  },
  {
    name: 'HTTPRoute path with //',
    object: httpRoute({ matches: [{ path: { type: 'Exact', value: '/a//b' } }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].matches[0].path.value',
  },
  {
    name: 'HTTPRoute 65 matches',
    object: httpRoute({ matches: Array.from({ length: 65 }, () => ({})) }),
    code: 'invalid-field',
    path: 'spec.rules[0].matches',
  },
  {
    name: 'HTTPRoute >128 matches total',
    object: {
      apiVersion: GW,
      kind: 'HTTPRoute',
      metadata: meta,
      spec: { rules: Array.from({ length: 3 }, () => ({ matches: Array.from({ length: 60 }, () => ({})) })) },
    },
    code: 'invalid-field',
    path: 'spec.rules',
  },
  {
    name: 'HTTPRoute 17 rules',
    object: {
      apiVersion: GW,
      kind: 'HTTPRoute',
      metadata: meta,
      spec: { rules: Array.from({ length: 17 }, () => ({})) },
    },
    code: 'invalid-field',
    path: 'spec.rules',
  },
  {
    name: 'HTTPRoute header name with colon',
    object: httpRoute({ matches: [{ headers: [{ name: 'X-A:', value: 'b' }] }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].matches[0].headers[0].name',
  },
  {
    name: 'HTTPRoute method enum',
    object: httpRoute({ matches: [{ method: 'get' }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].matches[0].method',
  },
  {
    name: 'HTTPRoute hostnames > 16',
    object: httpRoute({}, { hostnames: Array.from({ length: 17 }, (_, i) => `h${i}.example.com`) }),
    code: 'invalid-field',
    path: 'spec.hostnames',
  },
  {
    name: 'HTTPRoute filter type enum',
    object: httpRoute({ filters: [{ type: 'Redirect' }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].filters[0].type',
  },
  {
    name: 'HTTPRoute filter sub-field missing',
    object: httpRoute({ filters: [{ type: 'RequestHeaderModifier' }] }),
    code: 'missing-field',
    path: 'spec.rules[0].filters[0].requestHeaderModifier',
  },
  {
    name: 'HTTPRoute filter sub-field of other type',
    object: httpRoute({ filters: [{ type: 'URLRewrite', urlRewrite: {}, requestRedirect: {} }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].filters[0].requestRedirect',
  },
  {
    name: 'HTTPRoute redirect 305',
    object: httpRoute({ filters: [redirect({ statusCode: 305 })] }),
    code: 'invalid-field',
    path: 'spec.rules[0].filters[0].requestRedirect.statusCode',
  },
  {
    name: 'HTTPRoute redirect scheme',
    object: httpRoute({ filters: [redirect({ scheme: 'HTTPS' })] }),
    code: 'invalid-field',
    path: 'spec.rules[0].filters[0].requestRedirect.scheme',
  },
  {
    name: 'HTTPRoute redirect with backendRefs',
    object: httpRoute({ filters: [redirect({ scheme: 'https' })], backendRefs: [{ name: 's', port: 80 }] }),
    code: 'invalid-field',
    path: 'spec.rules[0].filters',
  },
  {
    name: 'HTTPRoute repeated filter',
    object: httpRoute({ filters: [redirect({}), redirect({})] }),
    code: 'invalid-field',
    path: 'spec.rules[0].filters',
  },
  {
    name: 'HTTPRoute replacePrefixMatch needs one PathPrefix',
    object: httpRoute({
      matches: [{ path: { type: 'Exact', value: '/a' } }],
      filters: [
        {
          type: 'URLRewrite',
          urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } },
        },
      ],
    }),
    code: 'invalid-field',
    path: 'spec.rules[0].filters',
  },
  {
    name: 'HTTPRoute ReplaceFullPath without value',
    object: httpRoute({
      filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath' } } }],
    }),
    code: 'missing-field',
    path: 'spec.rules[0].filters[0].urlRewrite.path.replaceFullPath',
  },
  {
    name: 'HTTPRoute timeout format',
    object: httpRoute({ timeouts: { request: '10 seconds' } }),
    code: 'invalid-field',
    path: 'spec.rules[0].timeouts.request',
  },
  // ReferenceGrant
  {
    name: 'ReferenceGrant empty from',
    object: {
      apiVersion: GW,
      kind: 'ReferenceGrant',
      metadata: meta,
      spec: { from: [], to: [{ group: '', kind: 'Service' }] },
    },
    code: 'invalid-field',
    path: 'spec.from',
  },
  {
    name: 'ReferenceGrant from without namespace',
    object: {
      apiVersion: GW,
      kind: 'ReferenceGrant',
      metadata: meta,
      spec: { from: [{ group: GW.split('/')[0], kind: 'TLSRoute' }], to: [{ group: '', kind: 'Service' }] },
    },
    code: 'missing-field',
    path: 'spec.from[0].namespace',
  },
  {
    name: 'ReferenceGrant to without group',
    object: {
      apiVersion: GW,
      kind: 'ReferenceGrant',
      metadata: meta,
      spec: {
        from: [{ group: 'gateway.networking.k8s.io', kind: 'TLSRoute', namespace: 'a' }],
        to: [{ kind: 'Service' }],
      },
    },
    code: 'missing-field',
    path: 'spec.to[0].group',
  },
  // core
  {
    name: 'Service without ports',
    object: { apiVersion: 'v1', kind: 'Service', metadata: meta, spec: { selector: { app: 'x' } } },
    code: 'missing-field',
    path: 'spec.ports',
  },
  {
    name: 'Service name with dot',
    object: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { ...meta, name: 'a.b' },
      spec: { ports: [{ port: 1 }] },
    },
    code: 'invalid-field',
    path: 'metadata.name',
  },
  {
    name: 'Service two unnamed ports',
    object: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta,
      spec: { ports: [{ port: 1 }, { name: 'b', port: 2 }] },
    },
    code: 'missing-field',
    path: 'spec.ports[0].name',
  },
  {
    name: 'Service protocol enum',
    object: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta,
      spec: { ports: [{ port: 1, protocol: 'tcp' }] },
    },
    code: 'invalid-field',
    path: 'spec.ports[0].protocol',
  },
  {
    name: 'EndpointSlice addressType',
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { ...meta, labels: { 'kubernetes.io/service-name': 's' } },
      addressType: 'IP',
      endpoints: [],
    },
    code: 'invalid-field',
    path: 'addressType',
  },
  {
    name: 'EndpointSlice endpoint without addresses',
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { ...meta, labels: { 'kubernetes.io/service-name': 's' } },
      addressType: 'IPv4',
      endpoints: [{}],
    },
    code: 'missing-field',
    path: 'endpoints[0].addresses',
  },
  {
    name: 'EndpointSlice without service label',
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta,
      addressType: 'IPv4',
      endpoints: [],
    },
    code: 'endpointslice-no-service',
    path: 'metadata.labels',
    severity: 'warning',
  },
  {
    name: 'TLS Secret without key',
    object: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta,
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': 'QQ==' },
    },
    code: 'missing-field',
    path: 'data["tls.key"]',
  },
  {
    name: 'Secret data not base64',
    object: { apiVersion: 'v1', kind: 'Secret', metadata: meta, data: { a: 'not base64!' } },
    code: 'invalid-field',
    path: 'data.a',
  },
  // Ingress
  {
    name: 'Ingress pathType missing',
    object: ingress({ path: '/', backend: svcBackend }),
    code: 'missing-field',
    path: 'spec.rules[0].http.paths[0].pathType',
  },
  {
    name: 'Ingress Prefix path without slash',
    object: ingress({ path: 'api', pathType: 'Prefix', backend: svcBackend }),
    code: 'invalid-field',
    path: 'spec.rules[0].http.paths[0].path',
  },
  {
    name: 'Ingress ImplementationSpecific relative path',
    object: ingress({ path: 'api', pathType: 'ImplementationSpecific', backend: svcBackend }),
    code: 'invalid-field',
    path: 'spec.rules[0].http.paths[0].path',
  },
  {
    name: 'Ingress serviceName',
    object: ingress({ path: '/', pathType: 'Prefix', backend: { serviceName: 'web', servicePort: 80 } }),
    code: 'ingress-legacy-backend',
    path: 'spec.rules[0].http.paths[0].backend.serviceName',
  },
  {
    name: 'Ingress port without number or name',
    object: ingress({ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: {} } } }),
    code: 'missing-field',
    path: 'spec.rules[0].http.paths[0].backend.service.port.number',
  },
  {
    name: 'Ingress tcp rule',
    object: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: meta,
      spec: {
        rules: [
          { host: 'a.example.com', tcp: { paths: [{ backend: { serviceName: 'p', servicePort: 443 } }] } },
        ],
      },
    },
    code: 'ingress-tcp-not-supported',
    path: 'spec.rules[0].tcp',
  },
  {
    name: 'Ingress host IP',
    object: {
      ...(ingress({ path: '/', pathType: 'Prefix', backend: svcBackend }) as object),
      spec: { rules: [{ host: '1.2.3.4' }] },
    },
    code: 'invalid-field',
    path: 'spec.rules[0].host',
  },
];
// The first case needs an invalid name; patch it here to keep the table readable.
(cases[0]!.object as { metadata: unknown }).metadata = { name: 'My_Gateway', namespace: 'default' };

describe('validateRaw negative cases', () => {
  for (const c of cases) {
    it(c.name, () => {
      const diags = validateRaw(c.object);
      const hit = diags.find((d) => d.code === c.code && d.path === c.path);
      assert.ok(
        hit,
        `expected ${c.code} at ${c.path}, got:\n${diags.map((d) => `  ${d.severity} ${d.code} ${d.path}: ${d.message}`).join('\n')}`,
      );
      assert.equal(hit.severity, c.severity ?? 'error');
      assert.ok(hit.message.length > 0);
    });
  }
});

describe('validateObject positive cases', () => {
  it('accepts the INVALID protocol (pattern-valid; reported later as UnsupportedProtocol)', () => {
    const diags = validateRaw(gateway([{ name: 'invalid', port: 1111, protocol: 'INVALID' }]));
    assert.deepEqual(diags, []);
  });
  it('accepts domain-prefixed protocols and dotted listener names', () => {
    const diags = validateRaw(gateway([{ name: 'pg.tls', port: 5432, protocol: 'snigate.io/postgres' }]));
    assert.deepEqual(diags, []);
  });
  it('accepts a full TLS passthrough setup', () => {
    const g = gateway([
      {
        ...tlsListener,
        hostname: '*.example.com',
        allowedRoutes: { namespaces: { from: 'All' }, kinds: [{ kind: 'TLSRoute' }] },
      },
    ]);
    assert.deepEqual(validateObject(g as Resource), []);
    assert.deepEqual(validateObject(tlsRoute({ hostnames: ['*.example.com'] }) as Resource), []);
  });
  it('accepts v1alpha2 TLSRoute without hostnames and with several rules (its own schema)', () => {
    const r = tlsRoute(
      {
        hostnames: undefined,
        rules: [{ backendRefs: [{ name: 'a', port: 1 }] }, { backendRefs: [{ name: 'b', port: 1 }] }],
      },
      'gateway.networking.k8s.io/v1alpha2',
    );
    assert.deepEqual(
      validateRaw(r).filter((d) => d.severity === 'error'),
      [],
    );
  });
  it('accepts redirect status codes 303, 307 and 308', () => {
    for (const statusCode of [301, 302, 303, 307, 308]) {
      assert.deepEqual(validateRaw(httpRoute({ filters: [redirect({ statusCode })] })), []);
    }
  });
  it('accepts replacePrefixMatch with the defaulted match', () => {
    const r = httpRoute({
      filters: [
        { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } },
      ],
    });
    assert.deepEqual(validateRaw(r), []);
  });
});
