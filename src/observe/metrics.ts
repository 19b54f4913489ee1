/**
 * Prometheus metrics: a DataPlaneEvents implementation over its own prom-client Registry.
 *
 * Label values come from configuration only (binds, listeners, routes, backends, endpoints) or from
 * fixed enumerations (end reasons, error codes): never a client address or a client-chosen SNI, so
 * an attacker cannot grow the series count. Per-connection counts go to plain JS cells (one per label set,
 * found by a key string) and reach prom-client only at scrape time: prom-client hashes and validates the
 * labels on every inc(), which cost more than the rest of a connection's accounting. The hooks are own arrow-function
 * properties, so the instance can be spread (`withDefaults`) or its hooks passed around unbound.
 */
import { Counter, collectDefaultMetrics, Gauge, type Histogram, Registry } from 'prom-client';
import type { ConnectionRecord, EndReason } from '../dataplane/conn-log.ts';
import type { DataPlaneEvents } from '../dataplane/events.ts';
import { logLinesDropped } from './logger.ts';

/** End reasons counted in `snigate_rejects_total`: the connection never reached a backend. */
const REJECTS: ReadonlySet<EndReason> = new Set<EndReason>([
  'no-sni',
  'no-listener',
  'no-route',
  'not-tls',
  'malformed-hello',
  'hello-too-large',
  'hello-timeout',
  'backend-invalid',
  'no-endpoints',
  'connect-failed',
  'proxy-header-invalid',
  'pg-cancel-unroutable',
  'max-connections',
  'rate-limited',
  'internal-error',
  'tls-handshake-failed',
  'tls-handshake-timeout',
]);

export const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Error codes are an open set in principle (libuv): anything unexpected is folded into `other`. */
const CODE_RE = /^[A-Z][A-Z0-9_]{1,31}$/;

export const HELLO_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsOptions {
  /** Register prom-client's default process/Node metrics (default true). */
  defaultMetrics?: boolean;
}

export type EndpointHealthSource = () => { endpoint: string; healthy: boolean }[];

export type FastPathSource = () => { connections: number; recordsDropped: number };

/** One label set of a counter or gauge: updated per event, added to prom-client by #flush when scraped. */
class Cell {
  /** Counters: added since the last scrape. */
  pending = 0;
  /** Gauges: the value now. */
  value = 0;
  readonly labels: Record<string, string>;
  readonly gauge: boolean;

  constructor(labels: Record<string, string>, gauge: boolean) {
    this.labels = labels;
    this.gauge = gauge;
  }

  inc(n = 1): void {
    if (this.gauge) this.value += n;
    else this.pending += n;
  }

  dec(n = 1): void {
    this.value -= n;
  }

  set(v: number): void {
    this.value = v;
  }
}

type CellMetric = Counter<string> | Gauge<string>;

/** One route's request durations: bucket counts (not cumulative), sum and count. */
class DurationCell {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(buckets: number) {
    this.counts = new Array<number>(buckets).fill(0);
  }
}

/**
 * A histogram with at most one label (`route` for request durations, none for the ClientHello time) as a
 * registry metric of its own: prom-client's Histogram hashes and validates the labels on every observe(),
 * about a microsecond per request or connection; here an observation is a few additions to a cell the caller
 * keeps. get() returns what prom-client's Histogram returns, so the exposition is the same.
 */
class CellHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: number[];
  readonly #label: string | null;
  readonly #cells = new Map<string, DurationCell>();

  constructor(name: string, help: string, bounds: number[], label: string | null) {
    this.name = name;
    this.help = help;
    this.#bounds = bounds;
    this.#label = label;
  }

  /** The cell of a label value ('' without a label), kept by the caller: reset() zeroes cells in place. */
  cell(route: string): DurationCell {
    let c = this.#cells.get(route);
    if (c === undefined) {
      c = new DurationCell(this.#bounds.length);
      this.#cells.set(route, c);
    }
    return c;
  }

  observe(c: DurationCell, seconds: number): void {
    const b = this.#bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]!) {
        c.counts[i]!++;
        break;
      }
    }
    c.sum += seconds;
    c.count++;
  }

  reset(): void {
    for (const c of this.#cells.values()) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: unknown[] } {
    const values: unknown[] = [];
    const bucket = `${this.name}_bucket`;
    const label = this.#label;
    for (const [value, c] of this.#cells) {
      // A labelled cell that was reset, as prom-client's reset() drops the series (an unlabelled histogram
      // reads 0 from the start, as prom-client's does).
      if (c.count === 0 && label !== null) continue;
      const labels: Record<string, string> = label === null ? {} : { [label]: value };
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += c.counts[i]!;
        values.push({
          value: acc,
          metricName: bucket,
          exemplar: null,
          labels: { le: this.#bounds[i], ...labels },
        });
      }
      values.push({ value: c.count, metricName: bucket, exemplar: null, labels: { le: '+Inf', ...labels } });
      values.push({ value: c.sum, metricName: `${this.name}_sum`, labels });
      values.push({ value: c.count, metricName: `${this.name}_count`, labels });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

interface BindCells {
  accepted: Cell;
  active: Cell;
}

interface BytesCells {
  in: Cell;
  out: Cell;
}

/** Per route, what a finished request updates: found with one Map lookup, no key string. */
interface RouteCells {
  durations: DurationCell;
  codes: Map<number, Cell>;
}

export class Metrics implements DataPlaneEvents {
  readonly registry = new Registry();

  readonly #accepted: Counter<'bind'>;
  readonly #active: Gauge<'bind'>;
  readonly #closed: Counter<'listener' | 'route' | 'backend' | 'end'>;
  readonly #bytes: Counter<'direction' | 'route'>;
  readonly #hello: CellHistogram;
  readonly #helloCell: DurationCell;
  readonly #rejects: Counter<'reason'>;
  readonly #connectFailures: Counter<'endpoint' | 'code'>;
  readonly #healthy: Gauge<'endpoint'>;
  readonly #reloads: Counter<'result'>;
  readonly #lastSuccess: Gauge;
  readonly #bindFailures: Counter<'bind' | 'code'>;
  readonly #pgCancel: Counter;
  readonly #requests: Counter<'route' | 'code'>;
  readonly #requestSeconds: CellHistogram;
  readonly #binds = new Map<string, BindCells>();
  /** listener → route → backend → end reason → cell of snigate_connections_closed_total. */
  readonly #closedCells = new Map<string, Map<string, Map<string, Map<string, Cell>>>>();
  readonly #routeBytes = new Map<string, BytesCells>();
  readonly #routes = new Map<string, RouteCells>();
  readonly #handshakes: Counter<'listener' | 'result'>;
  readonly #misdirected: Counter<'listener'>;
  readonly #answered: Counter<'reason'>;

  readonly #cache = new Map<string, Cell>();
  readonly #cells = new Map<CellMetric, Cell[]>();
  #healthSource: EndpointHealthSource | null = null;
  #fastSource: FastPathSource | null = null;

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    const self = this;
    const collect = function (this: CellMetric): void {
      self.#flush(this);
    };
    this.#accepted = new Counter({
      name: 'snigate_connections_accepted_total',
      help: 'Connections accepted, per bind (address:port).',
      labelNames: ['bind'],
      registers,
      collect,
    });
    this.#active = new Gauge({
      name: 'snigate_connections_active',
      help: 'Connections open now, per bind.',
      labelNames: ['bind'],
      registers,
      collect,
    });
    this.#closed = new Counter({
      name: 'snigate_connections_closed_total',
      help: 'Connections ended, by listener, route, backend (empty when not chosen) and end reason.',
      labelNames: ['listener', 'route', 'backend', 'end'],
      registers,
      collect,
    });
    this.#bytes = new Counter({
      name: 'snigate_bytes_total',
      help: 'Bytes from the client (in) and to the client (out), per route (empty: not routed).',
      labelNames: ['direction', 'route'],
      registers,
      collect,
    });
    this.#hello = new CellHistogram(
      'snigate_clienthello_duration_seconds',
      'Time from accept to a complete ClientHello.',
      HELLO_BUCKETS,
      null,
    );
    this.#helloCell = this.#hello.cell('');
    this.registry.registerMetric(this.#hello as unknown as Histogram);
    this.#rejects = new Counter({
      name: 'snigate_rejects_total',
      help: 'Connections closed before any byte reached a backend, by reason.',
      labelNames: ['reason'],
      registers,
      collect,
    });
    this.#connectFailures = new Counter({
      name: 'snigate_backend_connect_failures_total',
      help: 'Failed connects to a backend endpoint (each attempt, retried or not), by error code.',
      labelNames: ['endpoint', 'code'],
      registers,
      collect,
    });
    this.#healthy = new Gauge({
      name: 'snigate_endpoint_healthy',
      help: '1 when the endpoint is taking connections, 0 when it is ejected (passive or active checks).',
      labelNames: ['endpoint'],
      registers,
      collect() {
        const src = self.#healthSource;
        if (src === null) {
          self.#flush(this);
          return;
        }
        // The registry is the truth: endpoints removed from the configuration disappear here too.
        this.reset();
        for (const e of src()) this.labels(e.endpoint).set(e.healthy ? 1 : 0);
      },
    });
    this.#reloads = new Counter({
      name: 'snigate_config_reloads_total',
      help: 'Configuration loads, by result (a failure keeps the last good configuration serving).',
      labelNames: ['result'],
      registers,
    });
    this.#lastSuccess = new Gauge({
      name: 'snigate_config_last_reload_success_timestamp_seconds',
      help: 'When the configuration serving now was programmed (Unix time).',
      registers,
    });
    this.#bindFailures = new Counter({
      name: 'snigate_bind_failures_total',
      help: 'Listen failures, by bind and error code (EADDRINUSE, EACCES, ...).',
      labelNames: ['bind', 'code'],
      registers,
    });
    this.#pgCancel = new Counter({
      name: 'snigate_pg_cancel_requests_total',
      help: 'Postgres CancelRequests received (they carry no SNI and cannot be routed).',
      registers,
    });
    this.#requests = new Counter({
      name: 'snigate_http_requests_total',
      help: 'HTTP requests on terminated listeners, by route (HTTPRoute/ns/name, empty: none matched) and status code.',
      labelNames: ['route', 'code'],
      registers,
      collect,
    });
    this.#requestSeconds = new CellHistogram(
      'snigate_http_request_duration_seconds',
      'Time from request to the end of the response, by route.',
      HTTP_BUCKETS,
      'route',
    );
    this.registry.registerMetric(this.#requestSeconds as unknown as Histogram);
    this.#handshakes = new Counter({
      name: 'snigate_tls_handshakes_total',
      help: 'TLS handshakes on terminating listeners, by listener and result (ok, failed, timeout).',
      labelNames: ['listener', 'result'],
      registers,
      collect,
    });
    this.#answered = new Counter({
      name: 'snigate_http_gateway_answers_total',
      help: 'HTTP requests the gateway answered itself instead of a backend, by reason (no-route, waf-blocked, rate-limited, body-too-large, connect-failed, request-timeout, ...).',
      labelNames: ['reason'],
      registers,
      collect,
    });
    this.#misdirected = new Counter({
      name: 'snigate_http_misdirected_requests_total',
      help: 'Requests answered 421: the Host belongs to another listener than the connection was made for.',
      labelNames: ['listener'],
      registers,
      collect,
    });
    new Counter({
      name: 'snigate_log_lines_dropped_total',
      help: 'JSON log lines dropped because stdout was not being read (16 MiB were waiting).',
      registers,
      collect() {
        // The sinks count; the counter shows their total at each scrape.
        this.reset();
        this.inc(logLinesDropped());
      },
    });
    new Gauge({
      name: 'snigate_fastpath_connections',
      help: 'Open connections carried by the native fast path (routed in C, no JavaScript per connection); included in snigate_connections_active once connected.',
      registers,
      collect() {
        this.set(self.#fastSource?.().connections ?? 0);
      },
    });
    new Counter({
      name: 'snigate_fastpath_records_dropped_total',
      help: 'Fast-path connection records lost (the record buffer filled while JavaScript was reading it): their logs and metrics are missing.',
      registers,
      collect() {
        this.reset();
        this.inc(self.#fastSource?.().recordsDropped ?? 0);
      },
    });
    // Series that should read 0 before the first event, so rate() and alerts work from the start.
    this.#reloads.labels('success').inc(0);
    this.#reloads.labels('failure').inc(0);
    // The event-loop lag monitor samples every 100 ms instead of prom-client's 10: a 10 ms timer woke an idle
    // gateway 100 times a second (~1% of a core doing nothing); a stall long enough to matter still shows.
    if (opts.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }

  /** The native fast path's figures (DataPlane.fastPathStats), read at each scrape. */
  setFastPathSource(src: FastPathSource): void {
    this.#fastSource = src;
  }

  /** Live endpoint health (e.g. `() => dataPlane.health.snapshot()`), read at each scrape. */
  setHealthSource(src: EndpointHealthSource): void {
    this.#healthSource = src;
  }

  #child<L extends string>(metric: Counter<L> | Gauge<L>, key: string, values: string[]): Cell {
    let c = this.#cache.get(key);
    if (c === undefined) {
      const names = (metric as unknown as { labelNames: string[] }).labelNames;
      const labels: Record<string, string> = {};
      for (let i = 0; i < names.length; i++) labels[names[i]!] = values[i]!;
      c = new Cell(labels, metric instanceof Gauge);
      this.#cache.set(key, c);
      const m = metric as unknown as CellMetric;
      const list = this.#cells.get(m);
      if (list === undefined) this.#cells.set(m, [c]);
      else list.push(c);
    }
    return c;
  }

  /** Hands the cells' counts to prom-client (its collect hook, so at every scrape). */
  #flush(metric: CellMetric): void {
    const cells = this.#cells.get(metric);
    if (cells === undefined) return;
    for (const c of cells) {
      if (c.gauge) (metric as Gauge<string>).set(c.labels, c.value);
      else if (c.pending !== 0) {
        (metric as Counter<string>).inc(c.labels, c.pending);
        c.pending = 0;
      }
    }
  }

  /** One finished HTTP request (the access-log record). */
  readonly httpRequest = (r: {
    route: string | null;
    status: number;
    durationMs: number;
    error?: string | null;
  }): void => {
    const route = r.route ?? '';
    let rc = this.#routes.get(route);
    if (rc === undefined) {
      rc = { durations: this.#requestSeconds.cell(route), codes: new Map() };
      this.#routes.set(route, rc);
    }
    let requests = rc.codes.get(r.status);
    if (requests === undefined) {
      const code = String(r.status);
      requests = this.#child(this.#requests, `q\0${route}\0${code}`, [route, code]);
      rc.codes.set(r.status, requests);
    }
    requests.inc();
    this.#requestSeconds.observe(rc.durations, r.durationMs / 1000);
    if (r.error) {
      // The reason is the error's prefix ("waf-blocked: 942100 ..." → waf-blocked): a bounded set of words.
      const head = r.error.split(':', 1)[0]!.trim();
      const reason = /^[a-z][a-z0-9-]{1,31}$/.test(head) ? head : 'other';
      this.#child(this.#answered, `e\0${reason}`, [reason]).inc();
    }
  };

  readonly tlsHandshake = (listener: string, result: 'ok' | 'failed' | 'timeout'): void => {
    this.#child(this.#handshakes, `t\0${listener}\0${result}`, [listener, result]).inc();
  };

  readonly misdirected = (listener: string): void => {
    this.#child(this.#misdirected, `m\0${listener}`, [listener]).inc();
  };

  /** A bind's cells, found by its display string (the same string every time: its hash is cached). */
  #bindCells(bind: string): BindCells {
    let b = this.#binds.get(bind);
    if (b === undefined) {
      b = {
        accepted: this.#child(this.#accepted, `a\0${bind}`, [bind]),
        active: this.#child(this.#active, `g\0${bind}`, [bind]),
      };
      this.#binds.set(bind, b);
    }
    return b;
  }

  /**
   * The closed-connections cell, through maps keyed by the label strings themselves: they come from the table
   * (listener and backend ids, the route name made once per route), so no key string is built per connection.
   */
  #closedCell(listener: string, route: string, backend: string, end: string): Cell {
    let byRoute = this.#closedCells.get(listener);
    if (byRoute === undefined) this.#closedCells.set(listener, (byRoute = new Map()));
    let byBackend = byRoute.get(route);
    if (byBackend === undefined) byRoute.set(route, (byBackend = new Map()));
    let byEnd = byBackend.get(backend);
    if (byEnd === undefined) byBackend.set(backend, (byEnd = new Map()));
    let c = byEnd.get(end);
    if (c === undefined) {
      c = this.#child(this.#closed, `c\0${listener}\0${route}\0${backend}\0${end}`, [
        listener,
        route,
        backend,
        end,
      ]);
      byEnd.set(end, c);
    }
    return c;
  }

  #bytesCells(route: string): BytesCells {
    let b = this.#routeBytes.get(route);
    if (b === undefined) {
      b = {
        in: this.#child(this.#bytes, `i\0${route}`, ['in', route]),
        out: this.#child(this.#bytes, `o\0${route}`, ['out', route]),
      };
      this.#routeBytes.set(route, b);
    }
    return b;
  }

  readonly connectionOpened = (bind: string): void => {
    const b = this.#bindCells(bind);
    b.accepted.inc();
    b.active.inc();
  };

  /** Routed connections are counted when they end (snigate_connections_closed_total has the route). */
  readonly connectionRouted = (_route: string): void => {};

  readonly connectionClosed = (r: ConnectionRecord): void => {
    this.#bindCells(r.bind).active.dec();
    const route = r.route ?? '';
    this.#closedCell(r.listener ?? '', route, r.backend ?? '', r.end).inc();
    if (r.bytesIn > 0 || r.bytesOut > 0) {
      const b = this.#bytesCells(route);
      if (r.bytesIn > 0) b.in.inc(r.bytesIn);
      if (r.bytesOut > 0) b.out.inc(r.bytesOut);
    }
    if (REJECTS.has(r.end)) this.#child(this.#rejects, `r\0${r.end}`, [r.end]).inc();
  };

  readonly helloParsed = (ms: number, _sni: string | null): void => {
    this.#hello.observe(this.#helloCell, ms / 1000);
  };

  readonly connectFailed = (endpoint: string, code: string): void => {
    const c = safeCode(code);
    this.#child(this.#connectFailures, `f\0${endpoint}\0${c}`, [endpoint, c]).inc();
  };

  readonly healthChanged = (endpoint: string, healthy: boolean): void => {
    this.#child(this.#healthy, `h\0${endpoint}`, [endpoint]).set(healthy ? 1 : 0);
  };

  readonly pgCancelRequest = (): void => {
    this.#pgCancel.inc();
  };

  readonly bindFailed = (bind: string, code: string): void => {
    this.#bindFailures.labels(bind, safeCode(code)).inc();
  };

  /** One configuration load finished; `at` is an ISO time (the reconciler's ReloadRecord). */
  reloadCompleted(ok: boolean, at: string): void {
    this.#reloads.labels(ok ? 'success' : 'failure').inc();
    if (ok) {
      const t = Date.parse(at);
      if (!Number.isNaN(t)) this.#lastSuccess.set(t / 1000);
    }
  }

  /** The Prometheus text exposition, for an admin `extra` route. */
  async scrape(): Promise<{ type: string; body: string }> {
    return { type: this.registry.contentType, body: await this.registry.metrics() };
  }
}

function safeCode(code: string): string {
  return CODE_RE.test(code) ? code : 'other';
}
