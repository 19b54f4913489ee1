/** Picks a backend (weighted, invalid shares rejected, weight-0 fallback) and an endpoint (round-robin, fail-open). */
import { isIP } from 'node:net';
import type { Backend, BackendSet, Endpoint } from '../table/types.ts';
import { endpointKey, type HealthView } from './health.ts';

export type BackendReject = 'backend-invalid' | 'no-endpoints';

export interface PickedEndpoint {
  endpoint: Endpoint;
  key: string;
}

export type Pick =
  | ({ backend: Backend; reject?: undefined } & PickedEndpoint)
  | { backend?: Backend; reject: BackendReject; reason: string };

/** An endpoint with its backend: made once per endpoint and shared by every pick (never mutated). */
type EndpointPick = PickedEndpoint & { backend: Backend; reject?: undefined };

interface CompiledBackend {
  backend: Backend;
  /** One per endpoint, in order: what a pick of it returns (its key included), so a pick allocates nothing. */
  picks: EndpointPick[];
  cursor: number;
}

export class Balancer {
  readonly #weighted: CompiledBackend[] = [];
  /** Cumulative weights, parallel to #weighted. */
  readonly #cumulative: number[] = [];
  readonly #fallback: CompiledBackend[] = [];
  readonly #byBackend = new Map<Backend, CompiledBackend>();
  readonly #total: number;
  readonly #health: HealthView;
  readonly #random: () => number;
  #fallbackCursor = 0;
  /** Every endpoint is an IP literal: the native pump can connect to any of them (it does no DNS). */
  readonly ipEndpointsOnly: boolean;
  /** Some backend sends a PROXY header, which needs the client socket's local address. */
  readonly proxyProtocol: boolean;

  constructor(set: BackendSet, health: HealthView, random: () => number = Math.random) {
    this.#health = health;
    this.#random = random;
    this.ipEndpointsOnly = set.backends.every((b) => b.endpoints.every((e) => isIP(e.address) !== 0));
    this.proxyProtocol = set.backends.some((b) => b.policy.proxyProtocol !== null);
    let total = 0;
    // `fallback: false` on a weighted backend (its Service) keeps its share off the weight-0 backends, as
    // on the weight-0 backend itself: either side can turn the fallback off (and `snigate explain` says so).
    const weightedAllowFallback = set.backends.every((b) => b.weight === 0 || b.policy.fallback);
    for (const backend of set.backends) {
      const picks = backend.endpoints.map(
        (endpoint): EndpointPick => ({ backend, endpoint, key: endpointKey(endpoint) }),
      );
      const cb: CompiledBackend = { backend, picks, cursor: 0 };
      this.#byBackend.set(backend, cb);
      if (backend.weight > 0) {
        total += backend.weight;
        this.#weighted.push(cb);
        this.#cumulative.push(total);
      } else if (
        weightedAllowFallback &&
        backend.policy.fallback &&
        backend.invalid === undefined &&
        backend.endpoints.length > 0
      ) {
        this.#fallback.push(cb);
      }
    }
    this.#total = total;
  }

  pick(): Pick {
    if (this.#fallback.length > 0 && !this.#anyWeightedHealthy()) {
      const fb = this.#pickFallback();
      if (fb !== null) return fb;
    }
    if (this.#total === 0) {
      return {
        reject: 'backend-invalid',
        reason: this.#byBackend.size === 0 ? 'no backends' : 'all backend weights are 0',
      };
    }
    const cum = this.#cumulative;
    let i = 0;
    if (cum.length > 1) {
      const r = this.#random() * this.#total;
      while (i < cum.length - 1 && r >= cum[i]!) i++;
    }
    return this.#pickIn(this.#weighted[i]!);
  }

  /** Another endpoint of `backend` for a connect retry, healthy ones first; null when all were tried. */
  nextEndpoint(backend: Backend, excluding: readonly string[]): EndpointPick | null {
    const cb = this.#byBackend.get(backend);
    if (cb === undefined) return null;
    let fallback: EndpointPick | null = null;
    const n = cb.picks.length;
    for (let j = 0; j < n; j++) {
      const idx = (cb.cursor + j) % n;
      const key = cb.picks[idx]!.key;
      if (excluding.includes(key)) continue;
      if (this.#health.isHealthy(key)) {
        cb.cursor = (idx + 1) % n;
        return cb.picks[idx]!;
      }
      fallback ??= cb.picks[idx]!;
    }
    return fallback;
  }

  /**
   * Where a connect retry goes after the attempts in `tried` failed: another endpoint of `backend`, else
   * (nothing was sent yet, so it is safe) an endpoint of a weight-0 fallback backend; null when none is left
   * or the backend's connectRetries are used up.
   */
  retryEndpoint(backend: Backend, tried: readonly string[]): (PickedEndpoint & { backend: Backend }) | null {
    if (tried.length > backend.policy.connectRetries) return null;
    return this.nextEndpoint(backend, tried) ?? this.fallbackEndpoint(tried);
  }

  /** An endpoint of a weight-0 fallback backend not tried yet, healthy ones first (connect retries). */
  fallbackEndpoint(excluding: readonly string[]): EndpointPick | null {
    let spare: EndpointPick | null = null;
    for (const cb of this.#fallback) {
      for (let i = 0; i < cb.picks.length; i++) {
        const key = cb.picks[i]!.key;
        if (excluding.includes(key)) continue;
        const ep = cb.picks[i]!;
        if (this.#health.isHealthy(key)) return ep;
        spare ??= ep;
      }
    }
    return spare;
  }

  #pickIn(cb: CompiledBackend): Pick {
    const backend = cb.backend;
    if (backend.invalid !== undefined) return { backend, reject: 'backend-invalid', reason: backend.invalid };
    const n = cb.picks.length;
    if (n === 0) return { backend, reject: 'no-endpoints', reason: `${backend.id} has no ready endpoints` };
    const start = cb.cursor;
    for (let j = 0; j < n; j++) {
      const idx = (start + j) % n;
      if (this.#health.isHealthy(cb.picks[idx]!.key)) {
        cb.cursor = (idx + 1) % n;
        return cb.picks[idx]!;
      }
    }
    // Fail-open: every endpoint is marked down, trying one beats rejecting for sure.
    cb.cursor = (start + 1) % n;
    return cb.picks[start]!;
  }

  #anyWeightedHealthy(): boolean {
    for (const cb of this.#weighted) if (this.#hasHealthy(cb)) return true;
    return false;
  }

  #hasHealthy(cb: CompiledBackend): boolean {
    if (cb.backend.invalid !== undefined) return false;
    for (const p of cb.picks) if (this.#health.isHealthy(p.key)) return true;
    return false;
  }

  /** Fallback backends share traffic round-robin, healthy ones first; null lets the weighted pick fail open. */
  #pickFallback(): Pick | null {
    const n = this.#fallback.length;
    for (let j = 0; j < n; j++) {
      const idx = (this.#fallbackCursor + j) % n;
      const cb = this.#fallback[idx]!;
      if (this.#hasHealthy(cb)) {
        this.#fallbackCursor = (idx + 1) % n;
        return this.#pickIn(cb);
      }
    }
    if (this.#total > 0) return null;
    const cb = this.#fallback[this.#fallbackCursor % n]!;
    this.#fallbackCursor = (this.#fallbackCursor + 1) % n;
    return this.#pickIn(cb);
  }
}
