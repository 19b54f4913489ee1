/**
 * Token buckets shared by every replica through Redis. The whole check-and-take runs as one Lua script (atomic on
 * the server, Redis' clock so replicas' clocks do not matter); buckets expire once they would be full again.
 * When Redis does not answer in time, failMode decides: 'open' lets the request through, 'closed' refuses it.
 */
import { createHash } from 'node:crypto';
import { RedisReplyError, RespClient, type RespClientOptions } from './resp.ts';
import {
  type LimitResult,
  type RateLimiter,
  type RateLimitPolicy,
  tokensPerMs,
  validatePolicy,
} from './token-bucket.ts';

// KEYS[1]: bucket. ARGV: capacity, tokens per ms, cost. Returns {allowed, tokens (string: Lua numbers become
// integers on the way out), server time ms}. Hash fields: n = tokens, t = when n was computed.
export const TOKEN_BUCKET_LUA = `
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'n', 't')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = math.min(cap, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'n', tostring(tokens), 't', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate) + 1000)
return {allowed, tostring(tokens), tostring(now)}
`;
const SHA = createHash('sha1').update(TOKEN_BUCKET_LUA).digest('hex');

export interface RedisLimiterOptions {
  policy: RateLimitPolicy;
  /** Distinguishes buckets of different policies sharing one Redis (e.g. the route's name). */
  name: string;
  redis: RespClientOptions;
  /** When Redis is unreachable or too slow: 'open' allows, 'closed' refuses (default 'open'). */
  failMode?: 'open' | 'closed';
  /** Retry-After given while failing closed (default 1000 ms). */
  failClosedRetryMs?: number;
  /** Key prefix (default `snigate:rl:`). */
  prefix?: string;
  /** Told once per transition into / out of failure (for the log and metrics). */
  onRedisState?: (up: boolean, reason: string) => void;
}

export class RedisLimiter implements RateLimiter {
  readonly policy: RateLimitPolicy;
  readonly failMode: 'open' | 'closed';
  readonly #client: RespClient;
  readonly #perMs: number;
  readonly #prefix: string;
  readonly #failRetryMs: number;
  readonly #onState: ((up: boolean, reason: string) => void) | undefined;
  #up = true;

  constructor(opts: RedisLimiterOptions) {
    const problems = validatePolicy(opts.policy);
    if (problems.length > 0) throw new Error(`invalid rate limit policy: ${problems.join('; ')}`);
    this.policy = { ...opts.policy };
    this.failMode = opts.failMode ?? 'open';
    this.#client = new RespClient(opts.redis);
    this.#perMs = tokensPerMs(opts.policy);
    this.#prefix = `${opts.prefix ?? 'snigate:rl:'}${opts.name}:`;
    this.#failRetryMs = opts.failClosedRetryMs ?? 1000;
    this.#onState = opts.onRedisState;
  }

  async consume(key: string, cost = 1): Promise<LimitResult> {
    const cap = this.policy.burst;
    const redisKey =
      this.#prefix + (key.length <= 128 ? key : `sha256:${createHash('sha256').update(key).digest('hex')}`);
    const args = [1, redisKey, cap, this.#perMs, cost];
    let reply: unknown;
    try {
      try {
        reply = await this.#client.command(['EVALSHA', SHA, ...args]);
      } catch (err) {
        if (!(err instanceof RedisReplyError && err.message.startsWith('NOSCRIPT'))) throw err;
        reply = await this.#client.command(['EVAL', TOKEN_BUCKET_LUA, ...args]);
      }
    } catch (err) {
      this.#state(false, (err as Error).message);
      return this.failMode === 'open'
        ? { allowed: true, limit: cap, remaining: cap, resetMs: 0, retryAfterMs: 0, source: 'fail-open' }
        : {
            allowed: false,
            limit: cap,
            remaining: 0,
            resetMs: this.#failRetryMs,
            retryAfterMs: this.#failRetryMs,
            source: 'fail-closed',
          };
    }
    this.#state(true, 'ok');
    if (!Array.isArray(reply) || reply.length !== 3)
      throw new Error(`rate limit script: unexpected reply ${JSON.stringify(reply)}`);
    const allowed = reply[0] === 1;
    const tokens = Number(reply[1]);
    return {
      allowed,
      limit: cap,
      remaining: Math.max(0, Math.floor(tokens)),
      resetMs: Math.ceil((cap - tokens) / this.#perMs),
      retryAfterMs: allowed ? 0 : Math.ceil((Math.min(cost, cap) - tokens) / this.#perMs),
      source: 'redis',
    };
  }

  close(): void {
    this.#client.close();
  }

  #state(up: boolean, reason: string): void {
    if (up === this.#up) return;
    this.#up = up;
    this.#onState?.(up, reason);
  }
}
