/**
 * Keep-alive connections to HTTP(S) backend endpoints (undici), one set per endpoint and TLS setting, closed when
 * idle. The proxy takes one undici Client (one connection, one request at a time) off a stack of idle ones per
 * request: cheaper than undici's Pool, which looks for a free client and relays its 'drain' on every request. A
 * Pool over the same endpoint is made on demand for callers of `lease.pool` (mirrors).
 */
import { createHash } from 'node:crypto';
import { Client, Pool } from 'undici';
import type { Endpoint, HttpBackend } from '../table/types.ts';

interface Entry {
  origin: string;
  options: Pool.Options;
  /** Clients with nothing in flight, most recently used last (their connections are the warmest). */
  idle: Client[];
  /** Every client made, idle or not, for close(). */
  clients: Set<Client>;
  pool: Pool | null;
  inFlight: number;
  lastUsed: number;
  closed: boolean;
}

export interface PoolOptions {
  /** Pools with nothing in flight and unused for this long are closed. Default 60 s. */
  idleMs?: number;
  /** How often idle pools are looked for. Default 15 s. */
  sweepMs?: number;
}

/** What a pool depends on: the backend's protocol, TLS settings and connect timeout. */
export type UpstreamTarget = Pick<HttpBackend, 'protocol' | 'tls' | 'policy'>;

/** An endpoint held for one request; `release()` is idempotent. A class, not closures: one allocation per request. */
export class Lease {
  readonly #entry: Entry;
  #released = false;
  #client: Client | null = null;

  constructor(entry: Entry) {
    this.#entry = entry;
    entry.inFlight++;
  }

  /** A Pool over the endpoint (made on first use), for callers that want undici's request() API. */
  get pool(): Pool {
    const e = this.#entry;
    e.pool ??= new Pool(e.origin, e.options);
    return e.pool;
  }

  /**
   * A connection of its own for one dispatch. Call `settled()` once undici has reported the request over
   * (onResponseEnd or onResponseError), which may come after `release()` when the request was aborted.
   */
  client(): Client {
    const e = this.#entry;
    let c = e.idle.pop();
    if (c === undefined) {
      c = new Client(e.origin, e.options);
      e.clients.add(c);
    }
    this.#client = c;
    return c;
  }

  settled(): void {
    const c = this.#client;
    if (c === null) return;
    this.#client = null;
    const e = this.#entry;
    if (c.closed || c.destroyed) e.clients.delete(c);
    else if (e.closed) {
      e.clients.delete(c);
      c.close().catch(() => {});
    } else e.idle.push(c);
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#entry.inFlight--;
    // Only the release time matters: an endpoint with requests in flight is never swept.
    this.#entry.lastUsed = Date.now();
  }
}

export class UpstreamPools {
  readonly #pools = new Map<string, Entry>();
  /**
   * Per backend object (tables are immutable) and endpoint key: the pool key, so the hot path builds no string
   * (and hashes no CA) per request.
   */
  readonly #keys = new WeakMap<UpstreamTarget, Map<string, string>>();
  readonly #idleMs: number;
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  constructor(opts: PoolOptions = {}) {
    this.#idleMs = opts.idleMs ?? 60_000;
    this.#timer = setInterval(() => this.sweep(), opts.sweepMs ?? 15_000);
    this.#timer.unref();
  }

  get size(): number {
    return this.#pools.size;
  }

  /** The connections to `endpoint` of `backend`; call `release()` when the request (response body included) is over. */
  acquire(backend: UpstreamTarget, endpoint: Endpoint, key: string): Lease {
    if (this.#closed) throw new Error('upstream pools are closed');
    let keys = this.#keys.get(backend);
    if (keys === undefined) {
      keys = new Map();
      this.#keys.set(backend, keys);
    }
    let poolKey = keys.get(key);
    if (poolKey === undefined) {
      poolKey = poolKeyOf(backend, key);
      keys.set(key, poolKey);
    }
    let e = this.#pools.get(poolKey);
    if (e === undefined) {
      e = newEntry(backend, endpoint);
      this.#pools.set(poolKey, e);
    }
    return new Lease(e);
  }

  /** Closes the connections of endpoints idle for longer than idleMs (also called by the timer). */
  sweep(now = Date.now()): void {
    for (const [k, e] of this.#pools) {
      if (e.inFlight === 0 && now - e.lastUsed >= this.#idleMs) {
        this.#pools.delete(k);
        e.closed = true;
        for (const c of e.clients) c.close().catch(() => {});
        e.clients.clear();
        e.idle.length = 0;
        e.pool?.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const all: (Client | Pool)[] = [];
    for (const e of this.#pools.values()) {
      e.closed = true;
      all.push(...e.clients);
      if (e.pool !== null) all.push(e.pool);
    }
    this.#pools.clear();
    await Promise.all(all.map((d) => d.destroy().catch(() => {})));
  }
}

function poolKeyOf(backend: UpstreamTarget, key: string): string {
  const t = backend.tls;
  const tlsPart =
    backend.protocol === 'https'
      ? `|${t?.serverName ?? ''}|${t?.insecureSkipVerify ? 1 : 0}|${t?.caPem ? createHash('sha256').update(t.caPem).digest('hex').slice(0, 16) : ''}`
      : '';
  return `${backend.protocol}://${key}|${backend.policy.connectTimeoutMs}${tlsPart}`;
}

function newEntry(backend: UpstreamTarget, endpoint: Endpoint): Entry {
  const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
  const t = backend.tls;
  const options: Pool.Options = {
    // HTTP/1.1 to backends: hop-by-hop semantics stay as the client sent them, and echo servers speak it.
    allowH2: false,
    connectTimeout: backend.policy.connectTimeoutMs || 10_000,
    keepAliveTimeout: 4_000,
    // Route timeouts are the proxy's own timers (timeouts.requestMs / backendRequestMs). Without them a backend still
    // has 5 minutes to start answering; a streaming body (SSE, long downloads) may stay idle as long as it likes.
    headersTimeout: 300_000,
    bodyTimeout: 0,
    ...(backend.protocol === 'https'
      ? {
          connect: {
            ...(t?.serverName ? { servername: t.serverName } : {}),
            ...(t?.caPem ? { ca: t.caPem } : {}),
            rejectUnauthorized: !(t?.insecureSkipVerify ?? false),
          },
        }
      : {}),
  };
  return {
    origin: `${backend.protocol}://${host}:${endpoint.port}`,
    options,
    idle: [],
    clients: new Set(),
    pool: null,
    inFlight: 0,
    lastUsed: Date.now(),
    closed: false,
  };
}
