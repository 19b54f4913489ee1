/** Keep-alive connection pools to HTTP(S) backend endpoints (undici), one per endpoint and TLS setting, closed when idle. */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import type { Endpoint, HttpBackend } from '../table/types.ts';

interface Entry {
  pool: Pool;
  inFlight: number;
  lastUsed: number;
}

export interface PoolOptions {
  /** Pools with nothing in flight and unused for this long are closed. Default 60 s. */
  idleMs?: number;
  /** How often idle pools are looked for. Default 15 s. */
  sweepMs?: number;
}

/** What a pool depends on: the backend's protocol, TLS settings and connect timeout. */
export type UpstreamTarget = Pick<HttpBackend, 'protocol' | 'tls' | 'policy'>;

export interface Lease {
  pool: Pool;
  release(): void;
}

export class UpstreamPools {
  readonly #pools = new Map<string, Entry>();
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

  /** The pool for `endpoint` of `backend`; call `release()` when the request (response body included) is over. */
  acquire(backend: UpstreamTarget, endpoint: Endpoint, key: string): Lease {
    if (this.#closed) throw new Error('upstream pools are closed');
    const poolKey = poolKeyOf(backend, key);
    let e = this.#pools.get(poolKey);
    if (e === undefined) {
      e = { pool: createPool(backend, endpoint), inFlight: 0, lastUsed: Date.now() };
      this.#pools.set(poolKey, e);
    }
    const entry = e;
    entry.inFlight++;
    entry.lastUsed = Date.now();
    let released = false;
    return {
      pool: entry.pool,
      release: () => {
        if (released) return;
        released = true;
        entry.inFlight--;
        entry.lastUsed = Date.now();
      },
    };
  }

  /** Closes pools idle for longer than idleMs (also called by the timer). */
  sweep(now = Date.now()): void {
    for (const [k, e] of this.#pools) {
      if (e.inFlight === 0 && now - e.lastUsed >= this.#idleMs) {
        this.#pools.delete(k);
        e.pool.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const pools = [...this.#pools.values()].map((e) => e.pool);
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
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

function createPool(backend: UpstreamTarget, endpoint: Endpoint): Pool {
  const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
  const origin = `${backend.protocol}://${host}:${endpoint.port}`;
  const t = backend.tls;
  return new Pool(origin, {
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
  });
}
