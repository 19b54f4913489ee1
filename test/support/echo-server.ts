// Backends that behave like the Gateway API conformance echo-basic images (TCP line protocol and HTTP JSON echo).
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type PeerCertificate, TLSSocket } from 'node:tls';
import type { CertPair } from './certs.ts';
import { type ProxyInfo, readProxyHeader } from './proxy-protocol.ts';

/** Same text as echo-basic/tcpserver's WelcomeMessage. */
export const TCP_BANNER = 'Gateway API Test TCP Server\n';

/** The `TEST` reply: echo-basic's TCPAssertions fields, plus what the peer and PROXY header looked like. */
export interface TcpEchoTest {
  namespace: string;
  ingress: string;
  service: string;
  pod: string;
  tcpport: string;
  tlsport?: string;
  isTLS: boolean;
  tls?: {
    version: string;
    serverName: string;
    negotiatedProtocol?: string;
    cipherSuite: string;
    /** snigate extension: subject of the verified client certificate (mTLS), e.g. `CN=client`. */
    clientSubject?: string;
    clientAuthorized?: boolean;
  };
  /** snigate extensions. */
  remoteAddress: string;
  remotePort: number;
  proxy?: ProxyInfo;
}

export interface EchoServer {
  port: number;
  host: string;
  pod: string;
  /** Accepted TCP connections so far. */
  connections: number;
  close(): Promise<void>;
}

export interface TcpEchoServer extends EchoServer {
  /** One entry per connection that got past its TLS handshake (and PROXY header). */
  sessions: TcpEchoTest[];
  /** TLS handshake or PROXY header failures seen by the server. */
  failures: string[];
}

export interface HttpEchoServer extends EchoServer {
  requests: HttpEchoResponse[];
}

export type TlsServerOptions = CertPair & {
  ca?: string;
  requestCert?: boolean;
  /** With requestCert: refuse clients without a valid cert. Default true (default false if requestCert is off). */
  rejectUnauthorized?: boolean;
  alpn?: string[];
};

export interface TcpEchoOptions {
  pod: string;
  namespace?: string;
  service?: string;
  tls?: TlsServerOptions;
  /** Expect a PROXY v1/v2 header first (as snigate sends when configured), and report it in `TEST`. */
  proxyProtocol?: boolean;
  host?: string;
  port?: number;
}

const DEFAULT_NS = 'gateway-conformance-infra';

function goTlsVersion(protocol: string | null): string {
  // Node says 'TLSv1.3', Go's tls.VersionName says 'TLS 1.3'.
  return protocol ? protocol.replace(/^TLSv/, 'TLS ') : '';
}

function subjectString(cert: PeerCertificate | undefined): string | undefined {
  if (!cert?.subject) return undefined;
  return Object.entries(cert.subject)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ');
}

async function listen(server: Server, host: string, port: number): Promise<number> {
  server.listen(port, host);
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('server has no TCP address');
  return addr.port;
}

function closer(server: Server, sockets: Set<Socket>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    return closing;
  };
}

export async function startTcpEcho(opts: TcpEchoOptions): Promise<TcpEchoServer> {
  const host = opts.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  // A never-listening tls.Server does the handshakes: it applies requestCert/rejectUnauthorized and sets `authorized`.
  const tlsServer = opts.tls
    ? createTlsServer({
        cert: opts.tls.certPem,
        key: opts.tls.keyPem,
        ...(opts.tls.ca ? { ca: opts.tls.ca } : {}),
        requestCert: opts.tls.requestCert ?? false,
        rejectUnauthorized: opts.tls.rejectUnauthorized ?? opts.tls.requestCert ?? false,
        ...(opts.tls.alpn ? { ALPNProtocols: opts.tls.alpn } : {}),
      })
    : undefined;
  // The TLSSocket shares the raw socket's handle, so the peer address identifies the hand-over.
  const awaitingTls = new Map<string, (t: TLSSocket) => void>();
  const peerKey = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  tlsServer?.on('secureConnection', (t: TLSSocket) => awaitingTls.get(peerKey(t))?.(t));
  tlsServer?.on('tlsClientError', (err: Error) => srv.failures.push(`tls: ${err.message}`));
  let port = 0;

  const handle = async (raw: Socket): Promise<void> => {
    const proxy = opts.proxyProtocol ? await readProxyHeader(raw, 10_000) : undefined;
    let sock: Socket = raw;
    let tlsInfo: TcpEchoTest['tls'];
    if (opts.tls && tlsServer) {
      const key = peerKey(raw);
      let timer: NodeJS.Timeout | undefined;
      const t = await new Promise<TLSSocket>((resolve, reject) => {
        timer = setTimeout(() => {
          reject(new Error('TLS handshake timed out'));
          raw.destroy();
        }, 10_000);
        raw.once('close', () => reject(new Error('closed during TLS handshake')));
        awaitingTls.set(key, resolve);
        tlsServer.emit('connection', raw);
      }).finally(() => {
        clearTimeout(timer);
        awaitingTls.delete(key);
      });
      sockets.add(t);
      sock = t;
      const clientSubject = opts.tls.requestCert ? subjectString(t.getPeerCertificate()) : undefined;
      tlsInfo = {
        version: goTlsVersion(t.getProtocol()),
        serverName: typeof t.servername === 'string' ? t.servername : '',
        cipherSuite: t.getCipher().standardName,
        ...(t.alpnProtocol ? { negotiatedProtocol: t.alpnProtocol } : {}),
        ...(clientSubject ? { clientSubject, clientAuthorized: t.authorized } : {}),
      };
    }
    const test: TcpEchoTest = {
      namespace: opts.namespace ?? DEFAULT_NS,
      ingress: '',
      service: opts.service ?? '',
      pod: opts.pod,
      tcpport: String(port),
      ...(opts.tls ? { tlsport: String(port) } : {}),
      isTLS: Boolean(opts.tls),
      ...(tlsInfo ? { tls: tlsInfo } : {}),
      remoteAddress: raw.remoteAddress ?? '',
      remotePort: raw.remotePort ?? 0,
      ...(proxy ? { proxy } : {}),
    };
    srv.sessions.push(test);
    const payload = JSON.stringify(test);
    sock.write(TCP_BANNER);
    let pending = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      pending += chunk;
      // Same as Go's bufio.ScanLines: split on \n, drop a trailing \r, ignore unknown lines.
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        if (line === 'TEST') sock.write(`${payload}\n`);
        else if (line === 'IS_TLS') sock.write(`${Boolean(opts.tls)}\n`);
        else if (line === 'PING') sock.write('PONG\n');
      }
    });
    // The Go server closes its side when the client's stream ends.
    sock.on('end', () => sock.end());
  };

  const server = createNetServer((raw) => {
    srv.connections++;
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => {});
    handle(raw).catch((err: unknown) => {
      srv.failures.push(err instanceof Error ? err.message : String(err));
      raw.destroy();
    });
  });
  port = await listen(server, host, opts.port ?? 0);
  const srv: TcpEchoServer = {
    port,
    host,
    pod: opts.pod,
    connections: 0,
    sessions: [],
    failures: [],
    close: closer(server, sockets),
  };
  return srv;
}

export interface HttpEchoResponse {
  path: string;
  host: string;
  method: string;
  proto: string;
  headers: Record<string, string[]>;
  httpPort: string;
  namespace: string;
  ingress: string;
  service: string;
  pod: string;
  tls?: { version: string; serverName: string; negotiatedProtocol?: string; cipherSuite: string };
  /** snigate extensions. */
  remoteAddress: string;
  body: string;
}

export interface HttpEchoOptions {
  pod: string;
  namespace?: string;
  service?: string;
  tls?: CertPair;
  host?: string;
  port?: number;
}

export async function startHttpEcho(opts: HttpEchoOptions): Promise<HttpEchoServer> {
  const host = opts.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  let port = 0;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const sock = req.socket as Socket & Partial<TLSSocket>;
      const encrypted = sock instanceof TLSSocket;
      const body: HttpEchoResponse = {
        path: req.url ?? '',
        host: req.headers.host ?? '',
        method: req.method ?? '',
        proto: `HTTP/${req.httpVersion}`,
        headers: req.headersDistinct as Record<string, string[]>,
        httpPort: String(port),
        namespace: opts.namespace ?? DEFAULT_NS,
        ingress: '',
        service: opts.service ?? '',
        pod: opts.pod,
        ...(encrypted
          ? {
              tls: {
                // echo-basic's HTTP server reports 'TLSv1.3' (unlike its TCP server).
                version: sock.getProtocol() ?? '',
                serverName: typeof sock.servername === 'string' ? sock.servername : '',
                cipherSuite: sock.getCipher().standardName,
                ...(sock.alpnProtocol ? { negotiatedProtocol: sock.alpnProtocol } : {}),
              },
            }
          : {}),
        remoteAddress: sock.remoteAddress ?? '',
        body: Buffer.concat(chunks).toString('utf8'),
      };
      srv.requests.push(body);
      const status = /^\/status\/(\d{3})(?:\?|$)/.exec(body.path);
      res.writeHead(status ? Number(status[1]) : 200, {
        'content-type': 'application/json',
        'x-content-type-options': 'nosniff',
      });
      res.end(JSON.stringify(body, null, 1));
    });
  };

  const server = opts.tls
    ? createHttpsServer(
        { cert: opts.tls.certPem, key: opts.tls.keyPem, ALPNProtocols: ['http/1.1'] },
        handler,
      )
    : createHttpServer(handler);
  server.on('connection', (s: Socket) => {
    srv.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {});
  port = await listen(server, host, opts.port ?? 0);
  const srv: HttpEchoServer = {
    port,
    host,
    pod: opts.pod,
    connections: 0,
    requests: [],
    close: async () => {
      server.closeAllConnections();
      await closer(server, sockets)();
    },
  };
  return srv;
}

export {
  type EchoClientOptions,
  type EchoClientResult,
  echoClient,
  type TlsOutcome,
  tlsOutcome,
} from './echo-client.ts';
