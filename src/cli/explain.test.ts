import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { explain, explainCommand } from './explain.ts';
import { runPipeline } from './pipeline.ts';

const ROOT = join(import.meta.dirname, '../..');
const SEED = join(ROOT, 'examples/seed-000');
const CONF = join(ROOT, 'src/translate/testdata/conformance');

async function run(files: string[], port: number, sni: string | null, health?: Map<string, boolean>) {
  const r = await runPipeline({ files });
  const ex = explain(
    { table: r.table, statuses: r.statuses, diagnostics: r.allDiagnostics, resources: r.resources },
    { port, sni, health },
  );
  return { ex, text: ex.lines.join('\n') };
}

describe('explain on the seed examples', () => {
  it('basic: the catch-all listener and the exact route, backend with live health', async () => {
    const { ex, text } = await run(
      [join(SEED, 'basic')],
      443,
      'Secure.Example.com.',
      new Map([['127.0.0.1:19443', false]]),
    );
    assert.equal(ex.outcome, 'passthrough');
    assert.equal(ex.sni, 'secure.example.com');
    const b = ex.binds[0]!;
    assert.equal(b.listener?.id, 'default/tls-gateway/tls-passthrough');
    assert.equal(b.listener?.match, 'catch-all');
    assert.deepEqual(b.route, {
      kind: 'TLSRoute',
      namespace: 'default',
      name: 'basic-tls-route',
      hostname: 'secure.example.com',
      match: 'exact',
    });
    assert.deepEqual(b.backends, [
      {
        id: 'Service/default/secure-service:443',
        weight: 1,
        sharePercent: 100,
        invalid: null,
        endpoints: [{ endpoint: '127.0.0.1:19443', healthy: false }],
      },
    ]);
    assert.match(text, /endpoint 127\.0\.0\.1:19443 UNHEALTHY/);
  });

  it('basic: an unknown name is rejected inside the chosen listener, listing its routes', async () => {
    const { ex, text } = await run([join(SEED, 'basic')], 443, 'foo.example.com');
    assert.equal(ex.outcome, 'rejected');
    assert.equal(ex.binds[0]!.reject, 'no-route');
    assert.match(
      text,
      /listener \(any hostname\) has no route for foo\.example\.com; routes: secure\.example\.com/,
    );
    assert.match(text, /listener isolation/);
  });

  it('a port nobody listens on', async () => {
    const { ex, text } = await run([join(SEED, 'basic')], 8443, 'a.example.com');
    assert.equal(ex.outcome, 'rejected');
    assert.match(text, /^no listener on port 8443$/m);
    assert.match(text, /ports served: 443/);
  });

  it('multi-hostname (legacy snis): the wildcard route of the converted rule', async () => {
    const { ex } = await run([join(SEED, 'multi-hostname')], 443, 'x.internal.example.com');
    assert.equal(ex.binds[0]!.route?.name, 'multi-hostname-tls-2');
    assert.equal(ex.binds[0]!.route?.match, 'wildcard');
  });

  it('traffic-split: weights become shares', async () => {
    const { ex, text } = await run([join(SEED, 'traffic-split')], 443, 'app.example.com');
    assert.deepEqual(
      ex.binds[0]!.backends.map((b) => [b.id, b.sharePercent]),
      [
        ['Service/default/app-stable:443', 90],
        ['Service/default/app-canary:443', 10],
      ],
    );
    assert.match(text, /app-stable:443 weight 90 \(90%\)/);
  });

  it('says which path carries the connection: the native fast path, or JavaScript and why', async () => {
    const basic = await run([join(SEED, 'basic')], 443, 'secure.example.com');
    assert.equal(basic.ex.binds[0]!.fastPath, true);
    assert.match(basic.text, /carried by the native fast path/);
    const split = await run([join(SEED, 'traffic-split')], 443, 'app.example.com');
    assert.equal(split.ex.binds[0]!.fastPath, false);
    assert.match(
      split.text,
      /carried by the JavaScript router \(not the native fast path\): the route has 2 backends/,
    );
  });

  it('agrees with the data plane lookup for every example and several names', async () => {
    for (const dir of ['basic', 'multi-hostname', 'fallback', 'cross-namespace']) {
      for (const sni of [
        'api.example.com',
        'db.example.com',
        'a.internal.example.com',
        'nothing.test',
        null,
      ]) {
        const { ex } = await run([join(SEED, dir)], 443, sni);
        assert.ok(['passthrough', 'rejected'].includes(ex.outcome), `${dir} ${sni}: ${ex.outcome}`);
        for (const b of ex.binds)
          assert.equal(b.reject === null, b.route !== null || b.listener?.mode !== 'passthrough');
      }
    }
  });
});

describe('explain on conformance cases', () => {
  const conf = (name: string) => [join(CONF, '_base.yaml'), join(CONF, `${name}.yaml`)];

  it('RefNotPermitted backend: the rejected share and the reason', async () => {
    const { ex, text } = await run(conf('tlsroute-invalid-reference-grant'), 443, 'abc.example.com');
    assert.equal(ex.outcome, 'rejected');
    assert.equal(ex.binds[0]!.reject, 'backend-invalid');
    assert.equal(ex.binds[0]!.listener?.match, 'wildcard');
    assert.match(
      text,
      /backend Service\/gateway-conformance-app-backend\/tls-backend:443 is invalid: RefNotPermitted — backendRef .* — rejected share 100%/,
    );
  });

  it('no listener hostname matches: names the route and its NoMatchingListenerHostname condition', async () => {
    const { ex, text } = await run(
      conf('tlsroute-invalid-no-matching-listener-hostname'),
      443,
      'www.nomatch.com',
    );
    assert.equal(ex.binds[0]!.reject, 'no-listener');
    assert.match(
      text,
      /route gateway-conformance-infra\/tlsroute-hostname-mismatch-1 is not attached to listener tls: NoMatchingListenerHostname — /,
    );
  });

  it('listener precedence: exact beats wildcards and the catch-all', async () => {
    const { ex } = await run(conf('tlsroute-hostname-intersection'), 443, 'abc.example.com');
    assert.equal(
      ex.binds[0]!.listener?.id,
      'gateway-conformance-infra/gw-tlsroute-exact-hostname-x-1/listener-exact-hostname',
    );
    assert.equal(ex.binds[0]!.listener?.match, 'exact');
    const other = await run(conf('tlsroute-hostname-intersection'), 443, 'zzz.other.com');
    assert.equal(other.ex.binds[0]!.listener?.match, 'wildcard');
    assert.equal(other.ex.binds[0]!.listener?.hostname, '*.com');
  });
});

describe('explain command', () => {
  it('-o json prints the structured explanation; exit 1 when rejected', async () => {
    let out = '';
    const code = await explainCommand(
      { files: [join(SEED, 'basic')], port: 443, sni: 'nope.example.com', output: 'json' },
      (s) => {
        out += s;
      },
    );
    assert.equal(code, 1);
    const doc = JSON.parse(out) as { outcome: string; binds: { reject: string }[]; lines: string[] };
    assert.equal(doc.outcome, 'rejected');
    assert.equal(doc.binds[0]!.reject, 'no-route');
    assert.ok(doc.lines.length > 3);
  });
});

describe('explain on HTTPS listeners (seed 001, Gateway API form)', () => {
  it('follows the HTTP request through the same router as the data plane: the rule, its backends, or 404', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { createCA } = await import('../../test/support/certs.ts');
    const ca = createCA('explain-http');
    const cert = ca.issue({ cn: 'api.oladapo.cloud' });
    const dir = mkdtempSync(join(tmpdir(), 'snigate-explain-'));
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    writeFileSync(
      join(dir, 'secret.yaml'),
      `apiVersion: v1\nkind: Secret\nmetadata: { name: api-gateway-tls-secret, namespace: default }\ntype: kubernetes.io/tls\ndata: { tls.crt: ${b64(cert.certPem)}, tls.key: ${b64(cert.keyPem)} }\n`,
    );
    try {
      const r = await runPipeline({ files: [join(ROOT, 'examples/seed-001/hybrid-gateway-api'), dir] });
      const input = {
        table: r.table,
        statuses: r.statuses,
        diagnostics: r.allDiagnostics,
        resources: r.resources,
      };
      const hit = explain(input, { port: 443, sni: 'api.oladapo.cloud', http: { path: '/v1/orders?x=1' } });
      assert.equal(hit.outcome, 'terminate-https');
      assert.ok(
        hit.lines.some((l) => l.includes('→ HTTPRoute default/public-api rule 0')),
        hit.lines.join('\n'),
      );
      assert.equal(hit.binds[0]?.backends[0]?.id, 'Service/default/api-gateway-service:80');
      const miss = explain(input, { port: 443, sni: 'api.oladapo.cloud', http: { path: '/admin' } });
      assert.equal(miss.outcome, 'rejected');
      assert.ok(
        miss.lines.some((l) => l.includes('404')),
        miss.lines.join('\n'),
      );
      const pass = explain(input, { port: 443, sni: 'payments.oladapo.cloud' });
      assert.equal(pass.outcome, 'passthrough');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
