/**
 * What a rate limit is keyed on, and the response headers: `Retry-After` (RFC 9110) on a 429, and
 * `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` / `RateLimit-Policy` after
 * draft-ietf-httpapi-ratelimit-headers (the widely deployed revisions with separate fields; Reset in delta-seconds).
 */
import { isIPv6 } from 'node:net';
import { type LimitResult, periodMs, type RateLimitPolicy } from './token-bucket.ts';

export type RateLimitKeySpec =
  | {
      by: 'client-ip' /** IPv6 clients are grouped by this prefix length (default 64: one customer network). */;
      ipv6Prefix?: number;
    }
  | { by: 'route' }
  | { by: 'header'; name: string };

export interface KeyContext {
  clientIp: string;
  /** e.g. `HTTPRoute/default/api`. */
  route: string;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * The bucket key for a request. A header-keyed limit falls back to the client address when the header is absent
 * (so leaving the header out does not escape the limit into one shared bucket or none).
 */
export function rateLimitKey(spec: RateLimitKeySpec, ctx: KeyContext): string {
  switch (spec.by) {
    case 'route':
      return `route:${ctx.route}`;
    case 'header': {
      const v = ctx.headers[spec.name.toLowerCase()];
      const value = Array.isArray(v) ? v[0] : v;
      if (value !== undefined && value !== '') return `h:${spec.name.toLowerCase()}:${value}`;
      return `ip:${clientNet(ctx.clientIp, 64)}`;
    }
    case 'client-ip':
      return `ip:${clientNet(ctx.clientIp, spec.ipv6Prefix ?? 64)}`;
  }
}

/** IPv4 (and IPv4-mapped IPv6) as is; IPv6 truncated to its first `bits` bits, e.g. `2001:db8:1:2::/64`. */
export function clientNet(ip: string, bits: number): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip) || bits >= 128) return ip;
  const groups = expand(ip);
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, bits - i * 16));
    const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
    out.push((groups[i]! & mask).toString(16));
  }
  return `${out.join(':')}/${bits}`;
}

function expand(ip: string): number[] {
  const clean = ip.split('%')[0]!;
  const [head, tail] = clean.includes('::') ? clean.split('::') : [clean, undefined];
  const h = head === '' || head === undefined ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const toNums = (parts: string[]) =>
    parts.flatMap((p) => {
      if (p.includes('.')) {
        const o = p.split('.').map(Number);
        return [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
      }
      return [Number.parseInt(p, 16)];
    });
  const hn = toNums(h);
  const tn = toNums(t);
  const zeros = tail === undefined ? [] : new Array<number>(8 - hn.length - tn.length).fill(0);
  return [...hn, ...zeros, ...tn];
}

/** RateLimit-* fields for any response on a limited route (allowed or not). */
export function rateLimitHeaders(r: LimitResult, policy: RateLimitPolicy): Record<string, string> {
  return {
    'ratelimit-limit': String(r.limit),
    'ratelimit-remaining': String(r.remaining),
    'ratelimit-reset': String(Math.max(0, Math.ceil(r.resetMs / 1000))),
    'ratelimit-policy': `${policy.rate};w=${periodMs(policy) / 1000};burst=${policy.burst}`,
  };
}

/** The 429 answer: RateLimit-* plus Retry-After (whole seconds, at least 1). */
export function tooManyRequests(
  r: LimitResult,
  policy: RateLimitPolicy,
  requestId: string,
): { status: 429; headers: Record<string, string>; body: string } {
  return {
    status: 429,
    headers: {
      ...rateLimitHeaders(r, policy),
      'retry-after': String(Math.max(1, Math.ceil(r.retryAfterMs / 1000))),
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      'x-request-id': requestId,
    },
    body: `too many requests (request id ${requestId})\n`,
  };
}
