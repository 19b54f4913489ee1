/** Endpoint health, keyed by `address:port` so it survives table swaps: passive marking and active TCP or HTTP checks. */
import net from 'node:net';
import type { Endpoint, HealthCheck } from '../table/types.ts';
import { fastShared, pumpShared } from './native-pump.ts';

export function endpointKey(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export interface EndpointHealth {
  endpoint: string;
  healthy: boolean;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** Epoch ms of the last healthy/unhealthy transition (0: never changed). */
  since: number;
  lastError: string | null;
  activeCheck: boolean;
}

export interface HealthView {
  isHealthy(key: string): boolean;
}

interface State {
  endpoint: Endpoint;
  healthy: boolean;
  failures: number;
  successes: number;
  since: number;
  /** Passive ejection without an active check expires here, so the endpoint gets tried again. */
  ejectedUntil: number;
  lastError: string | null;
  check: HealthCheck | null;
  timer: NodeJS.Timeout | null;
  probe: net.Socket | null;
  /** Index in the fast path's health array (clean or not, for C's picks); -1: none. */
  slot: number;
}

/** Free slots of the fast path's health array, shared by every registry in the process. */
const freeSlots: number[] = [];
let nextSlot = 0;

function takeSlot(): number {
  const mirror = fastShared?.health;
  if (mirror === undefined) return -1;
  const slot = freeSlots.pop() ?? (nextSlot < mirror.length ? nextSlot++ : -1);
  if (slot >= 0) mirror[slot] = 0;
  return slot;
}

function giveSlot(slot: number): void {
  if (slot < 0) return;
  fastShared!.health[slot] = 0;
  freeSlots.push(slot);
}

export interface HealthOptions {
  /** How long a passively ejected endpoint without an active check stays out. Default 10 s. */
  ejectMs?: number;
  now?: () => number;
  onChange?: (endpoint: string, healthy: boolean) => void;
}

/** What the table wants watched: one entry per endpoint, with the policy of (the first) backend using it. */
export interface WatchedEndpoint {
  endpoint: Endpoint;
  check: HealthCheck | null;
}

export class HealthRegistry implements HealthView {
  readonly #states = new Map<string, State>();
  readonly #ejectMs: number;
  readonly #now: () => number;
  readonly #onChange: (endpoint: string, healthy: boolean) => void;
  #closed = false;

  constructor(opts: HealthOptions = {}) {
    this.#ejectMs = opts.ejectMs ?? 10_000;
    this.#now = opts.now ?? Date.now;
    this.#onChange = opts.onChange ?? (() => {});
  }

  isHealthy(key: string): boolean {
    const s = this.#states.get(key);
    if (s === undefined || s.healthy) return true;
    if (s.check === null && s.ejectedUntil <= this.#now()) {
      // Half-open: healthy again, but one more failure ejects it at once (failures stays at the threshold).
      this.#set(key, s, true);
      return true;
    }
    return false;
  }

  /** A connect to the endpoint failed (passive check). */
  reportFailure(key: string, threshold: number, error: string): void {
    const s = this.#states.get(key);
    if (s === undefined) return;
    this.#fail(key, s, Math.max(1, threshold), error);
    if (!s.healthy) s.ejectedUntil = this.#now() + this.#ejectMs;
  }

  /** True when a success report would change nothing (no failure counted, healthy). */
  isClean(key: string): boolean {
    const s = this.#states.get(key);
    return s === undefined || (s.failures === 0 && s.healthy);
  }

  /** A connect succeeded: resets the failure count and heals a passively ejected endpoint. */
  reportSuccess(key: string): void {
    const s = this.#states.get(key);
    if (s === undefined) return;
    s.failures = 0;
    // A real connection that got through is proof enough, with or without an active check.
    if (!s.healthy) this.#set(key, s, true);
    else mirror(s);
  }

  /** The endpoint's slot in the fast path's health array (-1: none, C never picks it). */
  cleanSlot(key: string): number {
    return this.#states.get(key)?.slot ?? -1;
  }

  /** Called on each table swap: keeps state of endpoints still present, starts and stops active checks. */
  sync(watched: Map<string, WatchedEndpoint>): void {
    if (this.#closed) return;
    for (const [key, s] of this.#states) {
      if (!watched.has(key)) {
        this.#stopCheck(s);
        giveSlot(s.slot);
        this.#states.delete(key);
      }
    }
    for (const [key, w] of watched) {
      let s = this.#states.get(key);
      if (s === undefined) {
        s = {
          endpoint: w.endpoint,
          healthy: true,
          failures: 0,
          successes: 0,
          since: 0,
          ejectedUntil: 0,
          lastError: null,
          check: null,
          timer: null,
          probe: null,
          slot: takeSlot(),
        };
        mirror(s);
        this.#states.set(key, s);
      }
      if (!sameCheck(s.check, w.check)) {
        this.#stopCheck(s);
        s.check = w.check;
        if (w.check !== null) this.#schedule(key, s, 0);
      }
    }
  }

  snapshot(): EndpointHealth[] {
    const out: EndpointHealth[] = [];
    for (const [key, s] of this.#states) {
      out.push({
        endpoint: key,
        healthy: s.healthy,
        consecutiveFailures: s.failures,
        consecutiveSuccesses: s.successes,
        since: s.since,
        lastError: s.lastError,
        activeCheck: s.check !== null,
      });
    }
    return out;
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#states.values()) {
      this.#stopCheck(s);
      giveSlot(s.slot);
      s.slot = -1;
    }
  }

  #fail(key: string, s: State, threshold: number, error: string): void {
    // Native connects started meanwhile report their success (see pumpShared): it resets this count.
    pumpShared[0] = (pumpShared[0]! + 1) | 0;
    s.failures++;
    s.successes = 0;
    s.lastError = error;
    mirror(s);
    if (s.healthy && s.failures >= threshold) this.#set(key, s, false);
  }

  #set(key: string, s: State, healthy: boolean): void {
    s.healthy = healthy;
    s.since = this.#now();
    mirror(s);
    this.#onChange(key, healthy);
  }

  #schedule(key: string, s: State, delayMs: number): void {
    s.timer = setTimeout(() => this.#probe(key, s), delayMs);
    s.timer.unref();
  }

  #probe(key: string, s: State): void {
    s.timer = null;
    const check = s.check;
    if (check === null || this.#closed) return;
    let settled = false;
    const done = (ok: boolean, error: string) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      s.probe = null;
      // The check may have been replaced or stopped while the probe was in flight.
      if (s.check !== check || this.#states.get(key) !== s) return;
      if (ok) {
        s.successes++;
        s.failures = 0;
        mirror(s);
        if (!s.healthy && s.successes >= check.healthyThreshold) this.#set(key, s, true);
      } else {
        this.#fail(key, s, check.unhealthyThreshold, error);
      }
      this.#schedule(key, s, check.intervalMs);
    };
    const sock = net.connect({ host: s.endpoint.address, port: s.endpoint.port, timeout: check.timeoutMs });
    sock.unref();
    s.probe = sock;
    const http = check.http;
    if (http === undefined) sock.once('connect', () => done(true, ''));
    else {
      // HTTP check: the status line of a GET decides; anything else (reset, garbage, timeout) is a failure.
      sock.once('connect', () => {
        const host =
          http.host || (s.endpoint.address.includes(':') ? `[${s.endpoint.address}]` : s.endpoint.address);
        sock.write(
          `GET ${http.path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: snigate-health-check\r\nConnection: close\r\n\r\n`,
        );
      });
      let head = '';
      sock.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1', 0, Math.min(chunk.length, 256));
        const eol = head.indexOf('\r\n');
        if (eol < 0 && head.length < 256) return;
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
        if (!m) return done(false, 'not an HTTP response');
        const status = Number(m[1]);
        const ok =
          http.expectedStatuses.length > 0
            ? http.expectedStatuses.includes(status)
            : status >= 200 && status < 400;
        done(ok, ok ? '' : `HTTP ${status}`);
      });
      sock.once('end', () => done(false, 'closed before a status line'));
    }
    sock.once('timeout', () => done(false, 'ETIMEDOUT'));
    sock.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
  }

  #stopCheck(s: State): void {
    if (s.timer !== null) clearTimeout(s.timer);
    s.timer = null;
    s.probe?.destroy();
    s.probe = null;
    s.check = null;
  }
}

function sameCheck(a: HealthCheck | null, b: HealthCheck | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.unhealthyThreshold === b.unhealthyThreshold &&
    a.healthyThreshold === b.healthyThreshold &&
    JSON.stringify(a.http ?? null) === JSON.stringify(b.http ?? null)
  );
}

/** Clean (healthy, no failure counted) in the fast path's health array: C connects only to those. */
function mirror(s: State): void {
  if (s.slot >= 0) fastShared!.health[s.slot] = s.healthy && s.failures === 0 ? 1 : 0;
}
