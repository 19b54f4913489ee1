import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import tls from 'node:tls';
import pino from 'pino';
import { createCA } from '../../test/support/certs.ts';
import { freePort } from '../../test/support/processes.ts';
import { type GatewayHandle, startGateway } from '../cli/run.ts';
import type { ServingState } from '../config/reconciler.ts';
import { DEFAULT_BACKEND_POLICY, DEFAULT_CLIENT_SETTINGS, type RoutingTable } from '../table/types.ts';
import { buildDashboard, DASHBOARD_CSP, type DashboardDoc } from './dashboard.ts';
import { LiveTraffic } from './recent-rejects.ts';

const CHROMIUM = '/usr/bin/chromium';
const EXAMPLE = join(import.meta.dirname, '../../examples/seed-000/traffic-split');
const ROUTE = 'TLSRoute/default/canary-tls-route';
const XSS = '<img src=x onerror=window.__xss=1>';

describe('buildDashboard (synthetic state)', () => {
  it('shows Secret names, never PEM; flags refused reloads, bad conditions and unhealthy endpoints', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----';
    const table: RoutingTable = {
      binds: [
        {
          address: null,
          port: 8443,
          protocol: 'tls',
          client: DEFAULT_CLIENT_SETTINGS,
          listeners: [
            {
              id: 'default/gw/term',
              gateway: { namespace: 'default', name: 'gw' },
              name: 'term',
              hostname: 'a.example.com',
              mode: 'terminate-tls',
              tls: { certificates: [{ secret: 'default/a-cert', certPem: pem, keyPem: pem }], alpn: [] },
              routes: [
                {
                  hostname: 'a.example.com',
                  route: { kind: 'TLSRoute', namespace: 'default', name: 'r' },
                  backends: {
                    backends: [
                      {
                        id: 'Service/default/x:443',
                        weight: 3,
                        endpoints: [{ address: '10.0.0.1', port: 1 }],
                        policy: DEFAULT_BACKEND_POLICY,
                      },
                      {
                        id: 'Service/default/y:443',
                        weight: 1,
                        endpoints: [],
                        invalid: 'BackendNotFound',
                        policy: DEFAULT_BACKEND_POLICY,
                      },
                      {
                        id: 'Service/default/z:443',
                        weight: 0,
                        endpoints: [],
                        policy: DEFAULT_BACKEND_POLICY,
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    const serving = {
      table,
      programmedAt: '2026-01-01T00:00:00.000Z',
      bindFailures: [],
      result: {
        table,
        statuses: [
          {
            apiVersion: 'gateway.networking.k8s.io/v1',
            kind: 'TLSRoute',
            metadata: { name: 'r', namespace: 'default', generation: 1 },
            status: {
              parents: [
                {
                  parentRef: { name: 'gw', namespace: 'default' },
                  conditions: [
                    { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' },
                    {
                      type: 'ResolvedRefs',
                      status: 'False',
                      reason: 'BackendNotFound',
                      message: 'y not found',
                    },
                  ],
                },
              ],
            },
          },
        ],
        allDiagnostics: [],
      },
    } as unknown as ServingState;
    const traffic = new LiveTraffic();
    const doc = buildDashboard({
      reconciler: {
        serving,
        lastReload: { at: '2026-01-01T00:01:00.000Z', ok: false, errors: [`bad ${XSS}`], trigger: 'change' },
        counts: { reloads: 2, failures: 1 },
      },
      dataPlane: {
        listening: () => [{ address: '0.0.0.0', port: 8443 }],
        activeConnections: () => 0,
        health: {
          snapshot: () => [
            {
              endpoint: '10.0.0.1:1',
              healthy: false,
              consecutiveFailures: 3,
              consecutiveSuccesses: 0,
              since: 1,
              lastError: 'ECONNREFUSED',
              activeCheck: true,
            },
          ],
        },
      },
      traffic,
      startedAt: 0,
      now: () => 90_000,
      version: '9.9.9',
    });
    const json = JSON.stringify(doc);
    assert.doesNotMatch(json, /BEGIN|PRIVATE|secret\\n/);
    const l = doc.binds[0]!.listeners[0]!;
    assert.deepEqual(l.certificates, ['default/a-cert']);
    assert.equal(doc.binds[0]!.bind, '0.0.0.0:8443', 'a default-address bind shows where it listens');
    assert.equal(doc.binds[0]!.listening, true);
    assert.deepEqual(
      l.routes[0]!.backends.map((b) => [b.id, b.sharePct, b.invalid]),
      [
        ['Service/default/x:443', 75, null],
        ['Service/default/y:443', 25, 'BackendNotFound'],
        ['Service/default/z:443', 0, null],
      ],
    );
    assert.equal(l.routes[0]!.backends[0]!.endpoints[0]!.healthy, false);
    assert.equal(doc.uptimeSec, 90);
    const problems = doc.problems.map((p) => `${p.severity} ${p.where}: ${p.what}`);
    assert.ok(problems.some((p) => p.startsWith('error reload (change): configuration change refused')));
    assert.ok(
      problems.includes('error TLSRoute default/r → default/gw: ResolvedRefs=False (BackendNotFound)'),
    );
    assert.ok(
      problems.includes('error TLSRoute default/r: backend Service/default/y:443 invalid: BackendNotFound'),
    );
    assert.ok(problems.includes('warning endpoint 10.0.0.1:1: unhealthy (backend Service/default/x:443)'));
    assert.ok(
      !problems.some((p) => p.includes('Service/default/z:443')),
      'a weight-0 fallback without endpoints is fine',
    );
  });
});

async function tlsBackend(name: string, cert: { certPem: string; keyPem: string }): Promise<tls.Server> {
  const s = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (c) => {
    c.on('error', () => {});
    c.write(`${name}\n`);
    c.on('end', () => c.end());
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** Connects with `sni`; resolves with the backend's greeting, or null when the gateway closed on us. */
async function connect(
  port: number,
  sni: string,
  keepOpen = false,
): Promise<{ greeting: string | null; socket: tls.TLSSocket }> {
  const c = tls.connect({ host: '127.0.0.1', port, servername: sni, rejectUnauthorized: false });
  c.on('error', () => {});
  const greeting = await new Promise<string | null>((resolve) => {
    c.once('data', (d: Buffer) => resolve(d.toString().trim()));
    c.once('close', () => resolve(null));
  });
  if (!keepOpen) {
    c.end();
    if (!c.closed) await once(c, 'close');
  }
  return { greeting, socket: c };
}

async function waitFor<T>(
  what: string,
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await get();
  while (!ok(v)) {
    if (Date.now() > deadline)
      assert.fail(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 50));
    v = await get();
  }
  return v;
}

describe('dashboard in a real browser (seed 000 traffic split)', () => {
  const work = mkdtempSync(join(tmpdir(), 'snigate-dashboard-'));
  const shots = join(tmpdir(), 'snigate-dashboard');
  after(() => rmSync(work, { recursive: true, force: true }));

  it('shows listeners, weights, health, traffic and rejects, escaped; refused changes in red', {
    timeout: 90_000,
  }, async (t) => {
    if (!existsSync(CHROMIUM)) {
      if (process.env.CI)
        assert.fail(
          `${CHROMIUM} is missing: add chromium to .ci/apt-packages.txt and run .ci/install-apt.sh`,
        );
      t.skip(`${CHROMIUM} not installed (apt-get install -y chromium); set CI=true to make this a failure`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const ca = createCA('snigate dashboard test');
    const cert = ca.issue({ cn: 'app.example.com', sans: ['app.example.com', 'broken.example.com'] });
    const stable = await tlsBackend('stable', cert);
    const canary = await tlsBackend('canary', cert);
    const closedPort = await freePort();

    const dir = join(work, 'traffic-split');
    cpSync(EXAMPLE, dir, { recursive: true });
    const bf = join(dir, 'backends.yaml');
    writeFileSync(
      bf,
      readFileSync(bf, 'utf8')
        .replaceAll('19446', String((stable.address() as AddressInfo).port))
        .replaceAll('19447', String((canary.address() as AddressInfo).port)),
    );
    // A route whose only endpoint refuses connections: connect-failed rejects and a red health dot.
    writeFileSync(
      join(dir, 'broken.yaml'),
      `apiVersion: v1
kind: Service
metadata: { name: app-broken, namespace: default }
spec: { ports: [{ name: tls, port: 443, targetPort: ${closedPort} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: app-broken-1, namespace: default, labels: { kubernetes.io/service-name: app-broken } }
addressType: IPv4
ports: [{ name: tls, port: ${closedPort} }]
endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: { name: broken-route, namespace: default }
spec:
  parentRefs: [{ name: tls-gateway, sectionName: tls-passthrough }]
  hostnames: ["broken.example.com"]
  rules: [{ backendRefs: [{ name: app-broken, port: 443 }] }]
`,
    );

    const gwPort = await freePort();
    let gw: GatewayHandle | null = null;
    let browser: Awaited<ReturnType<typeof chromium.launch>> | null = null;
    let held: tls.TLSSocket | null = null;
    try {
      gw = await startGateway({
        files: [dir],
        address: '127.0.0.1',
        admin: '127.0.0.1:0',
        portOffset: gwPort - 443,
        watch: false,
        logger: pino({ level: process.env.SNIGATE_TEST_LOG ?? 'silent' }),
      });
      const admin = gw.adminUrl!;
      const N = 10;
      const seen = new Set<string>();
      for (let i = 0; i < N; i++) {
        const { greeting } = await connect(gwPort, 'app.example.com');
        assert.ok(greeting === 'stable' || greeting === 'canary', `greeting ${greeting}`);
        seen.add(greeting);
      }
      held = (await connect(gwPort, 'app.example.com', true)).socket;
      for (let i = 0; i < 2; i++) assert.equal((await connect(gwPort, 'evil.example.com')).greeting, null);
      for (let i = 0; i < 3; i++) assert.equal((await connect(gwPort, 'broken.example.com')).greeting, null);

      const getDoc = async () => (await (await fetch(`${admin}/dashboard.json`)).json()) as DashboardDoc;
      const doc = await waitFor(
        'the connections to be counted and the broken endpoint ejected',
        getDoc,
        (d) =>
          d.traffic.find((r) => r.route === ROUTE)?.total === N &&
          d.rejects.length >= 5 &&
          d.binds[0]?.listeners[0]?.routes.some((r) =>
            r.backends.some((b) => b.endpoints.some((e) => e.healthy === false)),
          ) === true,
      );
      assert.equal(doc.activeConnections, 1);
      // The held connection is routed and still open: counted per route while it lasts.
      assert.equal(doc.traffic.find((r) => r.route === ROUTE)?.open, 1);
      assert.equal(doc.binds[0]!.active, 1);
      assert.equal(doc.binds[0]!.accepted, N + 1 + 2 + 3);

      const res = await fetch(`${admin}/`);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      assert.equal(res.headers.get('content-security-policy'), DASHBOARD_CSP);
      assert.equal(await res.text(), await (await fetch(`${admin}/dashboard`)).text());

      browser = await chromium.launch({
        executablePath: CHROMIUM,
        timeout: 30_000,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          // No --user-data-dir: Playwright refuses it here and gives launch() a fresh temporary profile.
        ],
      });
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('dialog', (d) => {
        problems.push(`dialog: ${d.message()}`);
        void d.dismiss();
      });
      await page.goto(`${admin}/`);
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 10_000 });

      const header = await page.locator('#hdr').innerText();
      assert.match(header, /v0\.\d+\.\d+/);
      assert.match(header, /ready/);
      assert.match(header, /last reload OK/);
      assert.match(header, /1 open connection\b/);

      const listeners = page.locator('#listeners');
      const lt = await listeners.innerText();
      assert.match(lt, /default\/tls-gateway\/tls-passthrough/);
      assert.match(lt, /TLS passthrough/);
      assert.match(lt, /default\/canary-tls-route/);
      assert.match(lt, /app\.example\.com/);
      const row = (text: string) => listeners.locator('tr', { hasText: text }).innerText();
      const stableRow = await row('app-stable');
      assert.match(stableRow, /Service\/default\/app-stable:443/);
      assert.match(stableRow, /\b90\b/);
      assert.match(stableRow, /90%/);
      assert.match(stableRow, /\bhealthy\b/);
      const canaryRow = await row('app-canary');
      assert.match(canaryRow, /10%/);
      assert.match(canaryRow, /\bhealthy\b/);
      assert.match(await row('app-broken'), /unhealthy/);
      // Green for healthy, red for ejected: colour plus the word.
      assert.equal(await listeners.locator('tr', { hasText: 'app-stable' }).locator('.dot.up').count(), 1);
      assert.equal(await listeners.locator('tr', { hasText: 'app-broken' }).locator('.dot.down').count(), 1);

      const traffic = await page.locator('#traffic tr', { hasText: ROUTE }).innerText();
      assert.match(traffic, new RegExp(`^\\S+\\s+${N}\\s+0\\s`), traffic);
      assert.match(traffic, /\s1$/, `open now column: ${traffic}`);
      assert.match(
        await page.locator('#traffic tr', { hasText: `127.0.0.1:${gwPort}` }).innerText(),
        /\b1\s+16\b/,
      );

      const evil = page.locator('#rejects tr', { hasText: 'evil.example.com' });
      assert.equal(await evil.count(), 2);
      assert.match(await evil.first().innerText(), /no-route/);
      assert.match(
        await page.locator('#rejects tr', { hasText: 'broken.example.com' }).first().innerText(),
        /connect-failed|no-endpoints/,
      );
      assert.match(await page.locator('#rejects').innerText(), /no-route × 2/);

      const pt = await page.locator('#problems').innerText();
      assert.match(pt, /deprecated-version/, 'warnings are problems');
      assert.match(pt, /unhealthy/);

      mkdirSync(shots, { recursive: true });
      const shot = join(shots, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: true });
      const png = readFileSync(shot);
      assert.ok(statSync(shot).size > 10_000, 'screenshot is not empty');
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      t.diagnostic(`screenshot: ${shot}`);

      // A refused change whose error echoes user input: shown in red, as text, and nothing runs.
      writeFileSync(
        join(dir, 'bad.yaml'),
        `apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: { name: bad-route, namespace: default }
spec:
  parentRefs: [{ name: tls-gateway }]
  hostnames: ['${XSS}.example.com']
  rules: [{ backendRefs: [{ name: app-stable, port: 443 }] }]
`,
      );
      const r = await gw.reconciler.reload('test: bad change');
      assert.equal(r.ok, false);
      await page.waitForSelector('#refused:not([hidden])', { timeout: 10_000 });
      const banner = await page.locator('#refused').innerText();
      assert.match(banner, /Configuration change REFUSED/);
      assert.ok(banner.includes(XSS), banner);
      assert.match(await page.locator('#hdr').innerText(), /last reload REFUSED/);
      assert.equal(await page.locator('img').count(), 0, 'user input never becomes markup');
      assert.equal(await page.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined);
      const color = await page.locator('#refused strong').evaluate(
        // Runs in the browser, where getComputedStyle exists (the project's types are Node's).
        (e) =>
          (globalThis as unknown as { getComputedStyle(el: unknown): { color: string } }).getComputedStyle(e)
            .color,
      );
      assert.match(color, /^rgb\((1[5-9]\d|2\d\d), \d{1,2}, \d{1,2}\)$/, `red: ${color}`);
      const shot2 = join(shots, 'dashboard-refused.png');
      await page.screenshot({ path: shot2, fullPage: true });
      t.diagnostic(`screenshot: ${shot2}`);
      await page.emulateMedia({ colorScheme: 'dark' });
      const shot3 = join(shots, 'dashboard-dark.png');
      await page.screenshot({ path: shot3, fullPage: true });
      t.diagnostic(`screenshot: ${shot3}`);

      assert.deepEqual(problems, []);
    } finally {
      held?.destroy();
      await browser?.close();
      await gw?.stop(0);
      stable.close();
      canary.close();
    }
  });
});
