/**
 * New-connection rate limit per client address for passthrough (and TCP) listeners (SecurityPolicy
 * connectionRateLimit): a local token bucket per listener and address; a connection over the limit is closed
 * before any byte reaches a backend. Buckets survive reloads while the listener's settings stay the same.
 */
import { clientNet } from '../ratelimit/headers.ts';
import { TokenBucketLimiter } from '../ratelimit/token-bucket.ts';
import type { TableListener } from '../table/types.ts';
import { unmapV4 } from './http-headers.ts';

const byListener = new WeakMap<TableListener, TokenBucketLimiter>();
/** `listener id|settings` → limiter, so a reload with the same settings keeps the buckets. At most MAX_LIMITERS. */
const bySettings = new Map<string, TokenBucketLimiter>();
const MAX_LIMITERS = 10_000;

/** Whether a new connection from `address` may proceed on `listener` (always, without connectionRate). */
export function admitConnection(listener: TableListener, address: string): boolean {
  const s = listener.connectionRate;
  if (s === undefined) return true;
  let lim = byListener.get(listener);
  if (lim === undefined) {
    const key = `${listener.id}|${s.rate}/${s.period}/${s.burst}`;
    lim = bySettings.get(key);
    if (lim === undefined) {
      if (bySettings.size >= MAX_LIMITERS) bySettings.delete(bySettings.keys().next().value!);
      lim = new TokenBucketLimiter({ policy: { rate: s.rate, period: s.period, burst: s.burst } });
      bySettings.set(key, lim);
    }
    byListener.set(listener, lim);
  }
  return lim.consume(clientNet(unmapV4(address), 64)).allowed;
}
