/** Bench phases with their own processes: idle-connection memory, the max-idle test, and CPU profiles. */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Holder } from './holder-client.ts';
import { bulk, keepAlive, newConnections } from './load.ts';
import { SNI, startHaproxy, startSnigate, writeSnigateManifests } from './peers.ts';
import {
  fdLimit,
  freePort,
  type Spawned,
  sleep,
  stopProcess,
  treeCpuMs,
  treeFds,
  treeRssKb,
} from './proc.ts';
import { profileMarkdown, summarise } from './profile.ts';

export interface IdleResult {
  open: number;
  failed: number;
  rss0: number;
  rss1: number;
  kbPerConn: number;
  fds: number;
}

/** RSS growth of the proxy's process tree while `n` handshaken TLS connections sit idle through it. */
export async function idleMemory(pid: number, port: number, n: number): Promise<IdleResult> {
  await sleep(500);
  const rss0 = treeRssKb(pid);
  const { holder, open, failed } = await Holder.open(port, SNI, n, 120_000 + n * 20);
  try {
    await sleep(2000);
    const rss1 = treeRssKb(pid);
    const fds = treeFds(pid);
    return { open, failed, rss0, rss1, kbPerConn: (rss1 - rss0) / Math.max(open, 1), fds };
  } finally {
    await holder.close();
    await sleep(1000);
  }
}

export interface MaxIdleRow extends IdleResult {
  name: string;
  seconds: number;
  cpuS: number;
  /**
   * RSS growth per connection of the second half only: the first half also pays one-off growth (heap
   * semispaces, malloc arenas, the fd table), so this is the cost of one more idle connection.
   */
  kbMarginal: number;
}

/**
 * Fresh proxies holding as many idle passthrough connections as the fd limit allows (2 fds per
 * connection in the proxy), up to `wanted`. The note says when the limit kept us below `wanted`.
 */
export async function maxIdle(
  dir: string,
  origin: number,
  wanted: number,
  names: string[],
): Promise<{ note: string; rows: MaxIdleRow[] }> {
  const limit = fdLimit();
  const n = Math.min(wanted, Math.floor((limit - 200) / 2));
  const note =
    n < wanted
      ? `NOT REACHED: the fd limit is ${limit} and cannot be raised here (\`ulimit -n\` above the hard limit fails with EPERM), and a passthrough proxy needs 2 fds per connection, so ${n} connections were held instead of ${wanted}. KB / conn at this size is the figure to extrapolate from.`
      : `${n} connections held (fd limit ${limit}).`;
  const rows: MaxIdleRow[] = [];
  for (const name of names) {
    const port = await freePort();
    let proc: Spawned;
    if (name === 'snigate') {
      const m = join(dir, `manifests-max-${port}`);
      writeSnigateManifests(m, port, origin);
      proc = await startSnigate('snigate-max', m, port, join(dir, 'snigate-max.log'));
    } else {
      // HAProxy wants 2 fds per maxconn plus a few of its own within the fd limit.
      proc = await startHaproxy(dir, port, origin, Math.min(n + 100, Math.floor((limit - 100) / 2)));
    }
    try {
      await sleep(500);
      const rss0 = treeRssKb(proc.pid);
      const cpu0 = treeCpuMs(proc.pid);
      const t0 = Date.now();
      // Two holders of half each: RSS after the first half and after both give the marginal cost.
      const half = Math.floor(n / 2);
      const a = await Holder.open(port, SNI, half, 300_000);
      try {
        await sleep(2000);
        const rssHalf = treeRssKb(proc.pid);
        const b = await Holder.open(port, SNI, n - half, 300_000);
        const seconds = (Date.now() - t0) / 1000;
        try {
          await sleep(2000);
          const rss1 = treeRssKb(proc.pid);
          const open = a.open + b.open;
          rows.push({
            name,
            open,
            failed: a.failed + b.failed,
            rss0,
            rss1,
            kbPerConn: (rss1 - rss0) / Math.max(open, 1),
            kbMarginal: (rss1 - rssHalf) / Math.max(b.open, 1),
            fds: treeFds(proc.pid),
            seconds,
            cpuS: (treeCpuMs(proc.pid) - cpu0) / 1000,
          });
        } finally {
          await b.holder.close();
        }
      } finally {
        await a.holder.close();
      }
    } finally {
      await stopProcess(proc, 10_000);
    }
  }
  return { note, rows };
}

/** One fresh snigate per workload under `node --cpu-prof`; returns a markdown summary per workload. */
export async function profileSnigate(dir: string, quick: boolean, origin: number): Promise<string[]> {
  const profDir = join(dir, 'profiles');
  mkdirSync(profDir, { recursive: true });
  const workloads: [string, (port: number) => Promise<unknown>][] = [
    ['new TLS connections', (port) => newConnections(port, quick ? 600 : 2000)],
    ['keep-alive requests', (port) => keepAlive(dir, port, quick ? 2 : 4)],
    ['bulk transfer', (port) => bulk(dir, port, quick ? 2 : 4)],
  ];
  const out: string[] = [];
  for (const [i, [name, load]] of workloads.entries()) {
    const port = await freePort();
    const m = join(dir, `manifests-prof-${i}`);
    writeSnigateManifests(m, port, origin);
    const file = `w${i}.cpuprofile`;
    const proc = await startSnigate('snigate-prof', m, port, join(dir, `snigate-prof-${i}.log`), {
      nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${file}`],
    });
    try {
      await load(port);
    } finally {
      await stopProcess(proc, 15_000);
    }
    const path = join(profDir, file);
    out.push(
      existsSync(path)
        ? profileMarkdown(name, summarise(path))
        : `#### ${name}: no profile written (snigate did not exit cleanly)`,
    );
  }
  return out;
}
