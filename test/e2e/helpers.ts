// End-to-end helpers: copy an example with real backend ports, run the real `snigate run` CLI, read its logs.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import type { ConnectionRecord } from '../../src/dataplane/conn-log.ts';
import {
  type ClientResult,
  commandExists,
  runClient,
  SETUP_HINT,
  startDaemon,
  stopChild,
} from '../support/processes.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const NODE = join(REPO, 'node_modules/.bin/node');
export const MAIN = join(REPO, 'src/main.ts');
export const SEED_000 = join(REPO, 'examples/seed-000');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** In CI a missing binary is a setup bug and must fail; on a dev box it is a clear skip. */
export function needs(t: TestContext, cmd: string): boolean {
  if (commandExists(cmd)) return true;
  const msg = `${cmd} is not installed: ${SETUP_HINT}`;
  if (process.env.CI) assert.fail(msg);
  t.skip(msg);
  return false;
}

export interface Materialized {
  dir: string;
  path(file: string): string;
  read(file: string): string;
  write(file: string, text: string): void;
  remove(file: string): void;
  cleanup(): void;
}

/** A fresh temp dir holding `files` (name → YAML text). */
export function manifestDir(files: Record<string, string>): Materialized {
  const dir = mkdtempSync(join(tmpdir(), 'snigate-e2e-'));
  const m: Materialized = {
    dir,
    path: (f) => join(dir, f),
    read: (f) => readFileSync(join(dir, f), 'utf8'),
    write: (f, text) => writeFileSync(join(dir, f), text),
    remove: (f) => rmSync(join(dir, f), { force: true }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  for (const [f, text] of Object.entries(files)) m.write(f, text);
  return m;
}

/**
 * Copies `examples/seed-000/<name>` to a temp dir and rewrites the demo endpoint ports (`19xxx`) of
 * backends.yaml — both the Service targetPort and the EndpointSlice port — to the ports of the backends the
 * test started. Every 19xxx port of the file must be mapped, and every mapping used.
 */
export function materializeExample(name: string, portMap: Record<number, number>): Materialized {
  const m = manifestDir({});
  cpSync(join(SEED_000, name), m.dir, { recursive: true });
  const text = m.read('backends.yaml');
  const used = new Set<number>();
  const rewritten = text.replace(
    /^(\s*-?\s*(?:port|targetPort):\s*)(19\d{3})\s*$/gm,
    (_all, head: string, p: string) => {
      const to = portMap[Number(p)];
      if (to === undefined) throw new Error(`${name}/backends.yaml: port ${p} has no mapping`);
      used.add(Number(p));
      return `${head}${to}`;
    },
  );
  for (const k of Object.keys(portMap)) {
    if (!used.has(Number(k))) throw new Error(`${name}/backends.yaml: no port ${k} to rewrite`);
  }
  m.write('backends.yaml', rewritten);
  return m;
}

/** One JSON log line of snigate. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** The `connection` log record: the product's own type, so the tests follow its fields. */
export type ConnLog = ConnectionRecord;

export interface Snigate {
  child: ChildProcess;
  pid: number;
  offset: number;
  adminUrl: string;
  /** The real port of a manifest listener port (port + offset). */
  port(listenerPort: number): number;
  output(): string;
  logs(): LogLine[];
  connections(): ConnLog[];
  /** Resolves with the first connection record matching `pred`; rejects after timeoutMs with the log tail. */
  waitForConnection(pred: (c: ConnLog) => boolean, timeoutMs?: number): Promise<ConnLog>;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** GET <admin>/status as JSON. */
  status(): Promise<StatusDoc>;
  /** SIGTERM, then SIGKILL after graceMs; removes nothing on disk. */
  stop(graceMs?: number): Promise<void>;
}

export interface StatusDoc {
  activeConnections: number;
  listening: { address: string; port: number }[];
  endpoints: { endpoint: string; healthy: boolean }[];
  statuses: {
    kind: string;
    metadata: { name: string; namespace?: string };
    status: Record<string, unknown>;
  }[];
  lastReload: { ok: boolean; errors: string[]; trigger: string } | null;
  reloads: { reloads: number; failures: number };
}

export interface RunOptions {
  /** Directories or files passed as `-f`. */
  files: string[];
  /** The manifest listener ports, to pick an offset under which they are all free. */
  listenerPorts: number[];
  /** Addresses the Gateways bind (default 127.0.0.1). */
  hosts?: string[];
  /** Seconds (the CLI's unit). Default 5 so a drain bug cannot hang a test for 30 s. */
  drainTimeoutS?: number;
  extraArgs?: string[];
}

async function portFree(host: string, port: number): Promise<boolean> {
  const srv: Server = createServer();
  return new Promise((resolve) => {
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** An offset in [15000, 22000): 443..8443 land below the ephemeral range (32768+), where nothing else binds. */
async function pickOffset(ports: number[], hosts: string[]): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const offset = 15_000 + Math.floor(Math.random() * 7_000);
    let ok = true;
    for (const h of hosts) for (const p of ports) if (ok && !(await portFree(h, p + offset))) ok = false;
    if (ok) return offset;
  }
  throw new Error('no free port offset found');
}

export function parseLogs(out: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const l of out.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l) as LogLine);
    } catch {
      // a partial last line
    }
  }
  return lines;
}

/** Polls `probe` until it returns something other than undefined/false; bounded in time and count. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last error: ${String(last)}` : ''}`,
  );
}

/** Starts `snigate run` as a child process and resolves once it logs "snigate started". */
export async function runSnigate(opts: RunOptions): Promise<Snigate> {
  const hosts = opts.hosts ?? ['127.0.0.1'];
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const offset = await pickOffset(opts.listenerPorts, hosts);
    const args = [MAIN, 'run', ...opts.files.flatMap((f) => ['-f', f])].concat([
      '--address',
      '127.0.0.1',
      '--port-offset',
      String(offset),
      '--admin',
      '127.0.0.1:0',
      '--log-format',
      'json',
      '--drain-timeout',
      String(opts.drainTimeoutS ?? 5),
      ...(opts.extraArgs ?? []),
    ]);
    try {
      const { child, output } = await startDaemon({
        cmd: NODE,
        args,
        cwd: REPO,
        readyLine: /"msg":"snigate started"/,
        timeoutMs: 20_000,
      });
      return wrap(child, output, offset);
    } catch (e) {
      lastErr = e;
      // A port taken between the check and the bind: try another offset. Anything else is a real failure.
      if (!/EADDRINUSE|could not listen/.test(String(e))) throw e;
    }
  }
  throw lastErr;
}

function wrap(child: ChildProcess, output: () => string, offset: number): Snigate {
  const started = parseLogs(output()).find((l) => l.msg === 'snigate started');
  assert.ok(started, 'no "snigate started" line');
  const adminUrl = String(started.admin);
  const connections = () => parseLogs(output()).filter((l) => l.msg === 'connection') as unknown as ConnLog[];
  const tail = () => output().split('\n').slice(-30).join('\n');
  return {
    child,
    pid: child.pid!,
    offset,
    adminUrl,
    port: (p) => p + offset,
    output,
    logs: () => parseLogs(output()),
    connections,
    waitForConnection: async (pred, timeoutMs = 5_000) => {
      try {
        return await waitUntil('connection log', () => connections().find(pred), {
          timeoutMs,
          intervalMs: 50,
        });
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- snigate log tail ---\n${tail()}`);
      }
    },
    waitForLog: async (pred, timeoutMs = 5_000) => {
      try {
        return await waitUntil('log line', () => parseLogs(output()).find(pred), {
          timeoutMs,
          intervalMs: 50,
        });
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- snigate log tail ---\n${tail()}`);
      }
    },
    status: async () => {
      const res = await fetch(`${adminUrl}/status`, { signal: AbortSignal.timeout(5_000) });
      return (await res.json()) as StatusDoc;
    },
    stop: (graceMs = 10_000) => stopChild(child, 'SIGTERM', graceMs),
  };
}

/** Runs the snigate CLI (validate, status, ...) to completion. */
export function snigateCli(args: string[], timeoutMs = 20_000): Promise<ClientResult> {
  return runClient(NODE, [MAIN, ...args], { timeoutMs, cwd: REPO });
}

/** A condition of an object in an ObjectStatus list, for routes: of its first parent. */
export function routeCondition(
  doc: Pick<StatusDoc, 'statuses'>,
  kind: string,
  namespace: string,
  name: string,
  type: string,
): { status: string; reason: string; message?: string } | undefined {
  const obj = doc.statuses.find(
    (s) => s.kind === kind && s.metadata.name === name && (s.metadata.namespace ?? 'default') === namespace,
  );
  const parents = (obj?.status.parents ?? []) as {
    conditions?: { type: string; status: string; reason: string }[];
  }[];
  return parents[0]?.conditions?.find((c) => c.type === type);
}

/** Open file descriptors of a process (Linux). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Opens a TCP connection; resolves with the socket once connected. */
export function tcpConnect(port: number, host = '127.0.0.1', timeoutMs = 5_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export type CloseKind = { kind: 'eof' | 'reset' | 'error' | 'timeout'; data: Buffer; code?: string };

/** Waits for the peer to close `s` (FIN or RST); collects what arrived meanwhile. */
export function awaitClose(s: Socket, timeoutMs = 5_000): Promise<CloseKind> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let result: CloseKind['kind'] | null = null;
    let code: string | undefined;
    const timer = setTimeout(() => {
      result ??= 'timeout';
      s.destroy();
    }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      result ??= 'eof';
      s.destroy();
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      code = e.code;
      result ??= e.code === 'ECONNRESET' ? 'reset' : 'error';
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ kind: result ?? 'eof', data: Buffer.concat(chunks), ...(code ? { code } : {}) });
    });
  });
}

/** `p`, or a rejection after `ms`; the timer is cleared either way (so it never keeps the process alive). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `n` async jobs with at most `limit` in flight. */
export async function pool<T>(n: number, limit: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await job(i);
    }
  });
  await Promise.all(workers);
  return out;
}
