/**
 * The HTTP proxy behind terminating (HTTPS) and plain HTTP listeners: route, filters, weighted backend choice,
 * streaming forward through keep-alive undici pools, timeouts, and one access-log record per request.
 * HTTP/1.1 and HTTP/2 (compatibility API) requests take the same path; WebSocket upgrades are in http-websocket.ts.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Duplex, PassThrough } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { rateLimitHeaders, rateLimitKey, tooManyRequests } from '../ratelimit/headers.ts';
import type { LimitResult } from '../ratelimit/token-bucket.ts';
import type { Backend, HttpBackend, HttpRule } from '../table/types.ts';
import { auditLine } from '../waf/audit.ts';
import { blockResponse, type WafTransaction, type WafVerdict } from '../waf/waf.ts';
import { type AccessRecord, logAccess, queryKeys } from './access-log.ts';
import { Balancer, type PickedEndpoint } from './balancer.ts';
import { hostPort } from './conn-log.ts';
import type { DataPlaneEvents } from './events.ts';
import type { HealthView } from './health.ts';
import { BodySource, BodyTooLarge } from './http-body.ts';
import { applyFilters, type RequestPlan } from './http-filters.ts';
import {
  addForwardingHeaders,
  downstreamResponseHeaders,
  newRequestId,
  toUndiciHeaderList,
  unmapV4,
  upstreamRequestHeaders,
} from './http-headers.ts';
import { Mirrors } from './http-mirror.ts';
import {
  chooseListener,
  type ListenerChoice,
  type MatchInput,
  normalizeHost,
  normalizePath,
  routerFor,
} from './http-router.ts';
import {
  addressRefused,
  type CompiledSecurity,
  clientAddress,
  concurrencyKey,
  headerBytes,
  SecurityRuntime,
} from './http-security.ts';
import type { AnyRequest, AnyResponse, HttpHandler, RequestContext } from './http-types.ts';
import { type Lease, type PoolOptions, UpstreamPools } from './http-upstream.ts';
import { handleUpgrade } from './http-websocket.ts';

/** The parts of HealthRegistry the proxy uses: pick healthy endpoints, report connect outcomes. */
export interface PassiveHealth extends HealthView {
  reportFailure(key: string, threshold: number, error: string): void;
  reportSuccess(key: string): void;
}

export interface HttpEvents extends Partial<DataPlaneEvents> {
  /** Exactly once per request, with the record that is also logged. */
  request?(record: AccessRecord): void;
}

export interface HttpHandlerOptions {
  logger: Logger;
  health: PassiveHealth;
  events?: HttpEvents;
  random?: () => number;
  pools?: PoolOptions;
  /** WAF engines, rate limiters, address lists for rules with `security` (default: one of its own). */
  security?: SecurityRuntime;
}

/** What the proxy answers itself, or where it forwards. */
export type Decision =
  | { kind: 'local'; status: number; body: string; error: string; headers?: Record<string, string> }
  | {
      kind: 'forward';
      plan: RequestPlan;
      rule: HttpRule;
      backend: HttpBackend;
      picked: PickedEndpoint;
      balancer: Balancer;
    };

/** A request in flight: its log record and the levers to stop it. */
export interface Exchange {
  ctx: RequestContext;
  record: AccessRecord;
  start: number;
  requestId: string;
  logged: boolean;
  /** The rule's protection (resolve sets it) and the client address it judges (X-Forwarded-For when trusted). */
  security?: CompiledSecurity | null;
  clientIp?: string;
}

/** What the protection checks before forwarding decided: answer locally, or go on (with a replayed body). */
export type GuardResult =
  | { kind: 'answer'; answer: LocalAnswer }
  | { kind: 'pass'; body: PassThrough | undefined };

/** Shared by the request and upgrade paths. */
export interface ProxyCore {
  readonly logger: Logger;
  readonly health: PassiveHealth;
  readonly events: HttpEvents;
  readonly random: () => number;
  readonly pools: UpstreamPools;
  resolve(x: Exchange, method: string, authority: string | undefined, url: string, req: AnyRequest): Decision;
  /** Rate limit, concurrency and WAF for a forward decision (x.security.guarded); `onClose` runs at the end. */
  guard(
    x: Exchange,
    d: Extract<Decision, { kind: 'forward' }>,
    req: AnyRequest,
    onClose: (fn: () => void) => void,
  ): Promise<GuardResult>;
  finish(x: Exchange): void;
  connectFailed(backend: Backend, key: string, code: string): void;
}

/** Minimal common surface of ServerResponse and Http2ServerResponse. */
interface Res {
  headersSent: boolean;
  statusCode: number;
  writeHead(status: number, headers?: Record<string, string | string[]> | string[]): unknown;
  write(chunk: Buffer): boolean;
  end(data?: string): unknown;
  on(event: string, fn: (...args: unknown[]) => void): unknown;
  once(event: string, fn: (...args: unknown[]) => void): unknown;
  destroy?(): void;
  stream?: Http2ServerResponse['stream'];
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Errors that mean "nothing reached the backend": the endpoint is marked and another may be tried. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** The connection broke before any response: a kept-alive socket the backend had just closed, most often. */
const RESET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/** connect: nothing reached the backend (passive health failure); reset: no response came; other: no retry. */
type FailKind = 'connect' | 'reset' | 'other';

export function createHttpHandler(opts: HttpHandlerOptions): HttpHandler {
  return new HttpProxy(opts);
}

class HttpProxy implements HttpHandler, ProxyCore {
  readonly logger: Logger;
  readonly health: PassiveHealth;
  readonly events: HttpEvents;
  readonly random: () => number;
  readonly pools: UpstreamPools;
  readonly security: SecurityRuntime;
  readonly #balancers = new WeakMap<HttpRule, Balancer>();
  readonly #mirrors: Mirrors;
  readonly #blockLists = new WeakMap<HttpRule, BlockList>();
  readonly #warned = new WeakSet<object>();
  /** Per connection context (a swap brings a new one): the last Host and the listener it chose. */
  readonly #hostMemo = new WeakMap<
    RequestContext,
    { authority: string; host: string; choice: ListenerChoice }
  >();

  constructor(opts: HttpHandlerOptions) {
    this.logger = opts.logger;
    this.health = opts.health;
    this.events = opts.events ?? {};
    this.random = opts.random ?? Math.random;
    this.pools = new UpstreamPools(opts.pools);
    this.security = opts.security ?? new SecurityRuntime({ logger: opts.logger });
    this.#mirrors = new Mirrors(this);
  }

  handle(req: AnyRequest, response: AnyResponse, ctx: RequestContext): void {
    const res = response as unknown as Res;
    const h2 = req.httpVersionMajor === 2;
    const x = this.#begin(ctx, req, h2 ? 'HTTP/2' : 'HTTP/1.1');
    const f = new Flight(this, x, req, res, h2);
    try {
      const a = (h2 ? req.headers[':authority'] : undefined) ?? req.headers.host;
      const d = this.resolve(x, f.method, Array.isArray(a) ? a[0] : a, req.url ?? '/', req);
      if (d.kind === 'local') {
        req.resume();
        f.answer(d);
        return;
      }
      const ms = d.rule.timeouts.requestMs;
      if (ms > 0) f.requestTimer = setTimeout(onRequestTimeout, ms, f);
      const sec = x.security;
      if (sec?.guarded) {
        this.guard(x, d, req, (fn) => res.once('close', fn)).then(
          (g) => {
            if (f.answered || f.closed) {
              g.kind === 'pass' && g.body?.destroy();
              return;
            }
            if (g.kind === 'answer') f.answer(g.answer);
            else this.#proceed(f, d, g.body);
          },
          (err: Error) => {
            this.logger.error(
              { err, connId: ctx.connId, requestId: x.requestId },
              'http proxy internal error',
            );
            if (!f.answered && !f.closed) f.abandon(local(500, 'internal-error', 'internal error'));
          },
        );
        return;
      }
      this.#proceed(f, d, undefined);
    } catch (err) {
      this.logger.error({ err, connId: ctx.connId, requestId: x.requestId }, 'http proxy internal error');
      f.abandon(local(500, 'internal-error', 'internal error'));
    }
  }

  /** Mirrors and the upstream attempts (one retry for an idempotent request without a body). */
  #proceed(f: Flight, d: ForwardDecision, replay: PassThrough | undefined): void {
    const x = f.x;
    try {
      const body = this.#requestBody(f.req, d.rule, f.h2, x, replay);
      if (body === 'too-large') {
        f.answer(local(413, 'body-too-large', 'request body too large'));
        return;
      }
      for (const m of d.plan.mirrors) this.#mirrors.fire(x.requestId, f.method, d.plan, m, body?.tee());
      f.d = d;
      f.body = body;
      this.#forward(f, d.picked, 0);
    } catch (err) {
      this.logger.error({ err, connId: x.ctx.connId, requestId: x.requestId }, 'http proxy internal error');
      f.abandon(local(500, 'internal-error', 'internal error'));
    }
  }

  /** One upstream attempt (attempt `n`, 0 or 1), through undici's dispatch: the Attempt is its handler. */
  #forward(f: Flight, picked: PickedEndpoint, n: number): void {
    const d = f.d!;
    f.x.record.endpoint = picked.key;
    let lease: Lease;
    try {
      lease = this.pools.acquire(d.backend, picked.endpoint, picked.key);
    } catch (err) {
      // Pools closed (shutdown); a retry runs inside undici's callback, where a throw has no one to catch it.
      this.logger.error(
        { err, connId: f.x.ctx.connId, requestId: f.x.requestId },
        'http proxy internal error',
      );
      f.abandon(local(500, 'internal-error', 'internal error'));
      return;
    }
    const a = new Attempt(this, f, picked, n, lease);
    // Set before dispatching: undici reports an invalid request synchronously, and the failure clears it.
    f.attempt = a;
    const ms = d.rule.timeouts.backendRequestMs;
    if (ms > 0) a.timer = setTimeout(onBackendTimeout, ms, a);
    a.sentAt = performance.now();
    const backend = d.backend;
    const opts: Dispatcher.DispatchOptions & { servername?: string | undefined } = {
      method: f.method as Dispatcher.HttpMethod,
      path: d.plan.path + d.plan.search,
      headers: toUndiciHeaderList(d.plan.headers, d.plan.authority),
      body: f.body?.stream ?? null,
      // undici takes the TLS server name from Host unless told (and reconnects when it changes): an https
      // backend gets the policy's name whenever it has one.
      servername: backend.protocol === 'https' ? backend.tls?.serverName || undefined : undefined,
    };
    lease.client().dispatch(opts, a);
  }

  /** An attempt failed before the response was complete (and the exchange is not answered yet). */
  attemptFailed(a: Attempt, code: string, kind: FailKind): void {
    const f = a.f;
    const d = f.d!;
    if (f.attempt === a) f.attempt = null;
    if (code === 'BODY_TOO_LARGE') {
      f.abandon(local(413, 'body-too-large', 'request body too large'));
      return;
    }
    // Nothing was sent: an idempotent request without a body may try one other endpoint.
    if (kind !== 'other' && a.n === 0 && f.body === null && IDEMPOTENT.has(f.method.toUpperCase())) {
      const next = d.balancer.nextEndpoint(d.backend, [a.picked.key]);
      if (next !== null) {
        this.#forward(f, next, 1);
        return;
      }
    }
    if (code === 'backend-timeout') {
      f.abandon(local(504, 'backend-timeout', 'upstream request timeout'));
      return;
    }
    const error = kind === 'connect' ? `connect-failed: ${code}` : `upstream-error: ${code}`;
    f.abandon(local(502, error, 'bad gateway'));
  }

  async guard(
    x: Exchange,
    d: Extract<Decision, { kind: 'forward' }>,
    req: AnyRequest,
    onClose: (fn: () => void) => void,
  ): Promise<GuardResult> {
    const sec = x.security;
    if (!sec) return { kind: 'pass', body: undefined };
    const client = x.clientIp ?? x.ctx.client.address;
    const lim = sec.limiter;
    if (lim !== null) {
      let r: LimitResult;
      try {
        const key = rateLimitKey(lim.key, {
          clientIp: client,
          route: x.record.route ?? '',
          headers: req.headers,
        });
        r = await lim.limiter.consume(key);
      } catch (err) {
        this.logger.error({ err: (err as Error).message, requestId: x.requestId }, 'rate limiter failed');
        return { kind: 'answer', answer: local(503, 'rate-limit-error', 'service unavailable') };
      }
      if (!r.allowed) {
        const t = tooManyRequests(r, lim.policy, x.requestId);
        const error =
          r.source === 'fail-closed' ? 'rate-limited: limiter unavailable (fail closed)' : 'rate-limited';
        return {
          kind: 'answer',
          answer: { kind: 'local', status: 429, error, body: t.body, headers: t.headers },
        };
      }
      if (r.source !== 'fail-open') {
        const set = Object.entries(rateLimitHeaders(r, lim.policy)).map(([name, value]) => ({ name, value }));
        d.plan.responseMods.push({ set, add: [], remove: [] });
      }
    }
    const conc = sec.concurrency;
    if (conc !== null) {
      const k = concurrencyKey(client);
      const n = conc.counts.get(k) ?? 0;
      if (n >= conc.limit)
        return {
          kind: 'answer',
          answer: {
            kind: 'local',
            status: 429,
            error: 'concurrency-limited',
            body: `too many requests in flight (request id ${x.requestId})\n`,
            headers: { 'retry-after': '1', 'x-request-id': x.requestId },
          },
        };
      conc.counts.set(k, n + 1);
      onClose(() => {
        const m = (conc.counts.get(k) ?? 1) - 1;
        if (m <= 0) conc.counts.delete(k);
        else conc.counts.set(k, m);
      });
    }
    if (sec.wafError !== null)
      return { kind: 'answer', answer: local(503, 'waf-unavailable', 'service unavailable') };
    if (sec.waf === null) return { kind: 'pass', body: undefined };
    // The WAF's rule evaluation runs on libuv's threadpool (beginAsync/endAsync), so this event loop keeps serving
    // other traffic meanwhile. The client may leave during any await: `gone` is set by onClose, registered first so
    // it cannot be missed, and the transaction is released (after its running work item) whatever happens.
    let tx: WafTransaction | null = null;
    let gone = false;
    onClose(() => {
      gone = true;
      tx?.release();
    });
    const clientClosed: GuardResult = {
      kind: 'answer',
      answer: local(400, 'client-closed', 'client closed'),
    };
    try {
      tx = await sec.waf.beginAsync({
        requestId: x.requestId,
        method: req.method ?? 'GET',
        uri: req.url ?? '/',
        httpVersion: req.httpVersion,
        headers: req.rawHeaders,
        clientIp: client,
        clientPort: x.ctx.client.port,
        serverPort: x.ctx.localPort,
      });
    } catch (err) {
      this.logger.error({ err: (err as Error).message, requestId: x.requestId }, 'waf failed');
      return { kind: 'answer', answer: local(503, 'waf-error', 'service unavailable') };
    }
    const wtx = tx;
    // A block is audited even when the client already left (as when inspection was synchronous).
    if (wtx.verdict().action === 'block') return this.#wafBlocked(x, req, wtx.verdict(), wtx);
    if (gone) {
      wtx.release();
      return clientClosed;
    }
    if (!hasRequestBody(req)) {
      let v: WafVerdict;
      try {
        v = await wtx.endAsync([]);
      } catch (err) {
        return this.#wafFailed(x, wtx, err);
      }
      return this.#wafDecided(x, req, wtx, v, undefined);
    }
    const maxBody = effectiveMaxBody(d.rule, sec);
    const inspectLimit = sec.wafBodyLimit;
    return new Promise<GuardResult>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const settle = (r: GuardResult): void => {
        if (settled) return;
        settled = true;
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        resolve(r);
      };
      // The buffered body (at most inspectLimit + one chunk) is inspected in one work item, at its end or once over
      // the inspection limit; meanwhile the request stays paused.
      const decide = (ended: boolean): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        wtx.endAsync(chunks).then(
          (v) => {
            if (settled) return;
            const replay = new PassThrough();
            const r = this.#wafDecided(x, req, wtx, v, replay);
            if (r.kind === 'answer') {
              replay.destroy();
              settle(r);
              return;
            }
            for (const c of chunks) replay.write(c);
            chunks.length = 0;
            if (ended) replay.end();
            else (req as NodeJS.ReadableStream).pipe(replay);
            settle(r);
          },
          (err: unknown) => settle(this.#wafFailed(x, wtx, err)),
        );
      };
      const onData = (c: Buffer): void => {
        size += c.length;
        chunks.push(c);
        if (maxBody > 0 && size > maxBody) {
          req.pause();
          x.record.bytesIn += size;
          settle({ kind: 'answer', answer: local(413, 'body-too-large', 'request body too large') });
          return;
        }
        if (size > inspectLimit) {
          // Over the inspection limit: 413 (reject), or decide on the part seen and stream the rest (partial,
          // detection-only); endAsync applies the same limits write() did.
          req.pause();
          decide(false);
        }
      };
      const onEnd = (): void => decide(true);
      const onError = (): void =>
        settle({ kind: 'answer', answer: local(400, 'client-error', 'bad request') });
      req.on('data', onData);
      req.once('end', onEnd);
      req.once('error', onError);
      onClose(() => settle(clientClosed));
      if (gone) settle(clientClosed);
    });
  }

  #wafFailed(x: Exchange, tx: WafTransaction, err: unknown): GuardResult {
    this.logger.error({ err: (err as Error).message, requestId: x.requestId }, 'waf failed');
    tx.release();
    return { kind: 'answer', answer: local(503, 'waf-error', 'service unavailable') };
  }

  #wafDecided(
    x: Exchange,
    req: AnyRequest,
    tx: WafTransaction,
    v: WafVerdict,
    body: PassThrough | undefined,
  ): GuardResult {
    if (v.action === 'block') return this.#wafBlocked(x, req, v, tx);
    this.#audit(x, req, v);
    tx.release();
    return { kind: 'pass', body };
  }

  #wafBlocked(x: Exchange, req: AnyRequest, v: WafVerdict, tx: WafTransaction): GuardResult {
    this.#audit(x, req, v);
    tx.release();
    const b = blockResponse(v, x.requestId);
    const error = b.status === 413 ? 'body-too-large' : `waf-blocked: ${v.ruleIds.slice(-3).join(',')}`;
    return {
      kind: 'answer',
      answer: { kind: 'local', status: b.status, error, body: b.body, headers: b.headers },
    };
  }

  /** The WAF audit record: one log line per intervention (blocked, or detected in detection-only mode). */
  #audit(x: Exchange, req: AnyRequest, v: WafVerdict): void {
    const line = auditLine(v, {
      requestId: x.requestId,
      clientIp: x.clientIp ?? x.ctx.client.address,
      method: req.method ?? '',
      uri: req.url ?? '/',
      host: x.record.host,
      route: x.record.route,
    });
    if (line === null) return;
    const { time: _time, ...rec } = JSON.parse(line) as Record<string, unknown>;
    this.logger.warn(rec, 'waf');
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: RequestContext): void {
    handleUpgrade(this, req, socket, head, ctx, this.#begin(ctx, req, 'WebSocket'));
  }

  async close(): Promise<void> {
    await this.pools.close();
  }

  #begin(ctx: RequestContext, req: AnyRequest, protocol: string): Exchange {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const record: AccessRecord = {
      connId: ctx.connId,
      requestId: '',
      client: hostPort(ctx.client.address, ctx.client.port),
      method: req.method ?? '',
      host: '',
      path: q === -1 ? url : url.slice(0, q),
      queryKeys: q === -1 ? null : queryKeys(url.slice(q)),
      protocol,
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      upstreamMs: null,
      route: null,
      ruleIndex: null,
      backend: null,
      endpoint: null,
      listener: ctx.listener.id,
      sni: ctx.sni,
      clientCertSubject: ctx.clientCert?.subject ?? null,
      error: null,
    };
    return { ctx, record, start: performance.now(), requestId: '', logged: false };
  }

  finish(x: Exchange): void {
    if (x.logged) return;
    x.logged = true;
    x.record.durationMs = Math.round((performance.now() - x.start) * 1000) / 1000;
    logAccess(this.logger, x.record);
    this.events.request?.(x.record);
  }

  connectFailed(backend: Backend, key: string, code: string): void {
    this.health.reportFailure(key, backend.policy.healthCheck?.unhealthyThreshold ?? 1, code);
    this.events.connectFailed?.(key, code);
  }

  /** Listener, route, limits, filters, backend: everything up to the endpoint to call. */
  resolve(
    x: Exchange,
    method: string,
    authority: string | undefined,
    url: string,
    req: AnyRequest,
  ): Decision {
    const ctx = x.ctx;
    const { headers: upHeaders, requestId } = upstreamRequestHeaders(req.rawHeaders);
    x.requestId = x.record.requestId = requestId ?? newRequestId();
    if (authority === undefined || authority === '') return local(400, 'no-host', 'missing Host header');
    x.record.host = authority;
    const target = splitTarget(url);
    if (target === null) return local(400, 'bad-target', 'bad request target');
    // Keep-alive connections send the same Host every time: the listener choice is remembered per connection.
    let memo = this.#hostMemo.get(ctx);
    if (memo === undefined || memo.authority !== authority) {
      const h = normalizeHost(authority);
      memo = { authority, host: h, choice: chooseListener(ctx.scheme, ctx.listener, ctx.bindListeners, h) };
      this.#hostMemo.set(ctx, memo);
    }
    const host = memo.host;
    const choice = memo.choice;
    if (choice.reject !== undefined) {
      return choice.reject === 'misdirected'
        ? local(421, 'misdirected', 'misdirected request')
        : local(404, 'no-route', 'no route');
    }
    const listener = choice.listener;
    x.record.listener = listener.id;
    const router = routerFor(listener);
    if (router.errors.length > 0 && !this.#warned.has(router)) {
      this.#warned.add(router);
      this.logger.warn({ listener: listener.id, errors: router.errors }, 'http rules that can never match');
    }
    const path = normalizePath(target.path);
    const hit = router.match(new RequestMatch(host, path, method.toUpperCase(), req.headers, target.search));
    if (hit === null) return local(404, 'no-route', 'no route');
    const rule = hit.rule;
    x.record.route = hit.routeId;
    x.record.ruleIndex = rule.ruleIndex;

    const sec = rule.security === undefined ? null : this.security.forRule(rule);
    x.security = sec;
    if (sec !== null) {
      x.clientIp = clientAddress(sec, ctx.client.address, req.headers['x-forwarded-for']);
      if (addressRefused(sec, x.clientIp)) return local(403, 'source-denied', 'forbidden');
      const maxHeader = sec.cfg.maxHeaderBytes;
      if (maxHeader !== undefined && headerBytes(req.rawHeaders) > maxHeader)
        return local(431, 'headers-too-large', 'request header fields too large');
    }
    const ranges = rule.limits?.allowSourceRanges;
    const client = x.clientIp ?? ctx.client.address;
    if (ranges !== undefined && ranges.length > 0 && !this.#allowed(rule, ranges, client)) {
      return local(403, 'source-not-allowed', 'forbidden');
    }

    addForwardingHeaders(upHeaders, ctx, authority, x.requestId);
    const plan: RequestPlan = {
      authority,
      path,
      search: target.search,
      headers: upHeaders,
      responseMods: [],
      mirrors: [],
    };
    const fc = { scheme: ctx.scheme, localPort: ctx.localPort, prefix: hit.prefix };
    const redirect = rule.filters.length === 0 ? null : applyFilters(rule.filters, plan, fc);
    if (redirect !== null) return redirectAnswer(redirect.status, redirect.location);
    if (rule.backends.length === 0) return local(500, 'no-backends', 'no backends');

    let balancer = this.#balancers.get(rule);
    if (balancer === undefined) {
      balancer = new Balancer({ backends: rule.backends }, this.health, this.random);
      this.#balancers.set(rule, balancer);
    }
    const pick = balancer.pick();
    if (pick.backend !== undefined) x.record.backend = pick.backend.id;
    if (pick.reject !== undefined) {
      return pick.reject === 'no-endpoints'
        ? local(503, 'no-endpoints', 'no healthy upstream')
        : local(500, `backend-invalid: ${pick.reason}`, 'backend not available');
    }
    const backend = pick.backend as HttpBackend;
    const r2 = backend.filters.length === 0 ? null : applyFilters(backend.filters, plan, fc);
    if (r2 !== null) return redirectAnswer(r2.status, r2.location);
    return {
      kind: 'forward',
      plan,
      rule,
      backend,
      picked: { endpoint: pick.endpoint, key: pick.key },
      balancer,
    };
  }

  #allowed(rule: HttpRule, ranges: string[], address: string): boolean {
    let bl = this.#blockLists.get(rule);
    if (bl === undefined) {
      bl = new BlockList();
      for (const r of ranges) {
        const [addr, bits] = r.split('/');
        const type = isIPv6(addr ?? '') ? 'ipv6' : 'ipv4';
        if (!isIPv4(addr ?? '') && type === 'ipv4') continue;
        if (bits === undefined) bl.addAddress(addr!, type);
        else bl.addSubnet(addr!, Number(bits), type);
      }
      this.#blockLists.set(rule, bl);
    }
    const a = unmapV4(address);
    return bl.check(a, isIPv6(a) ? 'ipv6' : 'ipv4');
  }

  /** null: no body. Otherwise a counting stream (maxBodyBytes enforced) that feeds the upstream and any mirrors. */
  #requestBody(
    req: AnyRequest,
    rule: HttpRule,
    h2: boolean,
    x: Exchange,
    replay?: PassThrough,
  ): BodySource | null | 'too-large' {
    const max = effectiveMaxBody(rule, x.security ?? null);
    const cl = req.headers['content-length'];
    const declared = cl === undefined ? null : Number(cl);
    if (max > 0 && declared !== null && declared > max) return 'too-large';
    // A body the WAF read first comes from its replay stream.
    if (replay !== undefined) return new BodySource(replay as unknown as AnyRequest, max, x);
    const hasBody = h2
      ? !(req as Http2ServerRequest).stream.endAfterHeaders
      : req.headers['transfer-encoding'] !== undefined || (declared !== null && declared > 0);
    if (!hasBody) return null;
    return new BodySource(req, max, x);
  }
}

type ForwardDecision = Extract<Decision, { kind: 'forward' }>;

/** What the router matches; the query string is parsed only if a rule asks for a parameter. */
class RequestMatch implements MatchInput {
  readonly host: string;
  readonly path: string;
  readonly method: string;
  readonly headers: MatchInput['headers'];
  readonly #search: string;
  #query: URLSearchParams | null = null;

  constructor(host: string, path: string, method: string, headers: MatchInput['headers'], search: string) {
    this.host = host;
    this.path = path;
    this.method = method;
    this.headers = headers;
    this.#search = search;
  }

  get query(): URLSearchParams {
    this.#query ??= new URLSearchParams(this.#search);
    return this.#query;
  }
}

/**
 * One request on its way through handle(): the response side, its timer, and the upstream attempt in progress.
 * State lives in fields rather than in per-request closures (one object instead of a dozen).
 */
class Flight {
  readonly proxy: HttpProxy;
  readonly x: Exchange;
  readonly req: AnyRequest;
  readonly res: Res;
  readonly h2: boolean;
  readonly method: string;
  finished = false;
  answered = false;
  closed = false;
  requestTimer: NodeJS.Timeout | null = null;
  /** The attempt to abort when the client goes away or the request times out; null between attempts. */
  attempt: Attempt | null = null;
  d: ForwardDecision | null = null;
  body: BodySource | null = null;

  constructor(proxy: HttpProxy, x: Exchange, req: AnyRequest, res: Res, h2: boolean) {
    this.proxy = proxy;
    this.x = x;
    this.req = req;
    this.res = res;
    this.h2 = h2;
    this.method = req.method ?? 'GET';
    // `on`, not `once`: each fires at most once per response, and `once` wraps every listener.
    res.on('finish', () => {
      this.finished = true;
    });
    res.on('close', () => this.#onClose());
  }

  /** An HTTP/1.1 request body we stop reading would stall the connection: close it after answering. */
  answer(d: LocalAnswer): void {
    this.answered = true;
    localAnswer(this.res, d, this.x, !this.h2 && !this.req.complete);
  }

  abandon(d: LocalAnswer): void {
    if (this.res.headersSent) destroyResponse(this.res);
    else this.answer(d);
  }

  #onClose(): void {
    if (this.closed) return;
    this.closed = true;
    const x = this.x;
    if (this.requestTimer !== null) clearTimeout(this.requestTimer);
    if (!this.finished) {
      x.record.error ??= 'client-closed';
      this.attempt?.stop('client-closed');
    }
    x.record.status = this.res.headersSent ? this.res.statusCode : 0;
    this.proxy.finish(x);
  }
}

function onRequestTimeout(f: Flight): void {
  f.x.record.error = 'request-timeout';
  f.attempt?.stop('request-timeout');
  f.abandon(local(504, 'request-timeout', 'upstream request timeout'));
}

function onBackendTimeout(a: Attempt): void {
  a.timedOut = true;
  a.abort(new Error('backend request timeout'));
}

/**
 * One upstream attempt, as undici's dispatch handler: no promise, no response stream, no AbortController. The
 * response is written to the client as it comes, with undici paused while the client is not draining.
 */
class Attempt implements Dispatcher.DispatchHandler {
  readonly proxy: HttpProxy;
  readonly f: Flight;
  readonly picked: PickedEndpoint;
  readonly n: number;
  readonly lease: Lease;
  timer: NodeJS.Timeout | null = null;
  sentAt = 0;
  timedOut = false;
  /** Released and done with: later callbacks from undici are ignored. */
  over = false;
  #controller: Dispatcher.DispatchController | null = null;
  /** An abort asked for before undici started the request: applied when it does. */
  #pendingAbort: Error | null = null;
  #responded = false;
  #drainHooked = false;

  constructor(proxy: HttpProxy, f: Flight, picked: PickedEndpoint, n: number, lease: Lease) {
    this.proxy = proxy;
    this.f = f;
    this.picked = picked;
    this.n = n;
    this.lease = lease;
  }

  #end(): void {
    if (this.over) return;
    this.over = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.lease.release();
  }

  abort(reason: Error): void {
    if (this.#controller !== null) this.#controller.abort(reason);
    else this.#pendingAbort ??= reason;
  }

  /** The client went away or the request timed out: give the attempt up without answering. */
  stop(reason: string): void {
    if (this.over) return;
    this.#end();
    this.abort(new Error(reason));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#pendingAbort !== null) controller.abort(this.#pendingAbort);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    // Interim responses (103) are not passed on.
    if (statusCode < 200) return;
    const x = this.f.x;
    this.proxy.health.reportSuccess(this.picked.key);
    x.record.upstreamMs = Math.round((performance.now() - this.sentAt) * 1000) / 1000;
    if (this.over) {
      controller.abort(new Error('aborted'));
      return;
    }
    this.#responded = true;
    try {
      this.f.res.writeHead(statusCode, downstreamResponseHeaders(headers, this.f.d!.plan.responseMods));
    } catch (err) {
      this.#end();
      controller.abort(err as Error);
      this.proxy.attemptFailed(this, `bad-response-headers: ${(err as Error).message}`, 'other');
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.over) return;
    this.f.x.record.bytesOut += chunk.length;
    const res = this.f.res;
    if (!res.write(chunk)) {
      controller.pause();
      if (!this.#drainHooked) {
        this.#drainHooked = true;
        res.on('drain', () => this.#controller?.resume());
      }
    }
  }

  onResponseEnd(): void {
    this.lease.settled();
    if (this.over) return;
    this.#end();
    this.f.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    this.lease.settled();
    const wasOver = this.over;
    this.#end();
    if (wasOver) return;
    const e = err as NodeJS.ErrnoException;
    if (this.#responded) {
      this.proxy.attemptFailed(this, this.timedOut ? 'backend-timeout' : (e.code ?? e.message), 'other');
      return;
    }
    const code = (e.cause as NodeJS.ErrnoException | undefined)?.code ?? e.code ?? e.message;
    if (this.timedOut) this.proxy.attemptFailed(this, 'backend-timeout', 'other');
    else if (code === 'BODY_TOO_LARGE' || err instanceof BodyTooLarge)
      this.proxy.attemptFailed(this, 'BODY_TOO_LARGE', 'other');
    else if (CONNECT_ERRORS.has(code)) {
      this.proxy.connectFailed(this.f.d!.backend, this.picked.key, code);
      this.proxy.attemptFailed(this, code, 'connect');
    } else this.proxy.attemptFailed(this, code, RESET_ERRORS.has(code) ? 'reset' : 'other');
  }
}

/** The smallest body limit the rule's annotations and SecurityPolicy set (0: none). */
function effectiveMaxBody(rule: HttpRule, sec: CompiledSecurity | null): number {
  const a = rule.limits?.maxBodyBytes ?? 0;
  const b = sec?.cfg.maxBodyBytes ?? 0;
  return a > 0 && b > 0 ? Math.min(a, b) : a || b;
}

function hasRequestBody(req: AnyRequest): boolean {
  if (req.httpVersionMajor === 2) return !(req as Http2ServerRequest).stream.endAfterHeaders;
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && Number(cl) > 0);
}

export function local(status: number, error: string, body: string): LocalAnswer {
  return { kind: 'local', status, error, body: `${body}\n` };
}

function redirectAnswer(status: number, location: string): LocalAnswer {
  return { kind: 'local', status, error: '', body: '', headers: { location } };
}

export type LocalAnswer = Extract<Decision, { kind: 'local' }>;

function localAnswer(res: Res, d: LocalAnswer, x: Exchange, closeConnection: boolean): void {
  if (d.error !== '') x.record.error ??= d.error;
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', ...d.headers };
  headers['content-length'] = String(Buffer.byteLength(d.body));
  if (closeConnection) headers.connection = 'close';
  x.record.bytesOut += Buffer.byteLength(d.body);
  try {
    res.writeHead(d.status, headers);
    res.end(d.body);
  } catch {
    destroyResponse(res);
  }
}

function destroyResponse(res: Res): void {
  if (res.stream !== undefined) res.stream.destroy();
  else res.destroy?.();
}

/** Origin-form `/p?q`, absolute-form `http://h/p?q` (path and query kept) or `*`; null for anything else. */
function splitTarget(url: string): { path: string; search: string } | null {
  if (url.startsWith('/')) {
    const q = url.indexOf('?');
    return q === -1 ? { path: url, search: '' } : { path: url.slice(0, q), search: url.slice(q) };
  }
  if (url === '*') return { path: '*', search: '' };
  try {
    const u = new URL(url);
    return { path: u.pathname, search: u.search };
  } catch {
    return null;
  }
}
