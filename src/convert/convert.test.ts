import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseManifests, toResources } from '../api/parse.ts';
import { readObjects } from '../cli/convert.ts';
import { DEFAULT_CONTROLLER_NAME, translate } from '../translate/index.ts';
import { convert, renderConverted } from './index.ts';
import type { InputObject, Obj } from './types.ts';

const ROOT = join(import.meta.dirname, '../..');

function inputsOf(...files: string[]): InputObject[] {
  return files.flatMap((f) => readObjects(readFileSync(f, 'utf8'), f));
}

function dirFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
}

/** Load the converted YAML as snigate would, translate it, and return what matters. */
function load(text: string) {
  const parsed = parseManifests(text, 'converted.yaml');
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
  const { resources } = toResources(parsed.objects);
  const result = translate(resources, {
    controllerName: DEFAULT_CONTROLLER_NAME,
    serveUnknownClasses: true,
    statusAddresses: ['127.0.0.1'],
  });
  const routes = result.statuses.filter((s) => s.kind.endsWith('Route'));
  const accepted = (name: string) => {
    const s = routes.find((r) => r.metadata.name === name);
    const parents = (s?.status.parents ?? []) as {
      conditions: { type: string; status: string; reason: string }[];
    }[];
    return (
      parents.length > 0 &&
      parents.every((p) => p.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'))
    );
  };
  return { parsed, errors, resources, result, routes, accepted };
}

const ing = (
  name: string,
  spec: Obj,
  annotations: Record<string, string> = {},
  namespace = 'shop',
): InputObject => ({
  object: {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace, annotations },
    spec,
  },
  file: 'test.yaml',
});

describe('convert: seed documents', () => {
  it('seed 001 Ingresses (termination and legacy tcp passthrough) load without errors and attach', () => {
    const inputs = inputsOf(
      join(ROOT, 'src/config/testdata/seed-001-api-gateway-ingress.yaml'),
      join(ROOT, 'src/config/testdata/seed-001-payment-service-ingress.yaml'),
    );
    const r = convert(inputs);
    assert.equal(r.converted, 2);
    const text = renderConverted(r, ['seed-001']);
    const { errors, routes, accepted, resources } = load(text);
    assert.deepEqual(errors, []);
    assert.deepEqual(routes.map((s) => `${s.kind}/${s.metadata.name}`).sort(), [
      'HTTPRoute/api-gateway-ingress',
      'HTTPRoute/api-gateway-ingress-https-redirect',
      'TLSRoute/payment-service-ingress',
    ]);
    for (const s of routes) assert.ok(accepted(s.metadata.name), `${s.metadata.name} is Accepted`);
    const gw = resources.gateways[0]!;
    assert.deepEqual(
      gw.spec.listeners.map((l) => [l.name, l.protocol, l.port, l.hostname, l.tls?.mode]),
      [
        ['https-api-oladapo-cloud', 'HTTPS', 443, 'api.oladapo.cloud', 'Terminate'],
        ['http', 'HTTP', 80, undefined, undefined],
        ['tls-payments-oladapo-cloud', 'TLS', 443, 'payments.oladapo.cloud', 'Passthrough'],
      ],
    );
    assert.deepEqual(gw.spec.listeners[0]!.tls?.certificateRefs, [
      { kind: 'Secret', name: 'api-gateway-tls-secret' },
    ]);
    assert.match(
      text,
      /^# Notes:\n# {3}Ingress default\/payment-service-ingress: host payments\.oladapo\.cloud: rules\[\]\.tcp/m,
    );
  });

  it('seed 000 multi-hostname (legacy snis) becomes three v1 TLSRoutes that load cleanly and are Accepted', () => {
    const r = convert(inputsOf(...dirFiles(join(ROOT, 'examples/seed-000/multi-hostname'))));
    assert.equal(r.converted, 1);
    const { errors, parsed, routes, accepted, result } = load(renderConverted(r, ['multi-hostname']));
    assert.deepEqual(errors, []);
    assert.equal(
      parsed.diagnostics.filter((d) => d.code === 'legacy-tlsroute-snis').length,
      0,
      'no legacy form left',
    );
    assert.deepEqual(
      routes.map((s) => s.metadata.name),
      ['multi-hostname-tls-0', 'multi-hostname-tls-1', 'multi-hostname-tls-2'],
    );
    for (const s of routes) assert.ok(accepted(s.metadata.name));
    const hosts = result.table.binds[0]!.listeners[0]!.routes.map((x) => x.hostname);
    assert.deepEqual(hosts, ['api.example.com', 'db.example.com', '*.internal.example.com']);
  });
});

describe('convert: ingress-nginx features', () => {
  it('paths, rewrite-target idiom, ssl-redirect off, defaultBackend, unsupported annotations, regex paths', () => {
    const r = convert([
      ing(
        'web',
        {
          ingressClassName: 'nginx',
          tls: [{ hosts: ['www.shop.test'], secretName: 'www-cert' }],
          defaultBackend: { service: { name: 'fallback', port: { number: 8080 } } },
          rules: [
            {
              host: 'www.shop.test',
              http: {
                paths: [
                  {
                    path: '/api(/|$)(.*)',
                    pathType: 'ImplementationSpecific',
                    backend: { service: { name: 'api', port: { number: 80 } } },
                  },
                  {
                    path: '/img/[0-9]+',
                    pathType: 'ImplementationSpecific',
                    backend: { service: { name: 'img', port: { number: 80 } } },
                  },
                  {
                    path: '/exact',
                    pathType: 'Exact',
                    backend: { service: { name: 'web', port: { name: 'http' } } },
                  },
                ],
              },
            },
          ],
        },
        {
          'nginx.ingress.kubernetes.io/rewrite-target': '/$2',
          'nginx.ingress.kubernetes.io/ssl-redirect': 'false',
          'nginx.ingress.kubernetes.io/proxy-body-size': '10m',
          'nginx.ingress.kubernetes.io/configuration-snippet': 'more_set_headers "X: y";',
        },
      ),
      {
        object: {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'web', namespace: 'shop' },
          spec: { ports: [{ name: 'http', port: 8000 }] },
        },
        file: 't',
      },
    ]);
    const unsupported = r.notes.filter((n) => n.severity === 'unsupported').map((n) => n.message);
    assert.ok(unsupported.some((m) => m.includes('nginx.ingress.kubernetes.io/configuration-snippet')));
    assert.ok(!unsupported.some((m) => m.includes('proxy-body-size')), 'carried, not dropped');
    assert.ok(unsupported.some((m) => m.includes('regex path /img/[0-9]+')));
    const routes = r.objects.filter((o) => o.kind === 'HTTPRoute') as {
      metadata: { name: string };
      spec: Obj;
    }[];
    assert.deepEqual(
      routes.map((x) => x.metadata.name),
      ['web-www-shop-test', 'web-default-backend'],
    );
    const main = routes[0]!.spec as { parentRefs: Obj[]; rules: Obj[] };
    assert.deepEqual(
      main.parentRefs.map((p) => p.sectionName),
      ['https-www-shop-test', 'http'],
      'ssl-redirect off: HTTP serves too',
    );
    assert.deepEqual(main.rules, [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
        filters: [
          {
            type: 'URLRewrite',
            urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } },
          },
        ],
        backendRefs: [{ name: 'api', port: 80 }],
      },
      { matches: [{ path: { type: 'Exact', value: '/exact' } }], backendRefs: [{ name: 'web', port: 8000 }] },
    ]);
    assert.equal((routes[1]!.spec as Obj).hostnames, undefined);
    assert.deepEqual((routes[0] as unknown as { metadata: { annotations: Obj } }).metadata.annotations, {
      'snigate.io/converted-from': 'Ingress shop/web',
      'nginx.ingress.kubernetes.io/proxy-body-size': '10m',
    });
    const { errors, accepted } = load(renderConverted(r, ['t']));
    assert.deepEqual(errors, []);
    assert.ok(accepted('web-www-shop-test'));
    assert.ok(accepted('web-default-backend'));
    const text = renderConverted(r, ['t']);
    assert.match(text, /^# NOT CONVERTED \(review before applying\):$/m);
    assert.match(
      text,
      /^# {3}Ingress shop\/web: annotation nginx\.ingress\.kubernetes\.io\/configuration-snippet/m,
    );
  });

  it('ssl-redirect by default with TLS, force-ssl-redirect, literal rewrite-target, secrets in another namespace get a ReferenceGrant', () => {
    const r = convert(
      [
        ing(
          'a',
          {
            tls: [{ hosts: ['a.test'], secretName: 'a-cert' }],
            rules: [
              {
                host: 'a.test',
                http: {
                  paths: [
                    {
                      path: '/',
                      pathType: 'Prefix',
                      backend: { service: { name: 'a', port: { number: 80 } } },
                    },
                  ],
                },
              },
            ],
          },
          {},
          'team-a',
        ),
        ing(
          'b',
          {
            rules: [
              {
                host: 'b.test',
                http: {
                  paths: [
                    {
                      path: '/old',
                      pathType: 'Prefix',
                      backend: { service: { name: 'b', port: { number: 80 } } },
                    },
                  ],
                },
              },
            ],
          },
          {
            'nginx.ingress.kubernetes.io/rewrite-target': '/new',
            'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true',
          },
          'team-b',
        ),
      ],
      { namespace: 'infra', gatewayClass: 'edge' },
    );
    const gw = r.objects.find((o) => o.kind === 'Gateway') as {
      metadata: Obj;
      spec: { gatewayClassName: string; listeners: Obj[] };
    };
    assert.equal(gw.metadata.namespace, 'infra');
    assert.equal(gw.spec.gatewayClassName, 'edge');
    assert.ok(
      gw.spec.listeners.every((l) => (l.allowedRoutes as Obj).namespaces !== undefined),
      'routes in other namespaces: from All',
    );
    const grants = r.objects.filter((o) => o.kind === 'ReferenceGrant');
    assert.deepEqual(grants, [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'ReferenceGrant',
        metadata: { name: 'gateway-infra-to-secret', namespace: 'team-a' },
        spec: {
          from: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'infra' }],
          to: [{ group: '', kind: 'Secret', name: 'a-cert' }],
        },
      },
    ]);
    const names = r.objects.filter((o) => o.kind === 'HTTPRoute').map((o) => (o.metadata as Obj).name);
    assert.deepEqual(names, ['a', 'a-https-redirect', 'b']);
    const bRoute = r.objects.find((o) => (o.metadata as Obj).name === 'b') as {
      spec: { rules: Obj[]; parentRefs: Obj[] };
    };
    assert.deepEqual(bRoute.spec.rules[0]!.filters, [
      { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/new' } } },
    ]);
    assert.deepEqual(
      bRoute.spec.parentRefs,
      [{ name: 'snigate', namespace: 'infra', sectionName: 'http' }],
      'no TLS: HTTP keeps serving',
    );
    assert.ok(
      r.notes.some(
        (n) =>
          n.object === 'Ingress team-b/b' &&
          n.severity === 'unsupported' &&
          n.message.includes('force-ssl-redirect without a TLS entry'),
      ),
    );
    const aRoute = r.objects.find((o) => (o.metadata as Obj).name === 'a') as { spec: { parentRefs: Obj[] } };
    assert.deepEqual(aRoute.spec.parentRefs, [
      { name: 'snigate', namespace: 'infra', sectionName: 'https-a-test' },
    ]);
  });

  it('ssl-passthrough: one TLSRoute and TLS listener per host; other annotations are listed as ignored', () => {
    const r = convert([
      ing(
        'db',
        {
          rules: [
            {
              host: 'db.test',
              http: {
                paths: [
                  {
                    path: '/',
                    pathType: 'Prefix',
                    backend: { service: { name: 'pg', port: { number: 5432 } } },
                  },
                ],
              },
            },
          ],
        },
        {
          'nginx.ingress.kubernetes.io/ssl-passthrough': 'true',
          'nginx.ingress.kubernetes.io/backend-protocol': 'HTTPS',
        },
      ),
    ]);
    const route = r.objects.find((o) => o.kind === 'TLSRoute') as { spec: Obj };
    assert.deepEqual(route.spec, {
      parentRefs: [{ name: 'snigate', sectionName: 'tls-db-test' }],
      hostnames: ['db.test'],
      rules: [{ backendRefs: [{ name: 'pg', port: 5432 }] }],
    });
    assert.ok(
      r.notes.some((n) => n.severity === 'unsupported' && n.message.includes('backend-protocol is ignored')),
    );
    const { errors, accepted } = load(renderConverted(r, ['t']));
    assert.deepEqual(errors, []);
    assert.ok(accepted('db'));
  });

  it('legacy TLSRoute with a cross-namespace backend gets a ReferenceGrant unless one exists', () => {
    const route = (ns: string) => ({
      object: {
        apiVersion: 'gateway.networking.k8s.io/v1alpha2',
        kind: 'TLSRoute',
        metadata: { name: 'r', namespace: ns },
        spec: {
          parentRefs: [{ name: 'gw' }],
          rules: [
            { matches: [{ snis: ['a.test'] }], backendRefs: [{ name: 's', namespace: 'back', port: 443 }] },
          ],
        },
      },
      file: 't',
    });
    const r = convert([route('front')]);
    assert.equal(r.objects.filter((o) => o.kind === 'ReferenceGrant').length, 1);
    const tls = r.objects.find((o) => o.kind === 'TLSRoute') as { apiVersion: string; spec: Obj };
    assert.equal(tls.apiVersion, 'gateway.networking.k8s.io/v1');
    assert.deepEqual(tls.spec.hostnames, ['a.test']);
    const grant = parse(
      'apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: back}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: TLSRoute, namespace: front}]\n  to: [{group: "", kind: Service}]\n',
    ) as Obj;
    const again = convert([route('front'), { object: grant, file: 't' }]);
    const grants = again.objects.filter((o) => o.kind === 'ReferenceGrant');
    assert.equal(grants.length, 1, 'only the existing grant');
    assert.equal(grants[0]!.apiVersion, 'gateway.networking.k8s.io/v1', 'deprecated version bumped');
  });
});
