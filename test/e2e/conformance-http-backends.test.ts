// Gateway API v1.6 conformance, HTTP backendRef tests, end to end (INDEX.md section 4): HTTPRouteWeight,
// HTTPRouteReferenceGrant (with the grant deleted live), HTTPRouteInvalidReferenceGrant,
// HTTPRouteInvalidCrossNamespaceBackendRef, HTTPRouteInvalidNonExistentBackendRef,
// HTTPRouteInvalidBackendRefUnknownKind, HTTPRoutePartiallyInvalidViaInvalidReferenceGrant.
//
// All of them attach a hostname-less route to the base Gateway `same-namespace` and send `GET /`, so, like the
// suite (which applies a test's manifests, runs it, deletes them), each test here adds its manifest to the watched
// directory, waits for the reload, sends traffic, and removes it again. One snigate process serves them all.
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  APP_NS,
  type Backends,
  backendOf,
  baseYaml,
  conformanceYaml,
  expectConsistent,
  expectEventually,
  NS,
  parentConditions,
  type Req,
  send,
  startBackends,
  WEB_NS,
} from './conformance-kit.ts';
import {
  type Materialized,
  manifestDir,
  pool,
  runSnigate,
  type Snigate,
  type StatusDoc,
  waitUntil,
} from './helpers.ts';

const ADDRESS: Record<string, string> = {
  'same-namespace': '127.0.0.31',
  'same-namespace-with-https-listener': '127.0.0.32',
  'all-namespaces': '127.0.0.33',
  'backend-namespaces': '127.0.0.34',
};

/** conformance/tests/httproute-weight.yaml (not among the translate goldens), verbatim. */
const HTTPROUTE_WEIGHT = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: weighted-backends
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      weight: 70
    - name: infra-backend-v2
      port: 8080
      weight: 30
    - name: infra-backend-v3
      port: 8080
      weight: 0
`;

let backends: Backends;
let dir: Materialized;
let gw: Snigate;

before(async () => {
  backends = await startBackends();
  dir = manifestDir({ 'base.yaml': baseYaml(ADDRESS), 'endpoints.yaml': backends.yaml });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [80, 443], hosts: Object.values(ADDRESS) });
});

after(async () => {
  await gw?.stop();
  await backends?.close();
  dir?.cleanup();
});

/** `GET <path>` to same-namespace:80; the Host is the Gateway address, as the suite sends it. */
const get = (path = '/'): Req => ({ address: ADDRESS['same-namespace']!, port: gw.port(80), path });

/** When the last finished reload started. */
async function lastReloadAt(): Promise<string | undefined> {
  return ((await gw.status()).lastReload as { at?: string } | null)?.at;
}

/**
 * Waits until a reload that started after `since` has finished, succeeded and is serving, and `ready` holds for the
 * status it publishes (a burst of file writes can take more than one reload).
 */
async function reloaded(
  since: string | undefined,
  what: string,
  ready: (s: StatusDoc) => boolean,
): Promise<StatusDoc> {
  return waitUntil(
    `reload after ${what}`,
    async () => {
      const s = await gw.status();
      const last = s.lastReload as (StatusDoc['lastReload'] & { at?: string }) | null;
      if (!last || last.at === since) return undefined;
      assert.equal(last.ok, true, `${what}: ${JSON.stringify(last)}`);
      return ready(s) ? s : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
}

const hasRoute = (s: StatusDoc, name: string) =>
  s.statuses.some((o) => o.kind === 'HTTPRoute' && o.metadata.name === name && o.metadata.namespace === NS);

/** Adds files (name → YAML) to the watched directory; resolves with the status once `ready` holds. */
async function apply(files: Record<string, string>, ready: (s: StatusDoc) => boolean): Promise<StatusDoc> {
  const since = await lastReloadAt();
  for (const [f, text] of Object.entries(files)) dir.write(f, text);
  return reloaded(since, `adding ${Object.keys(files).join(', ')}`, ready);
}

/** Removes files and waits until the reload is done and `ready` holds (the suite's cleanup between tests). */
async function remove(files: string[], ready: (s: StatusDoc) => boolean): Promise<StatusDoc> {
  const since = await lastReloadAt();
  for (const f of files) dir.remove(f);
  return reloaded(since, `removing ${files.join(', ')}`, ready);
}

/** The conformance file's documents of `kinds`, as YAML. */
function only(file: string, kinds: string[]): string {
  const text = conformanceYaml(file, ADDRESS);
  return parseAllDocuments(text)
    .filter((d) => kinds.includes(String((d.toJS() as { kind: string }).kind)))
    .map((d) => d.toString())
    .join('---\n');
}

const resolvedRefs = (s: StatusDoc, route: string): string | undefined =>
  hasRoute(s, route) ? condition(s, route, 'ResolvedRefs')?.status : undefined;

function condition(
  s: StatusDoc,
  route: string,
  type: string,
): { status: string; reason: string } | undefined {
  const parents = parentConditions(s, 'HTTPRoute', NS, route);
  assert.equal(parents.length, 1, `${route}: one parent expected, got ${JSON.stringify(parents)}`);
  assert.equal(parents[0]!.parentRef.name, 'same-namespace');
  return parents[0]!.conditions.find((c) => c.type === type);
}

/** The route is Accepted=True on same-namespace and has ResolvedRefs `status`/`reason`. */
function assertRoute(s: StatusDoc, route: string, resolved: [string, string]): void {
  const acc = condition(s, route, 'Accepted');
  assert.deepEqual([acc?.status, acc?.reason], ['True', 'Accepted'], `${route} Accepted`);
  const rr = condition(s, route, 'ResolvedRefs');
  assert.deepEqual([rr?.status, rr?.reason], resolved, `${route} ResolvedRefs`);
}

test('base Gateway same-namespace is Programmed and has no routes', async () => {
  const s = await gw.status();
  const g = s.statuses.find((o) => o.kind === 'Gateway' && o.metadata.name === 'same-namespace');
  const conds = (g?.status.conditions ?? []) as { type: string; status: string }[];
  assert.equal(conds.find((c) => c.type === 'Programmed')?.status, 'True');
  await expectConsistent(get(), { status: 404 });
});

describe('HTTPRouteWeight', () => {
  const FILE = 'httproute-weight.yaml';
  after(() => dir.remove(FILE));

  test('weights 70/30/0 → ≈0.7/0.3/0.0 of 500 requests (±0.05, weight.go), infra-backend-v3 exactly 0', async () => {
    const s = await apply({ [FILE]: conformanceYaml(HTTPROUTE_WEIGHT, ADDRESS) }, (x) =>
      hasRoute(x, 'weighted-backends'),
    );
    assertRoute(s, 'weighted-backends', ['True', 'ResolvedRefs']);
    await expectEventually(get(), { status: 200 });
    const TOTAL = 500;
    const want: Record<string, number> = {
      'infra-backend-v1': 0.7,
      'infra-backend-v2': 0.3,
      'infra-backend-v3': 0,
    };
    // The suite tries up to 10 times; a correct weighted random split fails one attempt about 2% of the time.
    let last = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const seen: Record<string, number> = {};
      const started = Date.now();
      await pool(TOTAL, 10, async (i) => {
        const res = await send(get(`/?entropy=${attempt}-${i}`));
        assert.equal(res.status, 200, res.text);
        assert.ok(res.echo, res.text);
        const b = backendOf(res.echo.pod);
        assert.ok(b in want, `unexpected backend pod ${res.echo.pod}`);
        seen[b] = (seen[b] ?? 0) + 1;
      });
      assert.ok(Date.now() - started < 20_000, 'the 500 requests took more than 20 s');
      // Weight 0 gets nothing, whatever the attempt.
      assert.equal(seen['infra-backend-v3'] ?? 0, 0, JSON.stringify(seen));
      const off = Object.entries(want).filter(([b, w]) => Math.abs((seen[b] ?? 0) / TOTAL - w) > 0.05);
      if (off.length === 0 && Object.keys(seen).length === 2) return;
      last = JSON.stringify(seen);
    }
    assert.fail(`traffic split outside tolerance in 3 attempts; last: ${last}`);
  });

  test('the split is per request: 200 requests on one keep-alive connection reach v1 and v2, never v3', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const seen: Record<string, number> = {};
    let fresh = 0;
    try {
      for (let i = 0; i < 200; i++) {
        const { pod, reused } = await new Promise<{ pod: string; reused: boolean }>((resolve, reject) => {
          const req = httpRequest(
            { host: ADDRESS['same-namespace'], port: gw.port(80), path: `/?i=${i}`, agent, timeout: 5_000 },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => {
                try {
                  assert.equal(res.statusCode, 200, body);
                  resolve({ pod: (JSON.parse(body) as { pod: string }).pod, reused: req.reusedSocket });
                } catch (e) {
                  reject(e);
                }
              });
            },
          );
          req.on('timeout', () => req.destroy(new Error('timed out')));
          req.on('error', reject);
          req.end();
        });
        if (!reused) fresh++;
        const b = backendOf(pod);
        seen[b] = (seen[b] ?? 0) + 1;
      }
    } finally {
      agent.destroy();
    }
    assert.ok(fresh <= 2, `${fresh} connections for 200 keep-alive requests`);
    assert.equal(seen['infra-backend-v3'] ?? 0, 0, JSON.stringify(seen));
    // 200 draws at p=0.7: σ ≈ 0.032; ±0.12 is beyond 3.5σ.
    const v1 = (seen['infra-backend-v1'] ?? 0) / 200;
    assert.ok(Math.abs(v1 - 0.7) <= 0.12, JSON.stringify(seen));
  });

  test('cleanup: the route is gone, GET / → 404', async () => {
    await remove([FILE], (x) => !hasRoute(x, 'weighted-backends'));
    await expectEventually(get(), { status: 404 });
  });
});

describe('HTTPRouteReferenceGrant', () => {
  const ROUTE = 'httproute-reference-grant.route.yaml';
  const GRANT = 'httproute-reference-grant.grant.yaml';
  after(() => {
    dir.remove(ROUTE);
    dir.remove(GRANT);
  });

  test('with the grant: ResolvedRefs=True, GET / → 200 from web-backend', async () => {
    const s = await apply(
      {
        [GRANT]: only('httproute-reference-grant.yaml', ['ReferenceGrant']),
        [ROUTE]: only('httproute-reference-grant.yaml', ['HTTPRoute']),
      },
      (x) => hasRoute(x, 'reference-grant') && resolvedRefs(x, 'reference-grant') === 'True',
    );
    assertRoute(s, 'reference-grant', ['True', 'ResolvedRefs']);
    await expectEventually(get(), { status: 200, backend: 'web-backend', namespace: WEB_NS });
  });

  test('grant deleted (live): GET / → 500, ResolvedRefs=False/RefNotPermitted, route still Accepted', async () => {
    const s = await remove([GRANT], (x) => resolvedRefs(x, 'reference-grant') === 'False');
    assertRoute(s, 'reference-grant', ['False', 'RefNotPermitted']);
    await expectEventually(get(), { status: 500 });
  });

  test('grant restored: 200 from web-backend again', async () => {
    const s = await apply(
      { [GRANT]: only('httproute-reference-grant.yaml', ['ReferenceGrant']) },
      (x) => resolvedRefs(x, 'reference-grant') === 'True',
    );
    assertRoute(s, 'reference-grant', ['True', 'ResolvedRefs']);
    await expectEventually(get(), { status: 200, backend: 'web-backend', namespace: WEB_NS });
  });

  test('cleanup', async () => {
    await remove([ROUTE, GRANT], (x) => !hasRoute(x, 'reference-grant'));
    await expectEventually(get(), { status: 404 });
  });
});

/** A test that applies one conformance file, checks the route's ResolvedRefs and a table of requests, removes it. */
function invalidRefTest(
  name: string,
  file: string,
  route: string,
  resolved: [string, string],
  requests: [path: string, status: number, backend?: string, namespace?: string][],
): void {
  describe(name, () => {
    after(() => dir.remove(file));
    test(`${route}: Accepted=True, ResolvedRefs=${resolved.join('/')}`, async () => {
      const s = await apply({ [file]: conformanceYaml(file, ADDRESS) }, (x) => hasRoute(x, route));
      assertRoute(s, route, resolved);
    });
    for (const [path, code, backend, namespace] of requests) {
      test(`GET ${path} → ${code}${backend ? ` ${backend}` : ''}`, async () => {
        await expectEventually(get(path), {
          status: code,
          ...(backend ? { backend } : {}),
          ...(namespace ? { namespace } : {}),
        });
      });
    }
    test('cleanup', async () => {
      await remove([file], (x) => !hasRoute(x, route));
      await expectEventually(get(), { status: 404 });
    });
  });
}

invalidRefTest(
  'HTTPRouteInvalidReferenceGrant',
  'httproute-invalid-reference-grant.yaml',
  'reference-grant',
  ['False', 'RefNotPermitted'],
  [['/', 500]],
);

invalidRefTest(
  'HTTPRouteInvalidCrossNamespaceBackendRef',
  'httproute-invalid-cross-namespace-backend-ref.yaml',
  'invalid-cross-namespace-backend-ref',
  ['False', 'RefNotPermitted'],
  [['/', 500]],
);

invalidRefTest(
  'HTTPRouteInvalidNonExistentBackendRef',
  'httproute-invalid-nonexistent-backendref.yaml',
  'invalid-nonexistent-backend-ref',
  ['False', 'BackendNotFound'],
  [['/', 500]],
);

invalidRefTest(
  'HTTPRouteInvalidBackendRefUnknownKind',
  'httproute-invalid-backendref-unknown-kind.yaml',
  'invalid-backend-ref-unknown-kind',
  ['False', 'InvalidKind'],
  [['/v2', 500]],
);

invalidRefTest(
  'HTTPRoutePartiallyInvalidViaInvalidReferenceGrant',
  'httproute-partially-invalid-via-invalid-reference-grant.yaml',
  'invalid-reference-grant',
  ['False', 'RefNotPermitted'],
  [
    ['/v2', 500],
    ['/', 200, 'app-backend-v1', APP_NS],
  ],
);

test('every reload of the run succeeded, and no request is left in flight', async () => {
  const s = await gw.status();
  assert.equal(s.reloads.failures, 0, JSON.stringify(s.lastReload));
  await waitUntil('no active connections', async () => (await gw.status()).activeConnections === 0, {
    timeoutMs: 5_000,
  });
});
