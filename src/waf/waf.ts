/**
 * The WAF: libmodsecurity v3 + OWASP CRS (Debian packages) behind the native addon. One ModSecurity transaction per
 * HTTP exchange: request head → streamed, bounded request body → response head → close. Two ways to drive it with
 * the same verdicts: synchronous (begin/write/end/close, simple callers and tests) and asynchronous
 * (beginAsync/endAsync/release, the proxy's hot path), where the rule evaluation runs on libuv's threadpool so the
 * event loop keeps serving other traffic and a second core is used.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { ErrorCode, SnigateError } from '../errors.ts';
import {
  loadAddon,
  type ModSecurityAddon,
  type NativeEngine,
  type NativeStep,
  type NativeTx,
} from './addon.ts';
import {
  BASE_DENY_RULES,
  CRS_BLOCKING_RULES,
  DEFAULT_CONTENT_TYPES,
  DEFAULT_METHODS,
  type ParanoiaLevel,
  ruleParts,
  validateRuleOptions,
  WafConfigError,
  type WafExclusions,
  type WafMode,
  type WafRuleOptions,
} from './rules.ts';

export const DEFAULT_CRS_DIR = '/usr/share/modsecurity-crs/rules';

export interface WafOptions {
  /** CRS paranoia level (default 1). */
  paranoia?: ParanoiaLevel;
  /** Inbound anomaly score threshold (default 5: one critical match blocks). */
  anomalyThreshold?: number;
  /** Outbound anomaly score threshold (default 4). */
  outboundThreshold?: number;
  /** 'block' (default): interventions answer 403. 'detect': rules run and log, requests are forwarded. */
  mode?: WafMode;
  exclusions?: WafExclusions;
  /** Request body bytes inspected (default 1 MiB). */
  requestBodyLimit?: number;
  /** A body over requestBodyLimit: 'reject' (default; 413 in block mode) or 'partial' (inspect the first part). */
  bodyLimitAction?: 'reject' | 'partial';
  allowedMethods?: string[];
  allowedContentTypes?: string[];
  /** Directory of the CRS rule files (default $SNIGATE_CRS_DIR or /usr/share/modsecurity-crs/rules). */
  crsDir?: string;
  /** Addon path (default native/modsecurity/build/modsecurity.node or $SNIGATE_MODSECURITY_ADDON). */
  addonPath?: string;
}

export type WafLoad = { available: true; waf: Waf } | { available: false; reason: string };

export interface WafRequestHead {
  /** ModSecurity transaction id; the proxy's request id (a UUID when absent). */
  requestId?: string;
  method: string;
  /** Request target as received: path and query, e.g. `/search?q=x`. */
  uri: string;
  /** `1.0`, `1.1` or `2.0` (Node's req.httpVersion). */
  httpVersion: string;
  /** Node's req.headers, or req.rawHeaders ([name, value, name, value, ...]). */
  headers: IncomingHttpHeaders | readonly string[];
  clientIp: string;
  clientPort: number;
  serverIp?: string;
  serverPort?: number;
}

export interface WafRequest extends WafRequestHead {
  body?: Uint8Array;
}

export interface WafMatch {
  id: number;
  /** 1-based ModSecurity phase (1 request headers, 2 request body, 3 response headers). */
  phase: number;
  severity: number;
  msg: string;
  /** Matched data, at most 256 bytes from the addon; the audit line clips it further. */
  data: string;
}

export interface WafVerdict {
  action: 'allow' | 'block';
  /** HTTP status to answer with when blocked (403, 400 for an unparsable body, 413 body over the limit); 0 when allowed. */
  status: number;
  mode: WafMode;
  /** Blocked, or (detection-only) would have been blocked. */
  wouldBlock: boolean;
  reason: 'anomaly-score' | 'rule' | 'body-too-large' | null;
  /** Every matched rule id, in match order (the blocking rule, e.g. 949110, last). */
  ruleIds: number[];
  /** `id: msg` per match. */
  messages: string[];
  matches: WafMatch[];
  droppedMatches: number;
  /** Total inbound (or outbound) anomaly score when the CRS reported it (threshold reached), else null. */
  anomalyScore: number | null;
}

const MAX_MATCHES = 64;
const BLOCKING = new Set([...CRS_BLOCKING_RULES, ...BASE_DENY_RULES]);

/** Whether the WAF can run here: for the start-up line and before accepting a config that asks for it. */
export function wafStatus(
  addonPath?: string,
  crsDir = process.env.SNIGATE_CRS_DIR ?? DEFAULT_CRS_DIR,
): { available: true; version: string } | { available: false; reason: string } {
  const a = loadAddon(addonPath);
  if (!a.ok) return { available: false, reason: a.reason };
  const files = crsFiles(crsDir);
  if (typeof files === 'string') return { available: false, reason: files };
  return { available: true, version: `${a.version}, OWASP CRS in ${crsDir}` };
}

/**
 * Builds a WAF engine. Invalid options throw WafConfigError (the config is wrong whatever the machine); a missing
 * addon, a missing CRS or rules ModSecurity refuses are `{ available: false, reason }`.
 */
export function loadWaf(opts: WafOptions = {}): WafLoad {
  const ro: WafRuleOptions = {
    paranoia: opts.paranoia ?? 1,
    anomalyThreshold: opts.anomalyThreshold ?? 5,
    outboundThreshold: opts.outboundThreshold ?? 4,
    mode: opts.mode ?? 'block',
    requestBodyLimit: opts.requestBodyLimit ?? 1 << 20,
    allowedMethods: opts.allowedMethods ?? DEFAULT_METHODS,
    allowedContentTypes: opts.allowedContentTypes ?? DEFAULT_CONTENT_TYPES,
    exclusions: opts.exclusions ?? {},
  };
  const problems = validateRuleOptions(ro);
  const bodyLimitAction = opts.bodyLimitAction ?? 'reject';
  if (bodyLimitAction !== 'reject' && bodyLimitAction !== 'partial')
    problems.push(`bodyLimitAction must be 'reject' or 'partial'`);
  if (problems.length > 0) throw new WafConfigError(problems);

  const a = loadAddon(opts.addonPath);
  if (!a.ok) return { available: false, reason: a.reason };
  const dir = opts.crsDir ?? process.env.SNIGATE_CRS_DIR ?? DEFAULT_CRS_DIR;
  const files = crsFiles(dir);
  if (typeof files === 'string') return { available: false, reason: files };
  const java = files.find((f) => /REQUEST-944-/.test(f));
  const crsHasLog4Shell = java !== undefined && /id:944150\b/.test(readFileSync(java, 'utf8'));
  let engine: NativeEngine;
  try {
    engine = a.addon.createEngine(ruleParts(ro, files, !crsHasLog4Shell));
  } catch (err) {
    if (err instanceof WafConfigError) throw err;
    return { available: false, reason: (err as Error).message };
  }
  return { available: true, waf: new Waf(a.addon, engine, ro, bodyLimitAction, a.version) };
}

/** For config loading: the WAF, or a config error saying why it cannot be had (never silently unprotected). */
export function requireWaf(load: WafLoad): Waf {
  if (load.available) return load.waf;
  throw new SnigateError(
    ErrorCode.ConfigInvalid,
    `the configuration enables the WAF, but it is unavailable on this machine: ${load.reason}`,
  );
}

function crsFiles(dir: string): string[] | string {
  if (!existsSync(dir))
    return `OWASP CRS not found at ${dir} (apt-get install modsecurity-crs, or set crsDir)`;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.conf'))
    .map((f) => join(dir, f));
  if (!files.some((f) => f.endsWith('REQUEST-949-BLOCKING-EVALUATION.conf')))
    return `no CRS rule files (REQUEST-949-BLOCKING-EVALUATION.conf) in ${dir}`;
  return files;
}

export class Waf {
  readonly mode: WafMode;
  readonly options: Readonly<WafRuleOptions>;
  readonly bodyLimitAction: 'reject' | 'partial';
  readonly version: string;
  readonly #addon: ModSecurityAddon;
  readonly #engine: NativeEngine;

  constructor(
    addon: ModSecurityAddon,
    engine: NativeEngine,
    options: WafRuleOptions,
    bodyLimitAction: 'reject' | 'partial',
    version: string,
  ) {
    this.#addon = addon;
    this.#engine = engine;
    this.options = options;
    this.mode = options.mode;
    this.bodyLimitAction = bodyLimitAction;
    this.version = version;
  }

  /** Starts a transaction and inspects the request head (phase 1); see WafTransaction. */
  begin(req: WafRequestHead): WafTransaction {
    return new WafTransaction(
      this.#addon,
      this.#addon.newTransaction(this.#engine, req.requestId ?? randomUUID()),
      req,
      this,
    );
  }

  /**
   * begin() with the head inspected on libuv's threadpool (connection, URI and headers in one work item). Rejects
   * (with the transaction released) when the addon fails.
   */
  async beginAsync(req: WafRequestHead): Promise<WafTransaction> {
    // Deferred: the ModSecurity transaction itself is constructed on the threadpool too, by the head work item.
    const tx = new WafTransaction(
      this.#addon,
      this.#addon.newTransaction(this.#engine, req.requestId ?? randomUUID(), true),
      null,
      this,
    );
    await tx.headAsync(req);
    return tx;
  }

  /** inspect() on the threadpool. */
  async inspectAsync(req: WafRequest): Promise<WafVerdict> {
    const tx = await this.beginAsync(req);
    try {
      if (tx.verdict().action === 'block') return tx.verdict();
      return await tx.endAsync(req.body !== undefined && req.body.length > 0 ? [req.body] : []);
    } finally {
      tx.release();
    }
  }

  /** Whole request at once: head, body, end. */
  inspect(req: WafRequest): WafVerdict {
    const tx = this.begin(req);
    try {
      if (tx.verdict().action === 'block') return tx.verdict();
      if (req.body !== undefined && req.body.length > 0) {
        if (tx.write(req.body).action === 'block') return tx.verdict();
      }
      return tx.end();
    } finally {
      tx.close();
    }
  }
}

/**
 * One exchange. Call in order: (constructor = request head) → write(chunk)* → end() → response()? → close().
 * Async order: Waf.beginAsync (request head) → endAsync(chunks) → release().
 * After any call, verdict().action === 'block' means: stop, answer verdict().status, then close().
 * close() or release() must always be called (it runs ModSecurity's logging phase and frees the transaction).
 * At most one native call runs per transaction: async steps are chained, and a sync call while one runs throws.
 */
export class WafTransaction {
  readonly #addon: ModSecurityAddon;
  readonly #waf: Waf;
  #tx: NativeTx | null;
  readonly #matches: WafMatch[] = [];
  #dropped = 0;
  #blocked: { status: number; ruleId: number; ruleMsg: string } | null = null;
  #bodyBytes = 0;
  #overLimit = false;
  #ended = false;
  /** The tail of this transaction's async work: the next item starts after it (one work item per tx at a time). */
  #chain: Promise<unknown> = Promise.resolve();
  #inFlight = 0;

  /** `req` null: the head is inspected later by headAsync (Waf.beginAsync). */
  constructor(addon: ModSecurityAddon, tx: NativeTx, req: WafRequestHead | null, waf: Waf) {
    this.#addon = addon;
    this.#tx = tx;
    this.#waf = waf;
    if (req === null) return;
    try {
      this.#absorb(
        addon.processConnection(
          tx,
          req.clientIp,
          req.clientPort,
          req.serverIp ?? '127.0.0.1',
          req.serverPort ?? 0,
        ),
      );
      if (this.#blocked === null)
        this.#absorb(addon.processUri(tx, req.uri, req.method, normalizeVersion(req.httpVersion)));
      if (this.#blocked === null) this.#absorb(addon.processRequestHeaders(tx, headerPairs(req.headers)));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** The request head on the threadpool; for Waf.beginAsync. On failure the transaction is released and it rejects. */
  async headAsync(req: WafRequestHead): Promise<void> {
    try {
      const steps = await this.#run((tx) =>
        this.#addon.beginAsync(
          tx,
          req.clientIp,
          req.clientPort,
          req.serverIp ?? '127.0.0.1',
          req.serverPort ?? 0,
          req.uri,
          req.method,
          normalizeVersion(req.httpVersion),
          headerPairs(req.headers),
        ),
      );
      // The addon stops after the first disruptive step, as the sync constructor does.
      for (const s of steps ?? []) this.#absorb(s);
    } catch (err) {
      this.release();
      throw err;
    }
  }

  /**
   * write(chunk) for each chunk, then end(), as one work item on the threadpool: the same limits and verdict (413
   * beyond requestBodyLimit with 'reject', phase 2 skipped once blocked).
   */
  async endAsync(chunks: readonly Uint8Array[]): Promise<WafVerdict> {
    if (this.#tx === null || this.#blocked !== null || this.#ended) {
      this.#ended = true;
      return this.verdict();
    }
    this.#ended = true;
    const limit = this.#waf.options.requestBodyLimit;
    const parts: Uint8Array[] = [];
    let reject413 = false;
    for (const chunk of chunks) {
      const room = limit - Math.min(this.#bodyBytes, limit);
      this.#bodyBytes += chunk.length;
      if (room > 0) parts.push(chunk.length <= room ? chunk : chunk.subarray(0, room));
      if (this.#bodyBytes > limit && !this.#overLimit) {
        this.#overLimit = true;
        if (this.#waf.bodyLimitAction === 'reject' && this.#waf.mode === 'block') {
          // write() stops taking chunks once blocked; end() then skips phase 2.
          reject413 = true;
          break;
        }
      }
    }
    const steps = await this.#run((tx) => this.#addon.bodyAsync(tx, parts, !reject413));
    for (const s of steps ?? []) this.#absorb(s);
    if (reject413 && this.#blocked === null)
      this.#blocked = { status: 413, ruleId: 0, ruleMsg: `request body over ${limit} bytes` };
    return this.verdict();
  }

  /**
   * Logging phase and release on the threadpool, after any work item still running (fire and forget: safe to call
   * when the client went away mid-inspection); idempotent.
   */
  release(): void {
    const tx = this.#tx;
    if (tx === null) return;
    this.#tx = null;
    // A failure here has nobody to report to: the transaction is then freed by its finalizer, without logging.
    const finish = (): Promise<unknown> => this.#addon.finishAsync(tx).catch(() => {});
    if (this.#inFlight === 0) {
      try {
        finish();
      } catch {}
    } else this.#chain = this.#chain.then(finish);
  }

  /**
   * Starts one native work item now when the transaction is idle (so the addon marks it busy at once), else after
   * the previous one; undefined when the transaction was released meanwhile.
   */
  #run<T>(fn: (tx: NativeTx) => Promise<T>): Promise<T | undefined> {
    const start = (): Promise<T> | undefined => (this.#tx === null ? undefined : fn(this.#tx));
    let p: Promise<T | undefined>;
    if (this.#inFlight === 0) {
      try {
        p = Promise.resolve(start());
      } catch (err) {
        p = Promise.reject(err);
      }
    } else {
      p = this.#chain.then(start);
    }
    this.#inFlight++;
    this.#chain = p.then(
      () => this.#inFlight--,
      () => this.#inFlight--,
    );
    return p;
  }

  /** Request body bytes seen so far (including any beyond the inspection limit). */
  get bodyBytes(): number {
    return this.#bodyBytes;
  }

  /** Feeds a request body chunk. Bytes beyond requestBodyLimit are not inspected; with bodyLimitAction 'reject' they block (413). */
  write(chunk: Uint8Array): WafVerdict {
    if (this.#tx === null || this.#blocked !== null || this.#ended) return this.verdict();
    const limit = this.#waf.options.requestBodyLimit;
    const room = limit - Math.min(this.#bodyBytes, limit);
    this.#bodyBytes += chunk.length;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.#absorb(this.#addon.appendRequestBody(this.#tx, part));
    }
    if (this.#bodyBytes > limit && !this.#overLimit) {
      this.#overLimit = true;
      if (this.#waf.bodyLimitAction === 'reject' && this.#waf.mode === 'block' && this.#blocked === null)
        this.#blocked = { status: 413, ruleId: 0, ruleMsg: `request body over ${limit} bytes` };
    }
    return this.verdict();
  }

  /** End of the request body (or no body): phase 2, where the CRS decides on the inbound anomaly score. */
  end(): WafVerdict {
    if (this.#tx !== null && this.#blocked === null && !this.#ended) {
      this.#ended = true;
      this.#absorb(this.#addon.processRequestBody(this.#tx));
    }
    this.#ended = true;
    return this.verdict();
  }

  /** Response head (phase 3). `headers`: Node's res.getHeaders() or raw pairs. */
  response(
    status: number,
    headers: IncomingHttpHeaders | readonly string[],
    httpVersion = '1.1',
  ): WafVerdict {
    if (!this.#ended) this.end();
    if (this.#tx !== null && this.#blocked === null)
      this.#absorb(
        this.#addon.processResponseHeaders(
          this.#tx,
          status,
          `HTTP/${normalizeVersion(httpVersion)}`,
          headerPairs(headers),
        ),
      );
    return this.verdict();
  }

  /** Logging phase and release; idempotent. Deferred to the threadpool (release) while async work is pending. */
  close(): void {
    if (this.#inFlight > 0) {
      this.release();
      return;
    }
    const tx = this.#tx;
    if (tx === null) return;
    this.#tx = null;
    this.#addon.finish(tx);
  }

  verdict(): WafVerdict {
    const matches = this.#matches;
    const ruleIds = matches.map((m) => m.id);
    const b = this.#blocked;
    if (b !== null && b.ruleId !== 0 && !ruleIds.includes(b.ruleId)) ruleIds.push(b.ruleId);
    const scoreMsg =
      b !== null && CRS_BLOCKING_RULES.includes(b.ruleId)
        ? b.ruleMsg
        : matches.find((m) => CRS_BLOCKING_RULES.includes(m.id))?.msg;
    const score = scoreMsg === undefined ? null : /Total Score: (\d+)/.exec(scoreMsg);
    const overReject = this.#overLimit && this.#waf.bodyLimitAction === 'reject';
    const wouldBlock = b !== null || overReject || ruleIds.some((id) => BLOCKING.has(id));
    let reason: WafVerdict['reason'] = null;
    if (wouldBlock) {
      const blockingId = b?.ruleId ?? ruleIds.find((id) => BLOCKING.has(id));
      reason =
        b?.status === 413 || (blockingId === undefined && overReject)
          ? 'body-too-large'
          : blockingId !== undefined && CRS_BLOCKING_RULES.includes(blockingId)
            ? 'anomaly-score'
            : 'rule';
    }
    const messages = matches.map((m) => `${m.id}: ${m.msg}`);
    if (b !== null && b.ruleId !== 0 && !matches.some((m) => m.id === b.ruleId))
      messages.push(`${b.ruleId}: ${b.ruleMsg}`);
    return {
      action: b !== null ? 'block' : 'allow',
      status: b === null ? 0 : b.status >= 400 && b.status <= 599 ? b.status : 403,
      mode: this.#waf.mode,
      wouldBlock,
      reason,
      ruleIds,
      messages,
      matches: [...matches],
      droppedMatches: this.#dropped,
      anomalyScore: score?.[1] === undefined ? null : Number(score[1]),
    };
  }

  #absorb(step: NativeStep): void {
    this.#dropped += step.dropped;
    for (const m of step.messages) {
      if (this.#matches.length >= MAX_MATCHES) {
        this.#dropped++;
        continue;
      }
      this.#matches.push({ id: m.id, phase: m.phase + 1, severity: m.severity, msg: m.msg, data: m.data });
    }
    if (step.disruptive && this.#blocked === null)
      this.#blocked = { status: step.status, ruleId: step.ruleId, ruleMsg: step.ruleMsg };
  }
}

/** The answer to a blocked request: status, a request id the client can quote, no detail about the rules. */
export function blockResponse(
  v: WafVerdict,
  requestId: string,
): { status: number; headers: Record<string, string>; body: string } {
  const status = v.status === 0 ? 403 : v.status;
  const what = status === 413 ? 'request body too large' : status === 400 ? 'bad request' : 'forbidden';
  return {
    status,
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      'x-request-id': requestId,
    },
    body: `${what} (request id ${requestId})\n`,
  };
}

function normalizeVersion(v: string): string {
  if (v === '2' || v === '2.0') return '2.0';
  if (v === '1.0') return '1.0';
  if (v === '3' || v === '3.0') return '3.0';
  return '1.1';
}

/** Flattens headers to [name, value, ...]; HTTP/2 pseudo-headers are dropped (`:authority` becomes Host). */
export function headerPairs(h: IncomingHttpHeaders | readonly string[]): string[] {
  const out: string[] = [];
  let authority: string | undefined;
  let hasHost = false;
  const add = (name: string, value: string) => {
    if (name.startsWith(':')) {
      if (name === ':authority') authority = value;
      return;
    }
    if (name.toLowerCase() === 'host') hasHost = true;
    out.push(name, value);
  };
  if (Array.isArray(h)) {
    const raw = h as readonly string[];
    for (let i = 0; i + 1 < raw.length; i += 2) add(raw[i]!, raw[i + 1]!);
  } else {
    for (const [name, value] of Object.entries(h as IncomingHttpHeaders)) {
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) add(name, v);
      else add(name, String(value));
    }
  }
  if (!hasHost && authority !== undefined) out.push('Host', authority);
  return out;
}
