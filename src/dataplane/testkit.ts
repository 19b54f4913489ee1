/** Test-only helpers for the data plane tests: table builders, a captured-log DataPlane, raw backends. */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import pino from 'pino';
import type {
  Backend,
  BackendPolicy,
  Bind,
  ClientSettings,
  Endpoint,
  ListenerMode,
  RoutingTable,
  SniRoute,
  TableListener,
} from '../table/types.ts';
import { DEFAULT_BACKEND_POLICY, DEFAULT_CLIENT_SETTINGS } from '../table/types.ts';
import { ClientHelloReader } from './clienthello.ts';
import type { ConnectionRecord } from './conn-log.ts';
import { DataPlane, type DataPlaneOptions } from './server.ts';

export function backend(
  id: string,
  endpoints: Endpoint[],
  opts: { weight?: number; invalid?: string; policy?: Partial<BackendPolicy> } = {},
): Backend {
  return {
    id,
    weight: opts.weight ?? 1,
    ...(opts.invalid !== undefined ? { invalid: opts.invalid } : {}),
    endpoints,
    policy: { ...DEFAULT_BACKEND_POLICY, healthCheck: null, connectTimeoutMs: 1000, ...opts.policy },
  };
}

export function ep(port: number, address = '127.0.0.1'): Endpoint {
  return { address, port };
}

export function route(hostname: string, name: string, backends: Backend[]): SniRoute {
  return { hostname, route: { kind: 'TLSRoute', namespace: 'ns', name }, backends: { backends } };
}

export function listener(
  name: string,
  hostname: string | null,
  routes: SniRoute[],
  mode: ListenerMode = 'passthrough',
): TableListener {
  return { id: `ns/gw/${name}`, gateway: { namespace: 'ns', name: 'gw' }, name, hostname, mode, routes };
}

export function bind(
  listeners: TableListener[],
  opts: {
    port?: number;
    address?: string | null;
    protocol?: Bind['protocol'];
    client?: Partial<ClientSettings>;
  } = {},
): Bind {
  return {
    address: opts.address === undefined ? '127.0.0.1' : opts.address,
    port: opts.port ?? 0,
    protocol: opts.protocol ?? 'tls',
    listeners,
    client: { ...DEFAULT_CLIENT_SETTINGS, helloTimeoutMs: 2000, ...opts.client },
  };
}

export interface TestPlane {
  dp: DataPlane;
  port: number;
  records: ConnectionRecord[];
  /** Resolves when `n` connection records have been written. */
  waitRecords(n: number, timeoutMs?: number): Promise<ConnectionRecord[]>;
  close(): Promise<void>;
}

export async function startPlane(
  table: RoutingTable,
  opts: Partial<Omit<DataPlaneOptions, 'logger'>> = {},
): Promise<TestPlane> {
  const records: ConnectionRecord[] = [];
  let waiter: (() => void) | null = null;
  const stream = {
    write(line: string) {
      const obj = JSON.parse(line) as ConnectionRecord & { msg: string };
      if (obj.msg === 'connection') records.push(obj);
      waiter?.();
    },
  };
  const logger = pino({ level: 'info' }, stream);
  const dp = new DataPlane({ defaultAddresses: ['127.0.0.1'], logger, ...opts });
  const res = await dp.apply(table);
  const failed = res.binds.find((b) => !b.ok);
  if (failed) throw new Error(`bind failed: ${JSON.stringify(failed)}`);
  const port = dp.listening()[0]?.port ?? 0;
  return {
    dp,
    port,
    records,
    async waitRecords(n, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (records.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${records.length}/${n} connection records`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, 20);
          waiter = () => {
            clearTimeout(t);
            r();
          };
        });
        waiter = null;
      }
      return records;
    },
    close: () => dp.shutdown(0),
  };
}

/** A plain TCP backend that records what each connection sent; `onConn` may script it. */
export interface RawBackend {
  port: number;
  received: Buffer[];
  sockets: net.Socket[];
  /** Resolves with connection i's bytes once at least `n` have arrived. */
  waitBytes(i: number, n: number, timeoutMs?: number): Promise<Buffer>;
  close(): Promise<void>;
}

export async function startRawBackend(onConn?: (s: net.Socket, i: number) => void): Promise<RawBackend> {
  const received: Buffer[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const i = sockets.length;
    sockets.push(s);
    received.push(Buffer.alloc(0));
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      received[i] = Buffer.concat([received[i]!, d]);
    });
    onConn?.(s, i);
    // Like most servers: EOF from the client ends the conversation.
    s.on('end', () => {
      if (!s.writableEnded) s.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    received,
    sockets,
    async waitBytes(i, n, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while ((received[i]?.length ?? 0) < n) {
        if (Date.now() > deadline)
          throw new Error(`backend conn ${i}: ${received[i]?.length ?? 0}/${n} bytes`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return received[i]!;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A real ClientHello from Node's TLS client, captured by a raw server. */
export async function captureHello(servername?: string, alpn?: string[]): Promise<Buffer> {
  let resolve!: (b: Buffer) => void;
  const got = new Promise<Buffer>((r) => (resolve = r));
  const server = net.createServer((s) => {
    const reader = new ClientHelloReader(65536);
    s.on('data', (d: Buffer) => {
      if (reader.push(d).status !== 'need-more') {
        resolve(reader.bytes());
        s.destroy();
      }
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const c = tls.connect({
    port,
    host: '127.0.0.1',
    ...(servername !== undefined ? { servername } : {}),
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  await new Promise((r) => server.close(r));
  return hello;
}

/** Connects, resolving once connected; errors after that are swallowed (tests look at 'close'). */
export async function rawConnect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const s = net.connect({ port, host, allowHalfOpen: true });
  await once(s, 'connect');
  s.on('error', () => {});
  return s;
}

/** Resolves with all bytes the socket received and how it ended ('end' then close, or an error code). */
export function collect(s: net.Socket, timeoutMs = 3000): Promise<{ data: Buffer; error: string | null }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let error: string | null = null;
    const t = setTimeout(() => reject(new Error('socket did not close in time')), timeoutMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => s.end());
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks), error });
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A loopback port nothing listens on (bound, then closed): connects to it are refused. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A complete connection record for tests of the event consumers; `over` sets what the test is about. */
export function connectionRecord(over: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    connId: 1,
    client: '203.0.113.9:5555',
    bind: '0.0.0.0:443',
    listener: 'default/gw/tls',
    sni: 'a.example.com',
    alpn: null,
    route: 'TLSRoute/default/a',
    backend: 'Service/default/a:443',
    endpoint: '10.0.0.1:8443',
    bytesIn: 100,
    bytesOut: 200,
    durationMs: 5,
    helloMs: 1,
    end: 'client-closed',
    detail: null,
    ...over,
  };
}
