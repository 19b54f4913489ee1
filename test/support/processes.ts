// Real servers (redis, postgres) and CLI clients (openssl, curl, psql) run as child processes, bounded in time.
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { CertPair } from './certs.ts';

export interface ClientResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunningServer {
  port: number;
  host: string;
  /** Everything the server printed so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

export const SETUP_HINT = 'run `bash .ci/run` (or apt-get install the packages in .ci/apt-packages.txt)';

export function commandExists(name: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin']);
  return dirs.some((d) => {
    try {
      accessSync(join(d, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, resolve);
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

/** Resolves once a TCP connect to host:port succeeds; rejects after timeoutMs. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
}

/** Runs a CLI to completion; SIGKILLs it after timeoutMs. Never rejects for a non-zero exit. */
export function runClient(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} failed to start (${SETUP_HINT}): ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

async function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  if (!(await waitExit(child, graceMs))) {
    child.kill('SIGKILL');
    await waitExit(child, 5000);
  }
}

export interface DaemonSpec {
  cmd: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Printed by the server once it accepts connections. */
  readyLine: RegExp;
  timeoutMs: number;
}

/** Spawns a server and resolves once readyLine appears; rejects (after killing it) on exit or timeout. */
export async function startDaemon(spec: DaemonSpec): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(spec.cmd, spec.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(spec.cwd ? { cwd: spec.cwd } : {}),
    env: spec.env ?? process.env,
  });
  let out = '';
  const output = () => out;
  let ready = false;
  const result = await new Promise<'ready' | string>((resolve) => {
    const timer = setTimeout(() => resolve(`not ready after ${spec.timeoutMs} ms`), spec.timeoutMs);
    const onData = (c: Buffer) => {
      out += c.toString('utf8');
      if (!ready && spec.readyLine.test(out)) {
        ready = true;
        clearTimeout(timer);
        resolve('ready');
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve(`failed to start (${SETUP_HINT}): ${err.message}`);
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      resolve(`exited early (code ${code}, signal ${sig})`);
    });
  });
  if (result !== 'ready') {
    await stopChild(child, 'SIGKILL', 2000);
    throw new Error(`${spec.cmd} ${result}\n--- output ---\n${out.slice(-4000)}`);
  }
  return { child, output };
}

// A port picked by freePort() can be taken before the server binds it; a couple of retries absorb that race.
async function withPortRetry<T>(start: (port: number) => Promise<T>, host: string): Promise<T> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await start(await freePort(host));
    } catch (err) {
      last = err;
      if (!/in use|EADDRINUSE|could not bind|Could not create server TCP listening socket/i.test(String(err)))
        break;
    }
  }
  throw last;
}

export interface TlsServerOptions {
  cert: CertPair;
  caFile: string;
  host?: string;
}

/** A redis-server without persistence; `portArgs` say how it listens (plain port, or TLS port + certificates). */
async function startRedisWith(
  host: string,
  fixedPort: number | undefined,
  portArgs: (port: number) => string[],
): Promise<RunningServer> {
  if (!commandExists('redis-server')) throw new Error(`redis-server is not installed: ${SETUP_HINT}`);
  const dir = mkdtempSync(join(tmpdir(), 'snigate-redis-'));
  const start = async (port: number): Promise<RunningServer> => {
    const args = [...portArgs(port), '--bind', host, '--dir', dir, '--save', '', '--appendonly', 'no'].concat(
      ['--daemonize', 'no', '--logfile', '', '--loglevel', 'notice'],
    );
    const { child, output } = await startDaemon({
      cmd: 'redis-server',
      args,
      cwd: dir,
      readyLine: /Ready to accept connections/,
      timeoutMs: 10_000,
    });
    return {
      port,
      host,
      output,
      stop: async () => {
        await stopChild(child, 'SIGTERM', 5000);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
  try {
    return fixedPort !== undefined ? await start(fixedPort) : await withPortRetry(start, host);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export function startRedisTls(opts: TlsServerOptions): Promise<RunningServer> {
  return startRedisWith(opts.host ?? '127.0.0.1', undefined, (port) => [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    opts.cert.certFile,
    '--tls-key-file',
    opts.cert.keyFile,
    '--tls-ca-cert-file',
    opts.caFile,
    '--tls-auth-clients',
    'no',
  ]);
}

/** A plain-TCP redis-server (no persistence) on a free port, or on `port` (e.g. to restart one on the same port). */
export function startRedis(opts: { host?: string; port?: number } = {}): Promise<RunningServer> {
  return startRedisWith(opts.host ?? '127.0.0.1', opts.port, (port) => ['--port', String(port)]);
}

/** Newest /usr/lib/postgresql/<major>/bin that has a postgres binary (Debian keeps them off PATH). */
export function postgresBinDir(): string | undefined {
  let versions: string[];
  try {
    versions = readdirSync('/usr/lib/postgresql');
  } catch {
    return undefined;
  }
  const best = versions
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .find((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'postgres')));
  return best === undefined ? undefined : join('/usr/lib/postgresql', best, 'bin');
}

function osUser(name: string): { uid: number; gid: number } | undefined {
  // /etc/passwd is enough: the postgresql package creates a local system user.
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

export async function startPostgresTls(opts: TlsServerOptions): Promise<RunningServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(`postgres binaries not found under /usr/lib/postgresql: ${SETUP_HINT}`);
  const host = opts.host ?? '127.0.0.1';
  // postgres refuses to run as root, so as root we hand the data dir to the postgres user and exec as it.
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? osUser('postgres') : undefined;
  if (asRoot && !owner)
    throw new Error(`no 'postgres' OS user (the postgresql package creates it): ${SETUP_HINT}`);
  const wrap = (cmd: string, args: string[]): [string, string[]] =>
    owner
      ? [
          'setpriv',
          ['--reuid', String(owner.uid), '--regid', String(owner.gid), '--clear-groups', '--', cmd, ...args],
        ]
      : [cmd, args];

  const dir = mkdtempSync(join(tmpdir(), 'snigate-pg-'));
  const data = join(dir, 'data');
  const own = (path: string) => {
    if (owner) chownSync(path, owner.uid, owner.gid);
  };
  try {
    own(dir);
    // The server reads its key itself and insists on 0600 (or 0640 root-owned).
    copyFileSync(opts.cert.certFile, join(dir, 'server.crt'));
    copyFileSync(opts.cert.keyFile, join(dir, 'server.key'));
    copyFileSync(opts.caFile, join(dir, 'ca.crt'));
    for (const f of ['server.crt', 'server.key', 'ca.crt']) {
      chmodSync(join(dir, f), 0o600);
      own(join(dir, f));
    }
    const [icmd, iargs] = wrap(join(bin, 'initdb'), [
      ...['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '--no-instructions'],
      ...['-E', 'UTF8', '--locale=C'],
    ]);
    const init = await runClient(icmd, iargs, { timeoutMs: 60_000, cwd: dir });
    if (init.code !== 0) throw new Error(`initdb failed (${init.code}):\n${init.stdout}\n${init.stderr}`);
    // Only TLS from loopback is allowed, so a test that reaches postgres did so through a TLS session.
    const hba = [
      'local all all trust',
      `hostssl all all ${host === '::1' ? '::1/128' : '127.0.0.1/32'} trust`,
      'hostssl all all ::1/128 trust',
      'hostnossl all all 0.0.0.0/0 reject',
      '',
    ].join('\n');
    await writeFile(join(data, 'pg_hba.conf'), hba);
    own(join(data, 'pg_hba.conf'));

    return await withPortRetry(async (port) => {
      const settings: Record<string, string> = {
        listen_addresses: host,
        port: String(port),
        unix_socket_directories: dir,
        ssl: 'on',
        ssl_cert_file: join(dir, 'server.crt'),
        ssl_key_file: join(dir, 'server.key'),
        ssl_ca_file: join(dir, 'ca.crt'),
        fsync: 'off',
        full_page_writes: 'off',
        synchronous_commit: 'off',
        max_connections: '20',
        shared_buffers: '16MB',
        logging_collector: 'off',
      };
      const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
      const [cmd, cargs] = wrap(join(bin, 'postgres'), args);
      const { child, output } = await startDaemon({
        cmd,
        args: cargs,
        cwd: dir,
        readyLine: /database system is ready to accept connections/,
        timeoutMs: 30_000,
      });
      return {
        port,
        host,
        output,
        stop: async () => {
          // SIGINT = fast shutdown: ends sessions, no checkpoint wait worth mentioning with fsync off.
          await stopChild(child, 'SIGINT', 10_000);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }, host);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface SClientOptions {
  port: number;
  /** SNI; omit to send none (-noservername). */
  servername?: string;
  /** Verify against this CA (with -verify_return_error); without it the peer cert is shown but not verified. */
  caFile?: string;
  host?: string;
  alpn?: string[];
  /** e.g. a client cert: ['-cert', f, '-key', k], or ['-tls1_2']. */
  extraArgs?: string[];
  timeoutMs?: number;
}

export interface SClientResult {
  /** The TLS handshake completed. */
  connected: boolean;
  /** Node's form, e.g. `CN=abc.example.com` (several RDNs joined by ', '). */
  peerSubject?: string;
  peerSans?: string[];
  verified: boolean;
  verifyMessage?: string;
  /** The alert text openssl reported, e.g. `tlsv1 alert unrecognized name`. */
  alert?: string;
  /** The handshake died on a TCP close (FIN or RST) with no TLS alert: what the conformance suite calls rejection. */
  closedWithoutAlert?: boolean;
  protocol?: string;
  alpn?: string;
  raw: ClientResult;
}

export async function opensslSClient(opts: SClientOptions): Promise<SClientResult> {
  const host = opts.host ?? '127.0.0.1';
  const target = host.includes(':') ? `[${host}]:${opts.port}` : `${host}:${opts.port}`;
  const args = ['s_client', '-connect', target, '-showcerts'];
  args.push(...(opts.servername !== undefined ? ['-servername', opts.servername] : ['-noservername']));
  if (opts.caFile) args.push('-CAfile', opts.caFile, '-verify_return_error');
  if (opts.alpn) args.push('-alpn', opts.alpn.join(','));
  args.push(...(opts.extraArgs ?? []));
  // Closing stdin makes s_client send close_notify and exit right after the handshake.
  const raw = await runClient('openssl', args, { timeoutMs: opts.timeoutMs ?? 10_000, input: '' });
  const all = raw.stdout + '\n' + raw.stderr;
  const cipher = /^(?:New|Reused), (\S+), Cipher is (\S+)/m.exec(raw.stdout);
  // With -verify_return_error a failed verification still prints the cipher line, but exits non-zero.
  const connected = cipher !== null && cipher[2] !== '(NONE)' && raw.code === 0;
  const verify = /Verify return code: (\d+) \(([^)]*)\)/.exec(raw.stdout);
  const result: SClientResult = {
    connected,
    verified: connected && opts.caFile !== undefined && verify?.[1] === '0',
    raw,
  };
  if (verify) result.verifyMessage = verify[2];
  if (connected && cipher?.[1]) result.protocol = cipher[1];
  const alpn = /^ALPN protocol: (\S+)/m.exec(raw.stdout);
  if (alpn?.[1]) result.alpn = alpn[1];
  const alert = /(?:sslv3|tlsv1|tlsv13|ssl\/tls) alert ([a-z_ ]+)/i.exec(all);
  if (alert) result.alert = alert[0].trim();
  else if (!connected && /unexpected eof|reset by peer|errno=104|write:errno/i.test(raw.stderr))
    result.closedWithoutAlert = true;
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(raw.stdout);
  if (pem) {
    const x = new X509Certificate(pem[0]);
    result.peerSubject = x.subject.split('\n').join(', ');
    result.peerSans = (x.subjectAltName ?? '')
      .split(', ')
      .filter((e) => e !== '')
      .map((e) => e.replace(/^DNS:/, '').replace(/^IP Address:/, 'IP:'));
  }
  return result;
}
