/**
 * Scale figures, one size per process (run by bench/main.ts, or alone):
 *   node --expose-gc bench/scale.ts N exact|wildcard
 * Prints one JSON line: translate time, DataPlane.apply (compile + swap) time, compileBind time,
 * SNI lookup ns/op via compileBind(bind).match(sni), and the memory the table takes (JS heap +
 * ArrayBuffers). `translateMs` is the first (cold) run; translateAgainMs, swapMs and the lookups are
 * medians of REPEATS warm runs.
 */
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import type { EndpointSlice, Gateway, Resources, Service, TLSRoute } from '../src/api/types.ts';
import { emptyResources } from '../src/api/types.ts';
import { DataPlane } from '../src/dataplane/server.ts';
import { compileBind } from '../src/dataplane/sni-router.ts';
import { DEFAULT_CONTROLLER_NAME, type TranslateOptions, translate } from '../src/translate/index.ts';
import { freePort } from './lib/proc.ts';
import { median } from './lib/stats.ts';

const n = Number(process.argv[2] ?? 1000);
const kind = (process.argv[3] ?? 'exact') as 'exact' | 'wildcard';
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
/** Timed steps after the first translate run this many times; the medians are reported. */
const REPEATS = 3;

const pad = (i: number): string => String(i).padStart(7, '0');
const hostOf = (i: number): string =>
  kind === 'exact' ? `h${pad(i)}.bench.example` : `*.w${pad(i)}.bench.example`;
/** An SNI that the i-th route matches (wildcards: one label in front). */
const sniOf = (i: number): string =>
  kind === 'exact' ? `h${pad(i)}.bench.example` : `www.w${pad(i)}.bench.example`;

export function generate(count: number, port: number): Resources {
  const res = emptyResources();
  const gw: Gateway = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'bench', namespace: 'default', generation: 1 },
    spec: {
      gatewayClassName: 'snigate',
      listeners: [
        {
          name: 'tls',
          protocol: 'TLS',
          port,
          tls: { mode: 'Passthrough' },
          allowedRoutes: { kinds: [{ kind: 'TLSRoute' }] },
        },
      ],
    },
  };
  res.gateways.push(gw);
  const svc: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'origin', namespace: 'default' },
    spec: { ports: [{ name: 'tls', port: 443, targetPort: 8443 }] },
  };
  res.services.push(svc);
  const eps: EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'origin-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'origin' } },
    addressType: 'IPv4',
    ports: [{ name: 'tls', port: 8443 }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  };
  res.endpointSlices.push(eps);
  for (let i = 0; i < count; i++) {
    const r: TLSRoute = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'TLSRoute',
      metadata: {
        name: `r${pad(i)}`,
        namespace: 'default',
        generation: 1,
        creationTimestamp: '2026-01-01T00:00:00Z',
      },
      spec: {
        parentRefs: [{ name: 'bench', sectionName: 'tls' }],
        hostnames: [hostOf(i)],
        rules: [{ backendRefs: [{ name: 'origin', port: 443 }] }],
      },
    };
    res.tlsRoutes.push(r);
  }
  return res;
}

/** JS heap plus ArrayBuffer memory: the compiled lookup keeps its hash table in typed arrays, off the JS heap. */
function tableMemory(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function time<T>(f: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = f();
  return { ms: performance.now() - t0, value };
}

async function main(): Promise<void> {
  const port = await freePort();
  const opts: TranslateOptions = {
    controllerName: DEFAULT_CONTROLLER_NAME,
    serveUnknownClasses: true,
    statusAddresses: ['127.0.0.1'],
  };
  const genT = time(() => generate(n, port));
  const res = genT.value;

  gc();
  const heap0 = tableMemory();
  const t1 = time(() => translate(res, opts));
  const result = t1.value;
  const routes = result.table.binds.reduce(
    (a, b) => a + b.listeners.reduce((m, l) => m + l.routes.length, 0),
    0,
  );
  if (routes !== n) throw new Error(`expected ${n} routes in the table, got ${routes}`);
  const bind = result.table.binds[0]!;
  const c1 = time(() => compileBind(bind));
  const compiled = c1.value;
  gc();
  const heapTable = tableMemory() - heap0;

  // Swap: the DataPlane listens once, then apply() of a freshly translated table is the hot swap.
  // Translate + swap are repeated and the medians reported: on a shared machine single runs moved by ±30%.
  const dp = new DataPlane({ defaultAddresses: ['127.0.0.1'], logger: pino({ level: 'silent' }) });
  await dp.apply(result.table);
  const againMs: number[] = [];
  const swapsMs: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const t2 = time(() => translate(res, opts));
    againMs.push(t2.ms);
    const s0 = performance.now();
    await dp.apply(t2.value.table);
    swapsMs.push(performance.now() - s0);
  }
  await dp.shutdown(0);

  // Lookups: hits spread over the whole table, from pre-made strings and decoded from bytes.
  const M = 1 << 16;
  const names: string[] = [];
  const bytes: Buffer[] = [];
  for (let k = 0; k < M; k++) {
    const i = Math.floor(Math.random() * n);
    names.push(sniOf(i));
    bytes.push(Buffer.from(sniOf(i), 'latin1'));
  }
  const misses = Array.from({ length: M }, (_, k) => `miss${k}.other.example`);
  const iters = 2_000_000;
  let sink = 0;
  const bench = (f: (k: number) => unknown): number => {
    for (let k = 0; k < 200_000; k++) if (f(k & (M - 1)) !== undefined) sink++;
    const t0 = performance.now();
    for (let k = 0; k < iters; k++) if (f(k & (M - 1)) !== undefined) sink++;
    return ((performance.now() - t0) * 1e6) / iters;
  };
  let hitsOk = 0;
  for (let k = 0; k < 1000; k++) if (compiled.match(names[k]!).route) hitsOk++;
  if (hitsOk !== 1000) throw new Error(`only ${hitsOk}/1000 lookups found their route`);
  // Rounds interleaved, medians reported (same reason as above).
  const hits: number[] = [];
  const fromBytes: number[] = [];
  const missed: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    hits.push(bench((k) => compiled.match(names[k]!).route));
    fromBytes.push(bench((k) => compiled.match(bytes[k]!.toString('latin1')).route));
    missed.push(bench((k) => compiled.match(misses[k]!).reject));
  }

  process.stdout.write(
    `${JSON.stringify({
      n,
      kind,
      generateMs: genT.ms,
      translateMs: t1.ms,
      translateAgainMs: median(againMs),
      compileBindMs: c1.ms,
      swapMs: median(swapsMs),
      tableHeapMB: heapTable / 1048576,
      lookupHitNs: median(hits),
      lookupFromBytesNs: median(fromBytes),
      lookupMissNs: median(missed),
      sink: sink > 0,
    })}\n`,
  );
}

if (import.meta.main) await main();
