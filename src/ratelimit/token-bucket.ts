/**
 * Token-bucket rate limiting: the policy, the result every limiter returns, and the local in-process limiter.
 * A bucket holds up to `burst` tokens and refills at `rate` tokens per `period`; a request takes `cost` tokens.
 */

export interface RateLimitPolicy {
  /** Tokens added per period (the sustained rate). */
  rate: number;
  period: 'second' | 'minute' | 'hour';
  /** Bucket capacity: how many requests may arrive at once after a quiet spell. */
  burst: number;
}

export interface LimitResult {
  allowed: boolean;
  /** The bucket capacity (burst). */
  limit: number;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
  /** Milliseconds until this request could succeed (0 when allowed). */
  retryAfterMs: number;
  /** Who decided: the local bucket, Redis, or the fail mode while Redis is unreachable. */
  source: 'local' | 'redis' | 'fail-open' | 'fail-closed';
}

export interface RateLimiter {
  consume(key: string, cost?: number): LimitResult | Promise<LimitResult>;
}

const PERIOD_MS = { second: 1000, minute: 60_000, hour: 3_600_000 } as const;

/** Problems with a policy (empty when valid). */
export function validatePolicy(p: RateLimitPolicy): string[] {
  const out: string[] = [];
  if (!(typeof p.rate === 'number' && Number.isFinite(p.rate) && p.rate > 0 && p.rate <= 1e9))
    out.push('rate must be a positive number');
  if (!(p.period in PERIOD_MS)) out.push(`period must be second, minute or hour`);
  if (!(Number.isSafeInteger(p.burst) && p.burst >= 1 && p.burst <= 1e9))
    out.push('burst must be an integer >= 1');
  return out;
}

/** Refill speed in tokens per millisecond. */
export function tokensPerMs(p: RateLimitPolicy): number {
  return p.rate / PERIOD_MS[p.period];
}

export function periodMs(p: RateLimitPolicy): number {
  return PERIOD_MS[p.period];
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms, limiter clock). */
  at: number;
}

export interface TokenBucketOptions {
  policy: RateLimitPolicy;
  /** Most keys kept (default 100 000). Beyond it the least recently used key is forgotten (it restarts full). */
  maxKeys?: number;
  /** Clock in milliseconds (default performance.now); tests inject one. */
  now?: () => number;
}

/**
 * In-process token buckets, one per key. O(1) per check: one Map lookup plus at most two evictions. Memory is
 * bounded: a key whose bucket has refilled completely is indistinguishable from a new one and is dropped when it
 * reaches the old end of the LRU order, and the map never exceeds maxKeys.
 */
export class TokenBucketLimiter implements RateLimiter {
  readonly policy: RateLimitPolicy;
  readonly #perMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  // Insertion order = least recently used first (an entry is re-inserted on every use).
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: TokenBucketOptions) {
    const problems = validatePolicy(opts.policy);
    if (problems.length > 0) throw new Error(`invalid rate limit policy: ${problems.join('; ')}`);
    this.policy = { ...opts.policy };
    this.#perMs = tokensPerMs(opts.policy);
    this.#maxKeys = opts.maxKeys ?? 100_000;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  consume(key: string, cost = 1): LimitResult {
    const now = this.#now();
    const cap = this.policy.burst;
    let b = this.#buckets.get(key);
    if (b === undefined) b = { tokens: cap, at: now };
    else {
      this.#buckets.delete(key);
      if (now > b.at) {
        b.tokens = Math.min(cap, b.tokens + (now - b.at) * this.#perMs);
        b.at = now;
      }
    }
    const allowed = b.tokens >= cost;
    if (allowed) b.tokens -= cost;
    this.#buckets.set(key, b);
    this.#evict(now);
    return {
      allowed,
      limit: cap,
      remaining: Math.max(0, Math.floor(b.tokens)),
      resetMs: Math.ceil((cap - b.tokens) / this.#perMs),
      retryAfterMs: allowed ? 0 : Math.ceil((Math.min(cost, cap) - b.tokens) / this.#perMs),
      source: 'local',
    };
  }

  #evict(now: number): void {
    // Up to two idle entries per call: amortized, the map sheds idle keys as fast as new ones arrive.
    for (let i = 0; i < 2; i++) {
      const first = this.#buckets.entries().next();
      if (first.done) return;
      const [k, b] = first.value;
      const full = b.tokens + (now - b.at) * this.#perMs >= this.policy.burst;
      if (full || this.#buckets.size > this.#maxKeys) this.#buckets.delete(k);
      else return;
    }
  }
}
