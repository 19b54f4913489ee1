import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientNet, rateLimitHeaders, rateLimitKey, tooManyRequests } from './headers.ts';
import { TokenBucketLimiter } from './token-bucket.ts';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('burst, then the steady rate (injected clock; tolerance: exact to within one token)', () => {
  const c = clock();
  const l = new TokenBucketLimiter({ policy: { rate: 10, period: 'second', burst: 20 }, now: c.now });
  // A bounded burst of 100 at one instant: exactly the burst gets through.
  let allowed = 0;
  for (let i = 0; i < 100; i++) if (l.consume('k').allowed) allowed++;
  assert.equal(allowed, 20);
  // Then 10 s of one request every 10 ms (10x the rate): 10/s gets through.
  allowed = 0;
  for (let i = 0; i < 1000; i++) {
    c.advance(10);
    if (l.consume('k').allowed) allowed++;
  }
  assert.ok(Math.abs(allowed - 100) <= 1, `${allowed} allowed in 10 s at 10/s`);
  // A quiet spell refills up to the burst, not beyond.
  c.advance(60_000);
  allowed = 0;
  for (let i = 0; i < 50; i++) if (l.consume('k').allowed) allowed++;
  assert.equal(allowed, 20);
});

test('irregular arrivals over a minute never exceed burst + rate x elapsed', () => {
  const c = clock();
  const l = new TokenBucketLimiter({ policy: { rate: 120, period: 'minute', burst: 5 }, now: c.now });
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let allowed = 0;
  let elapsed = 0;
  for (let i = 0; i < 5000 && elapsed < 60_000; i++) {
    const step = Math.floor(rnd() * 40);
    c.advance(step);
    elapsed += step;
    if (l.consume('k').allowed) allowed++;
  }
  const max = 5 + (120 / 60_000) * elapsed;
  assert.ok(allowed <= max + 1e-9, `${allowed} > ${max}`);
  // Demand (~50/s) far above the rate (2/s): the limiter admits close to the maximum.
  assert.ok(allowed >= max - 2, `${allowed} << ${max}`);
});

test('retry-after, remaining and reset are exact', () => {
  const c = clock();
  const l = new TokenBucketLimiter({ policy: { rate: 10, period: 'second', burst: 3 }, now: c.now });
  assert.deepEqual(l.consume('k'), {
    allowed: true,
    limit: 3,
    remaining: 2,
    resetMs: 100,
    retryAfterMs: 0,
    source: 'local',
  });
  l.consume('k');
  l.consume('k');
  const denied = l.consume('k');
  assert.equal(denied.allowed, false);
  assert.equal(denied.retryAfterMs, 100);
  assert.equal(denied.resetMs, 300);
  c.advance(99);
  assert.equal(l.consume('k').allowed, false);
  c.advance(1);
  assert.equal(l.consume('k').allowed, true);
  // Keys are independent; a cost above one takes several tokens.
  assert.equal(l.consume('other', 3).remaining, 0);
  assert.equal(l.consume('other').allowed, false);
});

test('memory is bounded: idle (refilled) keys are evicted, and never more than maxKeys', () => {
  const c = clock();
  const l = new TokenBucketLimiter({
    policy: { rate: 10, period: 'second', burst: 10 },
    maxKeys: 1000,
    now: c.now,
  });
  for (let i = 0; i < 10_000; i++) l.consume(`ip-${i}`);
  assert.ok(l.size <= 1000, `${l.size}`);
  // After a full refill every old key is idle; new traffic sheds two old keys per request.
  c.advance(2000);
  for (let i = 0; i < 600; i++) l.consume(`new-${i}`);
  assert.ok(l.size <= 600 + 1, `${l.size}`);
  assert.throws(() => new TokenBucketLimiter({ policy: { rate: 0, period: 'second', burst: 1 } }));
  assert.throws(() => new TokenBucketLimiter({ policy: { rate: 1, period: 'day' as 'second', burst: 1 } }));
});

test('429 and RateLimit-* headers', () => {
  const policy = { rate: 10, period: 'second' as const, burst: 20 };
  const r = {
    allowed: false,
    limit: 20,
    remaining: 0,
    resetMs: 2000,
    retryAfterMs: 100,
    source: 'local' as const,
  };
  const a = tooManyRequests(r, policy, 'req-1');
  assert.equal(a.status, 429);
  assert.deepEqual(a.headers, {
    'ratelimit-limit': '20',
    'ratelimit-remaining': '0',
    'ratelimit-reset': '2',
    'ratelimit-policy': '10;w=1;burst=20',
    'retry-after': '1',
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'x-request-id': 'req-1',
  });
  assert.match(a.body, /req-1/);
  assert.equal(
    rateLimitHeaders({ ...r, resetMs: 1, remaining: 19 }, { rate: 600, period: 'minute', burst: 20 })[
      'ratelimit-policy'
    ],
    '600;w=60;burst=20',
  );
  assert.equal(tooManyRequests({ ...r, retryAfterMs: 2500 }, policy, 'x').headers['retry-after'], '3');
});

test('keys: client IP (IPv6 by /64), route, header with fallback to the client', () => {
  const ctx = {
    clientIp: '2001:db8:1:2:aaaa:bbbb:cccc:dddd',
    route: 'HTTPRoute/default/api',
    headers: { 'x-api-key': 'k1' },
  };
  assert.equal(rateLimitKey({ by: 'client-ip' }, ctx), 'ip:2001:db8:1:2:0:0:0:0/64');
  assert.equal(
    rateLimitKey({ by: 'client-ip', ipv6Prefix: 128 }, ctx),
    'ip:2001:db8:1:2:aaaa:bbbb:cccc:dddd',
  );
  assert.equal(rateLimitKey({ by: 'route' }, ctx), 'route:HTTPRoute/default/api');
  assert.equal(rateLimitKey({ by: 'header', name: 'X-API-Key' }, ctx), 'h:x-api-key:k1');
  assert.equal(
    rateLimitKey({ by: 'header', name: 'X-API-Key' }, { ...ctx, headers: {} }),
    'ip:2001:db8:1:2:0:0:0:0/64',
  );
  assert.equal(clientNet('::ffff:10.1.2.3', 64), '10.1.2.3');
  assert.equal(clientNet('10.1.2.3', 64), '10.1.2.3');
  assert.equal(clientNet('::1', 64), '0:0:0:0:0:0:0:0/64');
  assert.equal(clientNet('fe80::1:2:3:4', 48), 'fe80:0:0:0:0:0:0:0/48');
});
