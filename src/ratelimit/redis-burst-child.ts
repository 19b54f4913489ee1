// Test helper run as a separate process by redis-limiter.test.ts: one replica hammering a shared RedisLimiter.
// argv: <redis port> <limiter name> <policy JSON> <start at (epoch ms)> <requests> <duration ms>
// Sends requests one after another (bounded by both the count and the duration) from `start at`; prints one JSON
// line: { allowed, denied, failed, first, last } with first/last as epoch ms.
import { RedisLimiter } from './redis-limiter.ts';
import type { RateLimitPolicy } from './token-bucket.ts';

const [port, name, policyJson, startAt, requests, durationMs] = process.argv.slice(2);
const policy = JSON.parse(policyJson!) as RateLimitPolicy;
const limiter = new RedisLimiter({
  policy,
  name: name!,
  redis: { port: Number(port), commandTimeoutMs: 1000 },
  failMode: 'closed',
});
// Connect before the start line so both replicas begin on equal terms.
await limiter.consume('warmup');
const wait = Number(startAt) - Date.now();
if (wait > 0) await new Promise((r) => setTimeout(r, wait));
let allowed = 0;
let denied = 0;
let failed = 0;
const first = Date.now();
const end = first + Number(durationMs);
let last = first;
for (let i = 0; i < Number(requests) && Date.now() < end; i++) {
  const r = await limiter.consume('shared-key');
  last = Date.now();
  if (r.source !== 'redis') failed++;
  else if (r.allowed) allowed++;
  else denied++;
}
limiter.close();
process.stdout.write(`${JSON.stringify({ allowed, denied, failed, first, last })}\n`);
