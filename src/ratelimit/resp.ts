/**
 * A minimal Redis client (RESP2 over node:net or node:tls): enough for EVAL/EVALSHA, AUTH and SELECT. Replies
 * arrive in request order, so in-flight commands are a FIFO. Every command has a deadline; a timeout destroys the
 * connection (a late reply would otherwise be matched to the wrong command) and reconnection backs off
 * exponentially. While disconnected, commands fail at once instead of queueing without bound.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';

export type RespValue = string | number | null | RespValue[];

export class RedisReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisReplyError';
  }
}

export class RedisUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUnavailableError';
  }
}

export interface RespClientOptions {
  host?: string;
  port?: number;
  /** TLS options; plain TCP when absent. */
  tls?: ConnectionOptions;
  password?: string;
  username?: string;
  db?: number;
  /** Connect deadline (default 500 ms). */
  connectTimeoutMs?: number;
  /** Per-command deadline (default 250 ms). */
  commandTimeoutMs?: number;
  /** Reconnect backoff: first delay and cap (default 50 ms .. 2 s, doubling). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Most commands in flight (default 10 000); beyond it commands fail at once. */
  maxPending?: number;
}

interface Pending {
  resolve: (v: RespValue) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

type State = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

export class RespClient {
  readonly #o: Required<Omit<RespClientOptions, 'tls' | 'password' | 'username'>> &
    Pick<RespClientOptions, 'tls' | 'password' | 'username'>;
  #state: State = 'idle';
  #socket: Socket | null = null;
  #buf: Buffer = Buffer.alloc(0);
  readonly #inflight: Pending[] = [];
  // Commands issued while connecting, written once the connection (and AUTH/SELECT) is up.
  #waiting: { frame: Buffer; p: Pending }[] = [];
  #backoff = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #lastError = '';

  constructor(opts: RespClientOptions = {}) {
    this.#o = {
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 6379,
      db: opts.db ?? 0,
      connectTimeoutMs: opts.connectTimeoutMs ?? 500,
      commandTimeoutMs: opts.commandTimeoutMs ?? 250,
      backoffMinMs: opts.backoffMinMs ?? 50,
      backoffMaxMs: opts.backoffMaxMs ?? 2000,
      maxPending: opts.maxPending ?? 10_000,
      tls: opts.tls,
      password: opts.password,
      username: opts.username,
    };
  }

  get state(): State {
    return this.#state;
  }

  /** Sends one command; rejects with RedisReplyError (an error reply) or RedisUnavailableError (no answer). */
  command(args: (string | number | Buffer)[]): Promise<RespValue> {
    if (this.#state === 'closed') return Promise.reject(new RedisUnavailableError('redis client closed'));
    if (this.#state === 'backoff')
      return Promise.reject(new RedisUnavailableError(`redis unavailable: ${this.#lastError}`));
    if (this.#inflight.length + this.#waiting.length >= this.#o.maxPending)
      return Promise.reject(new RedisUnavailableError('redis: too many commands in flight'));
    if (this.#state === 'idle') this.#connect();
    const frame = encode(args);
    return new Promise<RespValue>((resolve, reject) => {
      const p: Pending = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#fail(`command timed out after ${this.#o.commandTimeoutMs} ms`);
        }, this.#o.commandTimeoutMs),
      };
      if (this.#state === 'ready' && this.#socket !== null) {
        this.#inflight.push(p);
        this.#socket.write(frame);
      } else this.#waiting.push({ frame, p });
    });
  }

  /** Closes the connection for good; pending commands fail. */
  close(): void {
    this.#state = 'closed';
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#teardown(new RedisUnavailableError('redis client closed'));
  }

  #connect(): void {
    this.#state = 'connecting';
    const o = this.#o;
    const sock = o.tls
      ? tlsConnect({ host: o.host, port: o.port, servername: o.host, ...o.tls })
      : netConnect({ host: o.host, port: o.port });
    this.#socket = sock;
    this.#buf = Buffer.alloc(0);
    sock.setNoDelay(true);
    const connectTimer = setTimeout(
      () => this.#fail(`connect timed out after ${o.connectTimeoutMs} ms`),
      o.connectTimeoutMs,
    );
    sock.once(o.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer);
      if (this.#socket !== sock) return;
      this.#handshake(sock);
    });
    sock.on('data', (chunk: Buffer) => {
      if (this.#socket === sock) this.#onData(chunk);
    });
    sock.on('error', (err) => {
      clearTimeout(connectTimer);
      if (this.#socket === sock) this.#fail(err.message);
    });
    sock.on('close', () => {
      clearTimeout(connectTimer);
      if (this.#socket === sock) this.#fail('connection closed');
    });
  }

  // AUTH and SELECT go first, ahead of the waiting commands; their replies are checked like any other.
  #handshake(sock: Socket): void {
    const pre: (string | number)[][] = [];
    if (this.#o.password !== undefined)
      pre.push(
        this.#o.username !== undefined
          ? ['AUTH', this.#o.username, this.#o.password]
          : ['AUTH', this.#o.password],
      );
    if (this.#o.db !== 0) pre.push(['SELECT', this.#o.db]);
    for (const args of pre) {
      const p: Pending = {
        resolve: () => {},
        reject: () => {},
        timer: setTimeout(() => this.#fail('handshake timed out'), this.#o.commandTimeoutMs),
      };
      p.reject = (e) => this.#fail(`handshake failed: ${e.message}`);
      this.#inflight.push(p);
      sock.write(encode(args));
    }
    this.#state = 'ready';
    this.#backoff = 0;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) {
      this.#inflight.push(w.p);
      sock.write(w.frame);
    }
  }

  #onData(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let off = 0;
    for (;;) {
      let r: Parsed | null;
      try {
        r = parse(this.#buf, off);
      } catch (err) {
        this.#fail((err as Error).message);
        return;
      }
      if (r === null) break;
      off = r.next;
      const p = this.#inflight.shift();
      if (p === undefined) {
        this.#fail('unexpected reply');
        return;
      }
      clearTimeout(p.timer);
      if (r.error !== undefined) p.reject(new RedisReplyError(r.error));
      else p.resolve(r.value);
    }
    this.#buf = off === this.#buf.length ? Buffer.alloc(0) : this.#buf.subarray(off);
  }

  #fail(reason: string): void {
    if (this.#state === 'closed' || this.#state === 'backoff') return;
    this.#lastError = reason;
    this.#teardown(new RedisUnavailableError(`redis unavailable: ${reason}`));
    this.#state = 'backoff';
    this.#backoff = Math.min(
      this.#o.backoffMaxMs,
      this.#backoff === 0 ? this.#o.backoffMinMs : this.#backoff * 2,
    );
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      // Reconnect lazily: the next command opens the connection.
      if (this.#state === 'backoff') this.#state = 'idle';
    }, this.#backoff);
    this.#retryTimer.unref();
  }

  #teardown(err: Error): void {
    const sock = this.#socket;
    this.#socket = null;
    sock?.destroy();
    const all = [...this.#inflight, ...this.#waiting.map((w) => w.p)];
    this.#inflight.length = 0;
    this.#waiting = [];
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}

export function encode(args: (string | number | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

type Parsed = { value: RespValue; error?: string; next: number };

/** One reply from buf at off, or null when incomplete. */
export function parse(buf: Buffer, off: number): Parsed | null {
  if (off >= buf.length) return null;
  const eol = buf.indexOf('\r\n', off);
  if (eol === -1) return null;
  const type = String.fromCharCode(buf[off]!);
  const line = buf.toString('utf8', off + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: null, error: line, next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), next: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next };
      const items: RespValue[] = [];
      let at = next;
      let firstError: string | undefined;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, at);
        if (r === null) return null;
        if (r.error !== undefined && firstError === undefined) firstError = r.error;
        items.push(r.value);
        at = r.next;
      }
      return firstError === undefined
        ? { value: items, next: at }
        : { value: items, error: firstError, next: at };
    }
    default:
      throw new Error(`RESP: unexpected type byte ${JSON.stringify(type)}`);
  }
}
