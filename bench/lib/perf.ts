/**
 * Whole-process CPU profile with Linux perf (kernel + native + JIT), snigate vs HAProxy under the
 * same load: where the extra CPU per unit of work goes. Skipped when perf is missing or not allowed.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { keepAlive, newConnections } from './load.ts';
import { startHaproxy, startSnigate, writeSnigateManifests } from './peers.ts';
import { freePort, run, type Spawned, sleep, stopProcess, treeCpuMs } from './proc.ts';

interface Share {
  name: string;
  pct: number;
}

function parseReport(text: string): Share[] {
  const out: Share[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(.+?)\s*$/.exec(line);
    if (m) out.push({ name: m[2]!, pct: Number(m[1]) });
  }
  return out;
}

function dsoGroup(dso: string): string {
  if (dso.includes('kernel')) return 'kernel (TCP/IP, syscalls, scheduler)';
  if (dso.startsWith('perf-') || dso.includes('JIT') || dso.includes('.map')) return 'JIT code (JavaScript)';
  if (dso === 'node' || dso.endsWith('/node')) return 'node binary (V8, libuv, Node C++)';
  if (dso.startsWith('libc')) return 'libc';
  if (dso.includes('ssl') || dso.includes('crypto')) return 'OpenSSL';
  if (dso === 'haproxy') return 'haproxy binary';
  return `other (${dso})`;
}

async function record(pid: number, seconds: number, data: string): Promise<void> {
  await run(
    'perf',
    ['record', '-F', '999', '-g', '-p', String(pid), '-o', data, '--', 'sleep', String(seconds)],
    (seconds + 30) * 1000,
  );
}

async function report(data: string, sort: string, limit: string): Promise<Share[]> {
  const r = await run(
    'perf',
    [
      'report',
      '-i',
      data,
      '--stdio',
      '--no-children',
      '-g',
      'none',
      '--sort',
      sort,
      '--percent-limit',
      limit,
    ],
    120_000,
  );
  return parseReport(r.stdout);
}

export async function perfCompare(dir: string, origin: number, quick: boolean): Promise<string[]> {
  const probe = await run('perf', ['--version'], 10_000).catch(() => null);
  if (probe?.code !== 0) return ['perf is not installed: whole-process profiles skipped.'];
  const secs = quick ? 2 : 3;
  const out: string[] = [];
  const workloads: [string, (port: number) => Promise<{ units: number }>][] = [
    [
      'new TLS connections',
      async (port) => ({ units: (await newConnections(port, quick ? 1200 : 2500)).ok }),
    ],
    ['keep-alive requests', async (port) => ({ units: (await keepAlive(dir, port, secs + 1)).requests })],
  ];
  for (const [wname, load] of workloads) {
    out.push(`#### perf, ${wname}: share of each proxy's own samples`);
    out.push('');
    for (const who of ['snigate', 'haproxy']) {
      const port = await freePort();
      let proc: Spawned;
      if (who === 'snigate') {
        const m = join(dir, `manifests-perf-${port}`);
        writeSnigateManifests(m, port, origin);
        proc = await startSnigate('snigate-perf', m, port, join(dir, 'snigate-perf.log'), {
          nodeFlags: ['--perf-basic-prof'],
        });
      } else {
        proc = await startHaproxy(dir, port, origin, 9000);
      }
      const data = join(dir, `perf-${who}-${port}.data`);
      try {
        await load(port); // warm-up, not recorded
        const c0 = treeCpuMs(proc.pid);
        const loading = load(port);
        await sleep(300);
        await record(proc.pid, secs, data);
        const { units } = await loading;
        const cpuMs = treeCpuMs(proc.pid) - c0;
        const groups = new Map<string, number>();
        for (const s of await report(data, 'dso', '0'))
          groups.set(dsoGroup(s.name), (groups.get(dsoGroup(s.name)) ?? 0) + s.pct);
        const syms = await report(data, 'sym', '0.3');
        const perUnit = (cpuMs * 1000) / Math.max(units, 1);
        const us = (pct: number): string => `${((perUnit * pct) / 100).toFixed(1)} µs`;
        out.push(
          `- **${who}**: ${perUnit.toFixed(1)} µs CPU per unit during the recorded load = ` +
            [...groups]
              .sort((a, b) => b[1] - a[1])
              .filter(([, p]) => p >= 0.5)
              .map(([g, p]) => `${g} ${us(p)} (${p.toFixed(0)}%)`)
              .join(', '),
        );
        const top = (kernel: boolean): string =>
          syms
            .filter((x) => x.name.startsWith('[k]') === kernel)
            .slice(0, 8)
            .map((x) => `\`${x.name.replace(/^\[[.k]\]\s*/, '').slice(0, 70)}\` ${x.pct.toFixed(1)}%`)
            .join(', ');
        out.push(`  - top user-space symbols: ${top(false)}`);
        out.push(`  - top kernel symbols: ${top(true)}`);
      } finally {
        await stopProcess(proc, 10_000);
        rmSync(data, { force: true });
        rmSync(`/tmp/perf-${proc.pid}.map`, { force: true });
      }
    }
    out.push('');
  }
  return out;
}
