/** Load generators: h2load for new TLS connections, wrk for keep-alive requests and bulk transfer. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BULK_PATH, SMALL_PATH, SNI } from './peers.ts';
import { run } from './proc.ts';

export interface NewConnResult {
  /** Completed requests, each on its own connection with a full TLS handshake. */
  ok: number;
  failed: number;
  seconds: number;
  perSec: number;
}

/**
 * New TLS connections: two single-thread h2load processes (OpenSSL 3.0 clients scale badly across
 * threads), HTTP/1.1 with `Connection: close`, so every request is a new connection and handshake.
 * Bounded by count (`-n`) and by a kill timer; h2load's timed mode (`-D`) can hang at the end with
 * `Connection: close`, so it is not used.
 */
export async function newConnections(
  port: number,
  perProc: number,
  timeoutS = 60,
  clientsPerProc = 8,
  procs = 2,
): Promise<NewConnResult> {
  const args = [
    '--h1',
    '-H',
    'Connection: close',
    '-t',
    '1',
    '-c',
    String(clientsPerProc),
    '-n',
    String(perProc),
    `--connect-to=127.0.0.1:${port}`,
    `https://${SNI}${SMALL_PATH}`,
  ];
  const results = await Promise.all(
    Array.from({ length: procs }, () => run('h2load', args, timeoutS * 1000)),
  );
  let ok = 0;
  let failed = 0;
  let seconds = 0;
  for (const r of results) {
    const m =
      /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
        r.stdout,
      );
    const t = /finished in ([\d.]+)(ms|s),/.exec(r.stdout);
    if (!m || !t || r.timedOut) {
      failed += perProc;
      seconds = Math.max(seconds, timeoutS);
      continue;
    }
    ok += Number(m[4]);
    failed += Number(m[5]) + Number(m[6]) + Number(m[7]);
    seconds = Math.max(seconds, Number(t[1]) / (t[2] === 'ms' ? 1000 : 1));
  }
  return { ok, failed, seconds, perSec: seconds > 0 ? ok / seconds : 0 };
}

export interface WrkResult {
  requests: number;
  bytes: number;
  seconds: number;
  errors: number;
  p50ms: number;
  p99ms: number;
}

/** Lua that makes wrk connect to 127.0.0.1:port while sending the URL host as SNI and Host, and print JSON. */
function wrkScript(dir: string, port: number): string {
  const file = join(dir, `wrk-${port}.lua`);
  writeFileSync(
    file,
    `wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", "${port}")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"bytes":%d,"us":%d,"errors":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`,
  );
  return file;
}

export async function wrk(
  dir: string,
  port: number,
  path: string,
  seconds: number,
  threads: number,
  conns: number,
): Promise<WrkResult> {
  const script = wrkScript(dir, port);
  const r = await run(
    'wrk',
    [
      '-t',
      String(threads),
      '-c',
      String(conns),
      '-d',
      `${seconds}s`,
      '--timeout',
      '5s',
      '-s',
      script,
      `https://${SNI}${path}`,
    ],
    (seconds + 20) * 1000,
  );
  const m = /WRKJSON (\{.*\})/.exec(r.stdout);
  if (!m || r.timedOut) throw new Error(`wrk failed (port ${port}): ${r.stdout}${r.stderr}`);
  const j = JSON.parse(m[1]!) as {
    requests: number;
    bytes: number;
    us: number;
    errors: number;
    p50: number;
    p99: number;
  };
  return {
    requests: j.requests,
    bytes: j.bytes,
    seconds: j.us / 1e6,
    errors: j.errors,
    p50ms: j.p50 / 1000,
    p99ms: j.p99 / 1000,
  };
}

/** Keep-alive HTTPS: small responses on long-lived connections. */
export function keepAlive(dir: string, port: number, seconds: number): Promise<WrkResult> {
  return wrk(dir, port, SMALL_PATH, seconds, 2, 64);
}

/** Bulk: a 4 MiB file on a few keep-alive connections. */
export function bulk(dir: string, port: number, seconds: number): Promise<WrkResult> {
  return wrk(dir, port, BULK_PATH, seconds, 1, 4);
}
