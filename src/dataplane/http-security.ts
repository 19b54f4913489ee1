/**
 * L7 protection at the data-plane edge: builds, from the plain HttpSecurity data in the table, the objects that
 * enforce it (WAF engines, rate limiters, address lists, in-flight counters), cached per rule object and shared by
 * identical settings across reloads. prepare() runs before a table is applied: a config that asks for a WAF this
 * machine cannot run is refused there (the last good config keeps serving), never served unprotected.
 */
import { BlockList, isIP, isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { clientNet, type RateLimitKeySpec } from '../ratelimit/headers.ts';
import { RedisLimiter } from '../ratelimit/redis-limiter.ts';
import { type RateLimiter, type RateLimitPolicy, TokenBucketLimiter } from '../ratelimit/token-bucket.ts';
import type { HttpRule, HttpSecurity, RateLimitSettings, RoutingTable, WafSettings } from '../table/types.ts';
import type { WafExclusions } from '../waf/rules.ts';
import { loadWaf, requireWaf, type Waf } from '../waf/waf.ts';
import { unmapV4 } from './http-headers.ts';

/** Request body bytes the WAF inspects (and buffers) at most; bodies allowed beyond it are inspected in part. */
export const WAF_DEFAULT_BODY_LIMIT = 1 << 20;
export const WAF_MAX_BODY_BUFFER = 16 << 20;

export interface SecurityRuntimeOptions {
  logger: Logger;
  /** The libmodsecurity addon (default: the built one, or $SNIGATE_MODSECURITY_ADDON). */
  wafAddonPath?: string;
  /** OWASP CRS rules directory (default $SNIGATE_CRS_DIR or the Debian package's). */
  crsDir?: string;
}

export interface CompiledSecurity {
  cfg: HttpSecurity;
  allow: BlockList | null;
  deny: BlockList | null;
  trusted: BlockList | null;
  waf: Waf | null;
  /** The rule asks for a WAF that cannot run: its requests get 503 (prepare() refuses such a table first). */
  wafError: string | null;
  wafBodyLimit: number;
  wafBodyAction: 'reject' | 'partial';
  limiter: { limiter: RateLimiter; policy: RateLimitPolicy; key: RateLimitKeySpec } | null;
  concurrency: { limit: number; counts: Map<string, number> } | null;
  /** Anything beyond the synchronous address/size checks (rate limit, concurrency, WAF). */
  guarded: boolean;
}

export class SecurityRuntime {
  readonly #o: SecurityRuntimeOptions;
  readonly #rules = new WeakMap<HttpRule, CompiledSecurity>();
  readonly #wafs = new Map<string, { waf: Waf } | { error: string }>();
  readonly #limiters = new Map<string, { limiter: RateLimiter; gen: number }>();
  readonly #counters = new Map<string, Map<string, number>>();
  #gen = 0;

  constructor(o: SecurityRuntimeOptions) {
    this.#o = o;
  }

  /**
   * Builds everything the table's rules need; returns the reasons it cannot be served (empty: fine). Limiters no
   * table of the last two generations uses are closed.
   */
  prepare(table: RoutingTable): string[] {
    this.#gen++;
    const errors = new Set<string>();
    for (const b of table.binds)
      for (const l of b.listeners)
        for (const vh of l.http ?? [])
          for (const rule of vh.rules) {
            if (rule.security === undefined) continue;
            const c = this.forRule(rule);
            if (c?.wafError)
              errors.add(`${rule.route.kind} ${rule.route.namespace}/${rule.route.name}: ${c.wafError}`);
          }
    for (const [k, v] of this.#limiters) {
      if (v.gen >= this.#gen - 1) continue;
      if (v.limiter instanceof RedisLimiter) v.limiter.close();
      this.#limiters.delete(k);
    }
    return [...errors];
  }

  /** The compiled settings of a rule (null without security); built on first use. */
  forRule(rule: HttpRule): CompiledSecurity | null {
    const cfg = rule.security;
    if (cfg === undefined) return null;
    let c = this.#rules.get(rule);
    if (c === undefined) {
      c = this.#compile(cfg);
      this.#rules.set(rule, c);
    } else if (c.limiter !== null) this.#touch(cfg.rateLimit!);
    return c;
  }

  close(): void {
    for (const v of this.#limiters.values()) if (v.limiter instanceof RedisLimiter) v.limiter.close();
    this.#limiters.clear();
  }

  #compile(cfg: HttpSecurity): CompiledSecurity {
    let waf: Waf | null = null;
    let wafError: string | null = null;
    const wafBodyLimit = Math.min(cfg.maxBodyBytes ?? WAF_DEFAULT_BODY_LIMIT, WAF_MAX_BODY_BUFFER);
    const wafBodyAction = (cfg.maxBodyBytes ?? WAF_DEFAULT_BODY_LIMIT) > wafBodyLimit ? 'partial' : 'reject';
    if (cfg.waf?.enabled) {
      const w = this.#waf(cfg.waf, wafBodyLimit, wafBodyAction);
      if ('waf' in w) waf = w.waf;
      else wafError = w.error;
    }
    let limiter: CompiledSecurity['limiter'] = null;
    if (cfg.rateLimit !== undefined) {
      const policy: RateLimitPolicy = {
        rate: cfg.rateLimit.rate,
        period: cfg.rateLimit.period,
        burst: cfg.rateLimit.burst,
      };
      limiter = { limiter: this.#touch(cfg.rateLimit), policy, key: cfg.rateLimit.key };
    }
    let concurrency: CompiledSecurity['concurrency'] = null;
    if (cfg.concurrency !== undefined) {
      let counts = this.#counters.get(cfg.concurrency.scope);
      if (counts === undefined) this.#counters.set(cfg.concurrency.scope, (counts = new Map()));
      concurrency = { limit: cfg.concurrency.perClientIp, counts };
    }
    const allow = cfg.ipAccess?.allow.length ? blockList(cfg.ipAccess.allow) : null;
    const deny = cfg.ipAccess?.deny.length ? blockList(cfg.ipAccess.deny) : null;
    const trusted = cfg.xffTrustedCidrs?.length ? blockList(cfg.xffTrustedCidrs) : null;
    return {
      cfg,
      allow,
      deny,
      trusted,
      waf,
      wafError,
      wafBodyLimit,
      wafBodyAction,
      limiter,
      concurrency,
      guarded: waf !== null || wafError !== null || limiter !== null || concurrency !== null,
    };
  }

  #waf(
    s: WafSettings,
    requestBodyLimit: number,
    bodyLimitAction: 'reject' | 'partial',
  ): { waf: Waf } | { error: string } {
    const key = JSON.stringify([
      s.mode,
      s.paranoia,
      s.anomalyThreshold,
      s.exclusions,
      requestBodyLimit,
      bodyLimitAction,
    ]);
    let hit = this.#wafs.get(key);
    if (hit === undefined) {
      const exclusions: WafExclusions = {
        ...(s.exclusions.ruleIds.length > 0 ? { ruleIds: s.exclusions.ruleIds } : {}),
        paths: s.exclusions.paths,
        targets: s.exclusions.targets,
      };
      try {
        const waf = requireWaf(
          loadWaf({
            paranoia: s.paranoia,
            anomalyThreshold: s.anomalyThreshold,
            mode: s.mode,
            exclusions,
            requestBodyLimit,
            bodyLimitAction,
            ...(this.#o.wafAddonPath !== undefined ? { addonPath: this.#o.wafAddonPath } : {}),
            ...(this.#o.crsDir !== undefined ? { crsDir: this.#o.crsDir } : {}),
          }),
        );
        hit = { waf };
        this.#o.logger.info(
          { mode: s.mode, paranoia: s.paranoia, anomalyThreshold: s.anomalyThreshold, version: waf.version },
          'waf engine loaded',
        );
      } catch (err) {
        hit = { error: (err as Error).message };
      }
      this.#wafs.set(key, hit);
    }
    return hit;
  }

  #touch(s: RateLimitSettings): RateLimiter {
    const key = JSON.stringify(s);
    const hit = this.#limiters.get(key);
    if (hit !== undefined) {
      hit.gen = this.#gen;
      return hit.limiter;
    }
    const policy: RateLimitPolicy = { rate: s.rate, period: s.period, burst: s.burst };
    let limiter: RateLimiter;
    if (s.backend.type === 'redis') {
      const { host, port } = splitAddress(s.backend.address);
      const logger = this.#o.logger;
      const address = s.backend.address;
      limiter = new RedisLimiter({
        policy,
        name: s.scope,
        redis: { host, port },
        failMode: s.backend.failMode,
        onRedisState: (up, reason) =>
          up
            ? logger.info({ redis: address }, 'rate limit redis reachable again')
            : logger.error(
                { redis: address, reason, failMode: s.backend.type === 'redis' ? s.backend.failMode : null },
                'rate limit redis unreachable',
              ),
      });
    } else limiter = new TokenBucketLimiter({ policy });
    this.#limiters.set(key, { limiter, gen: this.#gen });
    return limiter;
  }
}

function splitAddress(a: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(a);
  return m ? { host: m[1] ?? m[2]!, port: Number(m[3]) } : { host: a, port: 6379 };
}

export function blockList(ranges: string[]): BlockList {
  const bl = new BlockList();
  for (const r of ranges) {
    const [addr, bits] = r.split('/');
    const v = isIP(addr ?? '');
    if (v === 0) continue;
    const type = v === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) bl.addAddress(addr!, type);
    else bl.addSubnet(addr!, Number(bits), type);
  }
  return bl;
}

export function inList(bl: BlockList, address: string): boolean {
  const a = unmapV4(address);
  const v = isIP(a);
  return v !== 0 && bl.check(a, v === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client address: the peer's, unless the peer is a trusted proxy; then X-Forwarded-For is read from the right,
 * skipping trusted hops, and the first untrusted address is the client (an unparsable entry stops the walk).
 */
export function clientAddress(
  sec: CompiledSecurity,
  peer: string,
  xff: string | string[] | undefined,
): string {
  const p = unmapV4(peer);
  if (sec.trusted === null || xff === undefined || !inList(sec.trusted, p)) return p;
  const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',').map((s) => s.trim());
  let client = p;
  for (let i = hops.length - 1; i >= 0; i--) {
    const h = unmapV4(hops[i]!);
    if (isIP(h) === 0) break;
    client = h;
    if (!inList(sec.trusted, h)) break;
  }
  return client;
}

/** Deny wins; a non-empty allow list admits only its members. */
export function addressRefused(sec: CompiledSecurity, client: string): boolean {
  if (sec.deny !== null && inList(sec.deny, client)) return true;
  return sec.allow !== null && !inList(sec.allow, client);
}

/** Header bytes as sent: names, values, and `: ` plus CRLF per field. */
export function headerBytes(raw: readonly string[]): number {
  let n = 0;
  for (const s of raw) n += s.length;
  return n + raw.length * 2;
}

/** The key of a concurrency counter: the client's address (IPv6 by /64, like the rate limiter). */
export function concurrencyKey(client: string): string {
  return isIPv6(client) ? clientNet(client, 64) : client;
}
