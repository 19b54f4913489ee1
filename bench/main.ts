/**
 * snigate side by side with HAProxy, nginx stream and sniproxy in SNI passthrough, plus a direct
 * connection as the limit. Run with `npm run bench` (bench/run.sh installs the tools first).
 *   --quick       ~2 minutes, for development
 *   --runs N      throughput runs (default 5, quick 2)
 *   --no-profile  skip the CPU profiles of snigate
 *   --keep        keep the work directory in /tmp (configs, logs of every process)
 *   --only LIST   run only these phases (comma-separated): idle, passthrough, terminate, maxidle, reload,
 *                 profile, scale; for focused work on one figure (the report says which phases ran)
 * Prints markdown and writes it with the raw JSON to bench/results/.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bulk, keepAlive, newConnections } from './lib/load.ts';
import * as peers from './lib/peers.ts';
import { perfCompare } from './lib/perf.ts';
import { idleMemory, maxIdle, profileSnigate } from './lib/phases.ts';
import { fdLimit, freePort, killAllStarted, run, type Spawned, treeCpuMs } from './lib/proc.ts';
import { reloadUnderLoad } from './lib/reload.ts';
import { type MetricDef, ratioTable, type Samples } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});
const PHASES = ['idle', 'passthrough', 'terminate', 'maxidle', 'reload', 'profile', 'scale'] as const;
const only = values.only === undefined ? null : new Set(values.only.split(',').map((x) => x.trim()));
for (const p of only ?? []) {
  if (!(PHASES as readonly string[]).includes(p)) {
    process.stderr.write(`bench: unknown phase "${p}" in --only (phases: ${PHASES.join(', ')})\n`);
    process.exit(2);
  }
}
const phase = (p: (typeof PHASES)[number]): boolean => only === null || only.has(p);
const quick = values.quick === true;
const cfg = {
  runs: Number(values.runs ?? (quick ? 2 : 5)),
  newConnPerProc: quick ? 800 : 2500,
  warmConnPerProc: quick ? 1000 : 3000,
  keepAliveS: quick ? 2 : 4,
  bulkS: quick ? 2 : 4,
  idleN: quick ? 500 : 2000,
  maxIdleWanted: quick ? 4000 : 20_000,
  reloadS: quick ? 6 : 20,
  scale: quick ? [100, 10_000] : [100, 10_000, 100_000],
  profile: !values['no-profile'] && phase('profile'),
};

const out: string[] = [];
const say = (s = ''): void => {
  out.push(s);
  process.stdout.write(`${s}\n`);
};
const log = (s: string): void =>
  void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

process.on('SIGINT', () => {
  killAllStarted();
  process.exit(130);
});

async function main(): Promise<void> {
  const started = new Date();
  const dir = mkdtempSync('/tmp/snigate-bench-');
  log(`work dir ${dir}, ${quick ? 'quick' : 'full'} mode, ${cfg.runs} runs`);
  const versions = await toolVersions();
  const certs = await peers.makeCerts(dir);
  const originPort = await freePort();
  const originHttpPort = await freePort();
  const origin = await peers.startOrigin(dir, originPort, certs, originHttpPort);

  const ports = {
    haproxy: await freePort(),
    nginx: await freePort(),
    sniproxy: await freePort(),
    snigate: await freePort(),
    info: await freePort(),
  };
  const closed = await freePort();
  const procs: Record<string, Spawned> = {
    haproxy: await peers.startHaproxy(dir, ports.haproxy, originPort, 9000),
    'nginx-stream': await peers.startNginxStream(dir, ports.nginx, originPort, closed),
    sniproxy: await peers.startSniproxy(dir, ports.sniproxy, originPort),
  };
  peers.writeSnigateManifests(join(dir, 'manifests'), ports.snigate, originPort);
  procs.snigate = await peers.startSnigate(
    'snigate',
    join(dir, 'manifests'),
    ports.snigate,
    join(dir, 'snigate.log'),
  );
  peers.writeSnigateManifests(join(dir, 'manifests-info'), ports.info, originPort);
  procs['snigate (info log)'] = await peers.startSnigate(
    'snigate-info',
    join(dir, 'manifests-info'),
    ports.info,
    join(dir, 'snigate-info.log'),
    {
      logLevel: 'info',
    },
  );
  const portOf: Record<string, number> = {
    direct: originPort,
    snigate: ports.snigate,
    haproxy: ports.haproxy,
    'nginx-stream': ports.nginx,
    sniproxy: ports.sniproxy,
    'snigate (info log)': ports.info,
  };
  const targets = ['direct', 'snigate', 'haproxy', 'nginx-stream', 'sniproxy'];
  const proxies = targets.filter((t) => t !== 'direct');

  // TLS termination: each proxy terminates for SNI and proxies HTTP/1.1 to the origin's plain-HTTP port.
  // Target names are the metric's own ('haproxy' so the × HAProxy column works within the phase).
  const termPort: Record<string, number> = {
    snigate: await freePort(),
    'snigate + WAF': await freePort(),
    haproxy: await freePort(),
    nginx: await freePort(),
  };
  const termProcs: Record<string, Spawned> = {
    haproxy: await peers.startHaproxyTerm(dir, termPort.haproxy!, originHttpPort, certs),
    nginx: await peers.startNginxTerm(dir, termPort.nginx!, originHttpPort, certs),
  };
  for (const [name, waf] of [
    ['snigate', false],
    ['snigate + WAF', true],
  ] as const) {
    const m = join(dir, waf ? 'manifests-term-waf' : 'manifests-term');
    peers.writeSnigateTermManifests(m, termPort[name]!, originHttpPort, certs, waf);
    termProcs[name] = await peers.startSnigate(
      waf ? 'snigate-term-waf' : 'snigate-term',
      m,
      termPort[name]!,
      join(dir, waf ? 'snigate-term-waf.log' : 'snigate-term.log'),
    );
  }
  const termTargets = Object.keys(termPort);

  // 1. Memory per idle connection, on fresh processes (before any load grows their heaps).
  const idle: Record<string, Awaited<ReturnType<typeof idleMemory>>> = {};
  for (const t of phase('idle') ? proxies : []) {
    log(`idle memory: ${t}, ${cfg.idleN} connections`);
    idle[t] = await idleMemory(procs[t]!.pid, portOf[t]!, cfg.idleN);
  }

  // 2. Warm-up (JIT, caches), not measured.
  log('warm-up');
  // Thousands of connections each: V8 takes that many to settle snigate's per-connection path (a fresh process
  // spent 2x the user CPU per connection over its first 3000 in a lab); the same count for every target.
  for (const t of phase('passthrough') ? [...targets, 'snigate (info log)'] : []) {
    await newConnections(portOf[t]!, cfg.warmConnPerProc);
    await keepAlive(dir, portOf[t]!, 1);
  }
  // Longer for the terminating targets: snigate's HTTP path is still being optimized by V8 after 1 s, and a
  // cold first run measured 1.5-2.5x the second.
  for (const t of phase('terminate') ? termTargets : []) {
    await newConnections(termPort[t]!, 100);
    await keepAlive(dir, termPort[t]!, 3);
  }

  // 3. Throughput runs: targets interleaved, order rotated every run; proxy CPU from /proc per phase.
  const samples: Samples = {};
  const add = (metric: string, target: string, run: number, v: number): void => {
    samples[metric] ??= {};
    samples[metric][target] ??= Array(cfg.runs).fill(Number.NaN);
    samples[metric][target][run] = v;
  };
  const failures: string[] = [];
  for (let r = 0; r < cfg.runs; r++) {
    const order = [...targets.slice(r % targets.length), ...targets.slice(0, r % targets.length)];
    log(`run ${r + 1}/${cfg.runs}: ${order.join(', ')}`);
    // The info-level snigate right after the warn-level one, so that the pair is measured under the same
    // conditions (it used to come last, after every other target).
    const withInfo = order.flatMap((t) => (t === 'snigate' ? [t, 'snigate (info log)'] : [t]));
    for (const t of phase('passthrough') ? withInfo : []) {
      const pid = procs[t]?.pid;
      const c0 = pid ? treeCpuMs(pid) : 0;
      const nc = await newConnections(portOf[t]!, cfg.newConnPerProc);
      const c1 = pid ? treeCpuMs(pid) : 0;
      add('newconn', t, r, nc.perSec);
      if (pid) add('cpuConn', t, r, ((c1 - c0) * 1000) / nc.ok);
      if (nc.failed > 0) failures.push(`run ${r + 1} ${t} new connections: ${nc.failed} failed`);
    }
    for (const t of phase('passthrough') ? order : []) {
      const pid = procs[t]?.pid;
      const c0 = pid ? treeCpuMs(pid) : 0;
      const ka = await keepAlive(dir, portOf[t]!, cfg.keepAliveS);
      const c1 = pid ? treeCpuMs(pid) : 0;
      add('ka', t, r, ka.requests / ka.seconds);
      add('p50', t, r, ka.p50ms);
      add('p99', t, r, ka.p99ms);
      if (pid) add('cpuReq', t, r, ((c1 - c0) * 1000) / ka.requests);
      if (ka.errors > 0) failures.push(`run ${r + 1} ${t} keep-alive: ${ka.errors} errors`);
    }
    for (const t of phase('passthrough') ? order : []) {
      const pid = procs[t]?.pid;
      const c0 = pid ? treeCpuMs(pid) : 0;
      const b = await bulk(dir, portOf[t]!, cfg.bulkS);
      const c1 = pid ? treeCpuMs(pid) : 0;
      add('bulk', t, r, b.bytes / 1e6 / b.seconds);
      if (pid) add('cpuGB', t, r, (c1 - c0) / (b.bytes / 1e9));
      if (b.errors > 0) failures.push(`run ${r + 1} ${t} bulk: ${b.errors} errors`);
    }
    const termOrder = [
      ...termTargets.slice(r % termTargets.length),
      ...termTargets.slice(0, r % termTargets.length),
    ];
    if (!phase('terminate')) continue;
    // New connections through the terminating paths: a full TLS handshake by the proxy itself each time.
    for (const t of termOrder) {
      const pid = termProcs[t]!.pid;
      const c0 = treeCpuMs(pid);
      const nc = await newConnections(termPort[t]!, Math.round(cfg.newConnPerProc / 2));
      const c1 = treeCpuMs(pid);
      add('termNewconn', t, r, nc.perSec);
      add('termCpuConn', t, r, ((c1 - c0) * 1000) / Math.max(nc.ok, 1));
      if (nc.failed > 0) failures.push(`run ${r + 1} ${t} terminating new connections: ${nc.failed} failed`);
    }
    for (const t of termOrder) {
      const pid = termProcs[t]!.pid;
      const c0 = treeCpuMs(pid);
      const ka = await keepAlive(dir, termPort[t]!, cfg.keepAliveS);
      const c1 = treeCpuMs(pid);
      add('termKa', t, r, ka.requests / ka.seconds);
      add('termP99', t, r, ka.p99ms);
      add('termCpuReq', t, r, ((c1 - c0) * 1000) / ka.requests);
      if (ka.errors > 0) failures.push(`run ${r + 1} ${t} terminating keep-alive: ${ka.errors} errors`);
    }
    add(
      'wafCpu',
      'snigate + WAF',
      r,
      samples.termCpuReq!['snigate + WAF']![r]! - samples.termCpuReq!.snigate![r]!,
    );
  }
  for (const t of phase('idle') ? proxies : []) add('idleKB', t, 0, idle[t]!.kbPerConn);

  const metrics: MetricDef[] = [
    { key: 'newconn', label: 'new TLS connections/s', higherBetter: true },
    { key: 'ka', label: 'keep-alive HTTPS req/s', higherBetter: true },
    { key: 'p50', label: 'keep-alive p50 ms', higherBetter: false },
    { key: 'p99', label: 'keep-alive p99 ms', higherBetter: false },
    { key: 'bulk', label: 'bulk MB/s', higherBetter: true },
    { key: 'cpuConn', label: 'proxy CPU µs / new connection', higherBetter: false },
    { key: 'cpuReq', label: 'proxy CPU µs / keep-alive request', higherBetter: false },
    { key: 'cpuGB', label: 'proxy CPU ms / GB', higherBetter: false },
    { key: 'termNewconn', label: 'TLS termination: new TLS connections/s', higherBetter: true },
    {
      key: 'termCpuConn',
      label: 'TLS termination: proxy CPU µs / new connection (handshake + 1 request)',
      higherBetter: false,
    },
    { key: 'termKa', label: 'TLS termination: keep-alive HTTPS req/s', higherBetter: true },
    { key: 'termP99', label: 'TLS termination: keep-alive p99 ms', higherBetter: false },
    {
      key: 'termCpuReq',
      label: 'TLS termination: proxy CPU µs / keep-alive request',
      higherBetter: false,
    },
    {
      key: 'wafCpu',
      label: 'WAF cost: extra snigate CPU µs / request (+ WAF − without)',
      higherBetter: false,
    },
    {
      key: 'idleKB',
      label: `proxy RSS KB / idle connection (${cfg.idleN} held, one measurement)`,
      higherBetter: false,
    },
  ];

  say(`## snigate bench — ${started.toISOString()} (${quick ? 'quick' : 'full'} mode)`);
  say();
  if (only !== null) {
    say(`Only these phases ran (--only): ${[...only].join(', ')}.`);
    say();
  }
  say(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, fd limit ${fdLimit()}. ${versions}`,
  );
  say(
    `Runs: ${cfg.runs}; new connections ${2 * cfg.newConnPerProc}/target/run (2 × h2load -t1 -c8), keep-alive ${cfg.keepAliveS} s (wrk -t2 -c64), bulk ${cfg.bulkS} s (wrk -t1 -c4, 4 MiB responses). snigate at --log-level warn unless named "(info log)". Every proxy: 1 process / 1 thread / 1 worker.`,
  );
  say();
  say(
    `TLS termination rows: each proxy terminates TLS for ${peers.SNI} (ECDSA P-256) and proxies HTTP/1.1 to the origin's plain-HTTP port with upstream keep-alive: snigate (HTTPS listener + HTTPRoute), "snigate + WAF" (the same plus a SecurityPolicy: WAF, CRS paranoia 1, Block), HAProxy \`mode http\` (\`bind ssl crt\`), nginx \`http\` (\`listen ssl\`, \`proxy_pass\`, \`keepalive 64\`); load as keep-alive above (wrk -t2 -c64, ${cfg.keepAliveS} s, GET /small); new connections as above with half the count, each a full handshake with the proxy.`,
  );
  say();
  say(ratioTable(metrics, [...targets, 'snigate (info log)', 'snigate + WAF', 'nginx'], samples));
  say();
  say(
    failures.length === 0
      ? 'No failed connections or request errors in the throughput runs.'
      : `Failures: ${failures.join('; ')}`,
  );
  say();
  if (phase('idle')) {
    say('### Idle connections (fresh processes)');
    say();
    say('| target | held | RSS before KB | RSS after KB | KB / conn | fds after |');
    say('|---|---|---|---|---|---|');
    for (const t of proxies) {
      const i = idle[t]!;
      say(
        `| ${t} | ${i.open} (${i.failed} failed) | ${i.rss0} | ${i.rss1} | ${i.kbPerConn.toFixed(1)} | ${i.fds} |`,
      );
    }
    say();
  }

  // 4. As many idle passthrough connections as the fd limit allows, up to the wanted 20k.
  let maxRows: Awaited<ReturnType<typeof maxIdle>> | null = null;
  if (phase('maxidle')) {
    log('max idle connections');
    maxRows = await maxIdle(dir, originPort, cfg.maxIdleWanted, ['snigate', 'haproxy']);
    say(`### ${cfg.maxIdleWanted} concurrent idle passthrough connections`);
    say();
    say(maxRows.note);
    say();
    say(
      '| proxy | held | open time s | RSS before MB | RSS after MB | KB / conn | KB / conn, second half (marginal) | proxy fds | proxy CPU s to open |',
    );
    say('|---|---|---|---|---|---|---|---|---|');
    for (const m of maxRows.rows) {
      say(
        `| ${m.name} | ${m.open} (${m.failed} failed) | ${m.seconds.toFixed(1)} | ${(m.rss0 / 1024).toFixed(1)} | ${(m.rss1 / 1024).toFixed(1)} | ${m.kbPerConn.toFixed(1)} | ${m.kbMarginal.toFixed(1)} | ${m.fds} | ${m.cpuS.toFixed(2)} |`,
      );
    }
    say();
  }

  // 5. Reload every second under load.
  const rl = !phase('reload')
    ? null
    : await (async () => {
        log(`reload every second for ${cfg.reloadS} s under load`);
        const rl = await reloadUnderLoad(dir, await freePort(), originPort, cfg.reloadS).catch((e: Error) => {
          say(`FAILED: ${e.message}`);
          return null;
        });
        say(`### Config reload every second for ${cfg.reloadS} s under load (snigate)`);
        say();
        say(
          '| reloads | new hostname routed | old hostname refused | new conns ok / failed | keep-alive req / errors | held idle conns alive / cut |',
        );
        say('|---|---|---|---|---|---|');
        if (rl)
          say(
            `| ${rl.reloads} | ${rl.newHostRouted}/${rl.reloads} | ${rl.oldHostRefused}/${rl.reloads} | ${rl.newConnOk} / ${rl.newConnFailed} | ${rl.keepAliveRequests} / ${rl.keepAliveErrors} | ${rl.heldAlive}/${rl.held} / ${rl.heldCut} |`,
          );
        say();
        return rl;
      })();

  // 6. Where snigate's CPU goes (a fresh process per workload, V8 sampling profiler).
  if (cfg.profile) {
    log('profiling snigate');
    say('### Where snigate spends CPU (node --cpu-prof, one fresh process per workload)');
    say();
    say(
      'The V8 profile covers the whole process life, start-up included; `writeBuffer` is the native socket write (the write(2) syscall, which on loopback also runs the receiving side of TCP).',
    );
    say();
    for (const p of await profileSnigate(dir, quick, originPort).catch((e: Error) => [
      `FAILED: ${e.message}`,
    ])) {
      say(p);
      say();
    }
    log('perf: snigate vs haproxy');
    say('### Whole-process profile (Linux perf), snigate vs HAProxy, fresh processes, same load');
    say();
    for (const line of await perfCompare(dir, originPort, quick).catch((e: Error) => [
      `FAILED: ${e.message}`,
    ]))
      say(line);
    say();
  }

  await peers.stopAll([...Object.values(procs), ...Object.values(termProcs), origin]);

  // 7. Routing-table scale, one child process per size (bounded by a timeout).
  say('### Routing table scale (in-process, src/translate + src/dataplane)');
  say();
  say(
    '| hostnames | kind | translate ms | apply (compile + swap) ms | translate + swap ms | compileBind ms | table heap MB | lookup ns (hit) | lookup ns (decode from bytes + hit) | lookup ns (miss) |',
  );
  say('|---|---|---|---|---|---|---|---|---|---|');
  const scale: unknown[] = [];
  for (const n of phase('scale') ? cfg.scale : []) {
    for (const kind of ['exact', 'wildcard']) {
      log(`scale ${n} ${kind}`);
      const r = await run(peers.NODE, ['--expose-gc', 'bench/scale.ts', String(n), kind], 180_000);
      const line = r.stdout.trim().split('\n').pop() ?? '';
      if (r.code !== 0 || !line.startsWith('{')) {
        say(
          `| ${n} | ${kind} | failed${r.timedOut ? ' (timed out after 180 s)' : ''}: ${r.stderr.split('\n')[0] ?? ''} |||||||||`,
        );
        continue;
      }
      const s = JSON.parse(line);
      scale.push(s);
      say(
        `| ${n} | ${kind} | ${s.translateAgainMs.toFixed(1)} | ${s.swapMs.toFixed(1)} | ${(s.translateAgainMs + s.swapMs).toFixed(1)} | ${s.compileBindMs.toFixed(1)} | ${s.tableHeapMB.toFixed(1)} | ${s.lookupHitNs.toFixed(0)} | ${s.lookupFromBytesNs.toFixed(0)} | ${s.lookupMissNs.toFixed(0)} |`,
      );
    }
  }
  say();

  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(import.meta.dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${stamp}${quick ? '-quick' : ''}.md`), `${out.join('\n')}\n`);
  writeFileSync(
    join(resultsDir, `${stamp}${quick ? '-quick' : ''}.json`),
    JSON.stringify({ cfg, samples, idle, maxRows, reload: rl, scale }, null, 2),
  );
  if (values.keep) log(`work dir kept: ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
  log(
    `done in ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s; results in bench/results/${stamp}*`,
  );
}

async function toolVersions(): Promise<string> {
  const first = async (cmd: string, args: string[]): Promise<string> => {
    const r = await run(cmd, args, 10_000).catch(() => null);
    return r
      ? (`${r.stdout}${r.stderr}`
          .split('\n')
          .find((l) => l.trim() !== '')
          ?.trim() ?? '?')
      : 'missing';
  };
  const [h, n, s, w, l, o] = await Promise.all([
    first('haproxy', ['-v']),
    first('nginx', ['-v']),
    first('sniproxy', ['-V']),
    first('wrk', ['-v']),
    first('h2load', ['--version']),
    first('openssl', ['version']),
  ]);
  return `Node ${process.version}; ${h}; ${n}; ${s}; ${w}; ${l}; ${o}.`;
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    killAllStarted();
    process.exit(1);
  },
);
