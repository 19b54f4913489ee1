/** `snigate run`: serve the manifests, reload on change, drain on SIGTERM. Also the programmatic startGateway(). */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { FileSource } from '../config/file-source.ts';
import { Reconciler, type ServingState } from '../config/reconciler.ts';
import type { Source } from '../config/source.ts';
import { createHttpHandler } from '../dataplane/http-proxy.ts';
import { SecurityRuntime } from '../dataplane/http-security.ts';
import { DataPlane } from '../dataplane/server.ts';
import { createTerminator, type Terminator } from '../dataplane/terminate.ts';
import { ErrorCode, SnigateError } from '../errors.ts';
import { startAdmin } from '../observe/admin.ts';
import { dashboardRoutes } from '../observe/dashboard.ts';
import { createLogger } from '../observe/logger.ts';
import { Metrics } from '../observe/metrics.ts';
import { composeEvents, LiveTraffic } from '../observe/recent-rejects.ts';
import { DEFAULT_CONTROLLER_NAME } from '../translate/index.ts';
import { wafStatus } from '../waf/waf.ts';
import type { PipelineArgs } from './pipeline.ts';

export interface RunArgs extends PipelineArgs {
  logLevel?: string;
  logFormat?: string;
  /** `host:port` of the admin server, or `off`. Default 127.0.0.1:9901. */
  admin?: string;
  portOffset?: number;
  drainTimeoutMs?: number;
  /** Close connections whose route was removed this long after the change (0 = never). */
  drainGraceMs?: number;
  debounceMs?: number;
  logger?: Logger;
  watch?: boolean;
  /** Defaults to the file source over `files` (or the Kubernetes source with `kubernetes`). */
  source?: Source;
  /** Called after every programmed configuration (the Kubernetes status writer hooks in here). */
  onProgrammed?: (serving: ServingState) => void;
  /** `--kubernetes` (in PipelineArgs): read from the API server, write status (leader only); see config/status-writer.ts. */
  kubeconfig?: string;
  watchNamespaces?: string[];
  publishService?: string;
  enableCustomResources?: boolean;
  /** Defaults to a new Metrics (its own registry, default process metrics included). */
  metrics?: Metrics;
  /** The libmodsecurity addon (`--waf-addon`; default the built one, or $SNIGATE_MODSECURITY_ADDON). */
  wafAddonPath?: string;
}

export interface GatewayHandle {
  dataPlane: DataPlane;
  reconciler: Reconciler;
  logger: Logger;
  metrics: Metrics;
  adminUrl: string | null;
  stop(graceMs?: number): Promise<void>;
}

export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s);
  if (!m)
    throw new SnigateError(ErrorCode.InvalidArguments, `${what} ${s}: write host:port, e.g. 127.0.0.1:9901`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port: Number(m[3]) };
}

export async function startGateway(args: RunArgs): Promise<GatewayHandle> {
  const logger = args.logger ?? createLogger({ level: args.logLevel, format: args.logFormat });
  const defaultAddresses = args.address ? [args.address] : ['0.0.0.0', '::'];
  const metrics = args.metrics ?? new Metrics();
  const traffic = new LiveTraffic();
  const startedAt = Date.now();
  const events = composeEvents(metrics, traffic);
  // Said at start-up whether or not a config asks for it: a config that does is refused when it is unavailable.
  const waf = wafStatus(args.wafAddonPath);
  if (waf.available) logger.info({ waf }, 'waf available');
  else logger.warn({ waf }, 'waf unavailable: configurations that enable it will be refused');
  const security = new SecurityRuntime({
    logger,
    ...(args.wafAddonPath !== undefined ? { wafAddonPath: args.wafAddonPath } : {}),
  });
  // Terminating listeners (HTTPS, TLS Terminate, HTTP) are handed over by the data plane in-process.
  let terminator: Terminator | null = null;
  const dataPlane = new DataPlane({
    defaultAddresses,
    logger,
    drainGraceMs: args.drainGraceMs ?? 0,
    events,
    handOff: (h) => {
      if (terminator) terminator.handOff(h);
      else h.socket.destroy();
    },
  });
  terminator = createTerminator({
    logger,
    health: dataPlane.health,
    events,
    httpHandler: createHttpHandler({
      logger,
      health: dataPlane.health,
      events: { connectFailed: events.connectFailed, request: metrics.httpRequest },
      security,
    }),
    tlsEvents: {
      handshakeDone: (l) => metrics.tlsHandshake(l, 'ok'),
      handshakeFailed: (l, why) => metrics.tlsHandshake(l, why === 'timeout' ? 'timeout' : 'failed'),
      misdirected: metrics.misdirected,
    },
  });
  metrics.setHealthSource(() => dataPlane.health.snapshot());
  metrics.setFastPathSource(() => dataPlane.fastPathStats());
  const kube =
    args.kubernetes && !args.source
      ? (await import('../config/status-writer.ts')).createKubeRuntime({
          logger,
          controllerName: args.controllerName ?? DEFAULT_CONTROLLER_NAME,
          ...(args.kubeconfig ? { kubeconfig: args.kubeconfig } : {}),
          ...(args.watchNamespaces?.length ? { namespaces: args.watchNamespaces } : {}),
          ...(args.publishService ? { publishService: args.publishService } : {}),
          enableCustomResources: args.enableCustomResources !== false,
        })
      : null;
  const source =
    args.source ??
    kube?.source ??
    new FileSource({
      paths: args.files,
      namespace: args.namespace,
      strict: args.strict,
      debounceMs: args.debounceMs,
      onWatchError: (err) =>
        logger.warn({ err: err.message }, 'file watch error: changes may not be picked up until restart'),
    });
  const reconciler = new Reconciler({
    source,
    args,
    dataPlane,
    logger,
    portOffset: args.portOffset ?? 0,
    defaultAddresses,
    prepare: (table) => security.prepare(table),
  });

  const reload = (trigger: string) =>
    reconciler.reload(trigger).then((r) => {
      metrics.reloadCompleted(r.ok, r.at);
      if (r.ok && reconciler.serving) {
        const s = reconciler.serving;
        kube?.publish({ statuses: s.result.statuses, resources: s.result.resources });
        args.onProgrammed?.(s);
      }
      return r;
    });
  // Watch before the first read so that no change made during start-up is missed.
  if (args.watch !== false)
    source.start((reason) => {
      reload(reason).catch((err: Error) => logger.error({ err: err.message }, 'reload failed'));
    });
  const first = await reload('start');
  if (!first.ok) {
    source.stop();
    security.close();
    await dataPlane.shutdown(0);
    throw new SnigateError(
      ErrorCode.ConfigInvalid,
      `the manifests are invalid:\n  ${first.errors.join('\n  ')}`,
    );
  }
  const serving = reconciler.serving!;
  const bound = dataPlane.listening().length;
  if (bound === 0 && serving.table.binds.length > 0) {
    source.stop();
    await dataPlane.shutdown(0);
    const why = serving.bindFailures
      .map((f) => `${f.address ?? 'default'}:${f.port + (args.portOffset ?? 0)} ${f.code}`)
      .join(', ');
    const hint = why.includes('EACCES')
      ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE; or pass --port-offset 10000)'
      : '';
    throw new SnigateError(ErrorCode.BindFailed, `could not listen on any port: ${why}${hint}`);
  }

  let admin: Server | null = null;
  let adminUrl: string | null = null;
  if (args.admin !== 'off') {
    const { host, port } = parseHostPort(args.admin ?? '127.0.0.1:9901', '--admin');
    try {
      const extra = dashboardRoutes({ reconciler, dataPlane, traffic, startedAt });
      extra.set('/metrics', () => metrics.scrape());
      admin = await startAdmin({ host, port, reconciler, dataPlane, logger, extra });
    } catch (e) {
      source.stop();
      await dataPlane.shutdown(0);
      throw new SnigateError(
        ErrorCode.AdminBindFailed,
        `admin server on ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (choose another with --admin HOST:PORT, or --admin off)`,
      );
    }
    const a = admin.address() as AddressInfo;
    adminUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  kube?.elector.start();
  logger.info({ listening: dataPlane.listening(), admin: adminUrl, waf }, 'snigate started');
  let stopped = false;
  return {
    dataPlane,
    reconciler,
    logger,
    metrics,
    adminUrl,
    async stop(graceMs = args.drainTimeoutMs ?? 30_000) {
      if (stopped) return;
      stopped = true;
      source.stop();
      await kube?.stop();
      logger.info(
        { graceMs, active: dataPlane.activeConnections() },
        'stopping: no new connections, draining',
      );
      // GOAWAY to HTTP/2 clients and close idle keep-alives first, so draining can finish early.
      terminator?.drain();
      await dataPlane.shutdown(graceMs);
      await terminator?.close();
      security.close();
      await new Promise<void>((r) => (admin ? admin.close(() => r()) : r()));
      logger.info('stopped');
    },
  };
}

export async function runCommand(args: RunArgs): Promise<number> {
  const gw = await startGateway(args);
  return new Promise<number>((resolve) => {
    const onSignal = (sig: string) => {
      gw.logger.info({ signal: sig }, 'signal received');
      process.removeAllListeners('SIGTERM');
      process.removeAllListeners('SIGINT');
      const grace = args.drainTimeoutMs ?? 30_000;
      // The drain is bounded by --drain-timeout; whatever handle outlives it (a stuck upstream pool, a
      // half-closed peer) must not keep the process alive: exit a little after the bound regardless.
      setTimeout(() => {
        gw.logger.warn('shutdown did not finish in time: exiting');
        gw.logger.flush?.();
        process.exit(1);
      }, grace + 5_000).unref();
      gw.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
}
