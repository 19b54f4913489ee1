/** The admin HTTP server: health, readiness, live status and the routing table (secrets redacted). */
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Reconciler } from '../config/reconciler.ts';
import type { DataPlane } from '../dataplane/server.ts';
import { redactTable } from '../table/redact.ts';
import { hostAllowed } from './admin-host.ts';

export interface AdminOptions {
  host: string;
  port: number;
  reconciler: Reconciler;
  dataPlane: DataPlane;
  logger: Logger;
  /** Extra routes (metrics, dashboard) mounted by later modules. */
  extra?: Map<string, () => Promise<{ type: string; body: string; headers?: Record<string, string> }>>;
}

export function statusDocument(reconciler: Reconciler, dataPlane: DataPlane): Record<string, unknown> {
  const s = reconciler.serving;
  return {
    ready: s !== null,
    programmedAt: s?.programmedAt ?? null,
    lastReload: reconciler.lastReload,
    reloads: reconciler.counts,
    listening: dataPlane.listening(),
    activeConnections: dataPlane.activeConnections(),
    endpoints: dataPlane.health.snapshot(),
    bindFailures: s?.bindFailures ?? [],
    diagnostics: s?.result.allDiagnostics ?? [],
    statuses: s?.result.statuses ?? [],
  };
}

export async function startAdmin(o: AdminOptions): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const send = (code: number, type: string, body: string, headers?: Record<string, string>) => {
      res.writeHead(code, { ...headers, 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (code: number, v: unknown) =>
      send(code, 'application/json', `${JSON.stringify(v, null, 2)}\n`);
    if (!hostAllowed(req.headers.host, o.host)) {
      o.logger.warn(
        { host: req.headers.host?.slice(0, 100) },
        'admin request refused: Host is not localhost or an IP',
      );
      return send(
        403,
        'text/plain',
        'refused: this admin server is bound to loopback and answers only Host: localhost or an IP address (DNS-rebinding guard)\n',
      );
    }
    try {
      switch (url.pathname) {
        case '/healthz':
          return send(200, 'text/plain', 'ok\n');
        case '/readyz':
          return o.reconciler.serving
            ? send(200, 'text/plain', 'ready\n')
            : send(503, 'text/plain', 'no configuration programmed yet\n');
        case '/status':
          return json(200, statusDocument(o.reconciler, o.dataPlane));
        case '/config': {
          const s = o.reconciler.serving;
          return s
            ? json(200, redactTable(s.table))
            : json(503, { error: 'no configuration programmed yet' });
        }
        default: {
          const h = o.extra?.get(url.pathname);
          if (h) {
            h().then(
              (r) => send(200, r.type, r.body, r.headers),
              (e: Error) => send(500, 'text/plain', `${e.message}\n`),
            );
            return;
          }
          return send(404, 'text/plain', 'not found: try /status, /config, /healthz, /readyz\n');
        }
      }
    } catch (e) {
      o.logger.error({ err: e }, 'admin request failed');
      send(500, 'text/plain', 'internal error\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return server;
}
