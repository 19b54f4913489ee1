// Manifest builders and small socket helpers shared by the policies-*.test.ts end-to-end tests.
import { connect as netConnect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { lineReader } from '../support/echo-client.ts';
import type { TcpEchoTest } from '../support/echo-server.ts';

export interface ListenerSpec {
  name: string;
  port: number;
}

/** A Gateway of TLS Passthrough listeners; `addresses` become spec.addresses of type IPAddress. */
export function gateway(name: string, listeners: ListenerSpec[], addresses: string[] = []): string {
  const addr = addresses.length
    ? `  addresses: [${addresses.map((a) => `{ type: IPAddress, value: "${a}" }`).join(', ')}]\n`
    : '';
  const ls = listeners
    .map((l) => `    - { name: ${l.name}, protocol: TLS, port: ${l.port}, tls: { mode: Passthrough } }`)
    .join('\n');
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: ${name}, namespace: default }
spec:
  gatewayClassName: snigate
${addr}  listeners:
${ls}
`;
}

export interface RefSpec {
  service: string;
  weight?: number;
}

/** A TLSRoute on every listener of `gw` (or one, with `section`); one rule, Service backends on port 443. */
export function tlsRoute(
  name: string,
  hosts: string[],
  refs: RefSpec[],
  gw: string,
  section?: string,
): string {
  const parent = section ? `{ name: ${gw}, sectionName: ${section} }` : `{ name: ${gw} }`;
  const br = refs
    .map((r) => `{ name: ${r.service}, port: 443${r.weight !== undefined ? `, weight: ${r.weight}` : ''} }`)
    .join(', ');
  return `apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [${parent}]
  hostnames: [${hosts.map((h) => `"${h}"`).join(', ')}]
  rules: [{ backendRefs: [${br}] }]
`;
}

/**
 * A Service (port 443, name `tls`, targetPort `port`) and one EndpointSlice holding `addresses` on `port`.
 * All endpoints share one port (a slice has one port list); use 127.0.0.x addresses for several endpoints.
 */
export function service(name: string, port: number, addresses: string[] = ['127.0.0.1']): string {
  const v6 = addresses.some((a) => a.includes(':'));
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  ports: [{ name: tls, port: 443, targetPort: ${port} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-1
  namespace: default
  labels: { kubernetes.io/service-name: ${name} }
addressType: ${v6 ? 'IPv6' : 'IPv4'}
ports: [{ name: tls, port: ${port} }]
endpoints:
${addresses.map((a) => `  - { addresses: ["${a}"], conditions: { ready: true } }`).join('\n')}
`;
}

export interface TargetSpec {
  kind: 'Service' | 'TLSRoute' | 'Gateway';
  name: string;
  sectionName?: string;
}

function targets(ts: TargetSpec[]): string {
  return ts
    .map((t) => {
      const group = t.kind === 'Service' ? '""' : 'gateway.networking.k8s.io';
      return `{ group: ${group}, kind: ${t.kind}, name: ${t.name}${t.sectionName ? `, sectionName: ${t.sectionName}` : ''} }`;
    })
    .join(', ');
}

/** A snigate policy; `spec` is YAML (indented by the caller's 2 spaces: one key per line). */
export function policy(
  kind: 'BackendTrafficPolicy' | 'ClientTrafficPolicy',
  name: string,
  target: TargetSpec[],
  spec: string,
  createdAt?: string,
): string {
  const created = createdAt ? `, creationTimestamp: "${createdAt}"` : '';
  const body = spec
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `apiVersion: gateway.snigate.io/v1alpha1
kind: ${kind}
metadata: { name: ${name}, namespace: default${created} }
spec:
  targetRefs: [${targets(target)}]
${body}
`;
}

export function yamlDocs(...docs: string[]): string {
  return docs.join('---\n');
}

/** An open passthrough session to a TLS echo backend: read lines, send lines, close. */
export interface EchoSession {
  raw: Socket;
  tls: TLSSocket;
  next: () => Promise<string>;
  /** Sends TEST and parses the reply. */
  test(): Promise<TcpEchoTest>;
  /** Resolves when the connection is closed by the other side (or errors). */
  closed: Promise<void>;
  close(): void;
}

/**
 * Connects to the gateway, optionally writes `preamble` (a PROXY header), does TLS with `servername` and
 * reads the echo banner. Rejects if any step takes longer than timeoutMs.
 */
export async function openSession(opts: {
  port: number;
  host?: string;
  servername: string;
  ca: string;
  preamble?: Buffer;
  timeoutMs?: number;
}): Promise<EchoSession> {
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const raw = netConnect({ port: opts.port, host });
  const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
  raw.on('error', () => {});
  const timer = setTimeout(
    () => raw.destroy(new Error(`session setup timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', resolve);
      raw.once('error', reject);
    });
    if (opts.preamble) raw.write(opts.preamble);
    const t = tlsConnect({ socket: raw, servername: opts.servername, ca: opts.ca });
    t.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
      t.once('close', () => reject(new Error('closed during TLS handshake')));
    });
    const next = lineReader(t);
    const banner = await next();
    if (!banner.startsWith('Gateway API Test TCP Server')) throw new Error(`unexpected banner ${banner}`);
    return {
      raw,
      tls: t,
      next,
      test: async () => {
        t.write('TEST\n');
        return JSON.parse(await next()) as TcpEchoTest;
      },
      closed,
      close: () => {
        t.destroy();
        raw.destroy();
      },
    };
  } catch (e) {
    raw.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** snigate_backend_connect_failures_total from the admin /metrics, summed over error codes, for one endpoint. */
export async function connectFailures(adminUrl: string, endpoint: string): Promise<number> {
  const res = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('snigate_backend_connect_failures_total{') && line.includes(`endpoint="${endpoint}"`))
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}
