/** Header plumbing of the HTTP proxy: hop-by-hop removal, X-Forwarded-*, XFCC, and response header filtering. */
import { randomUUID } from 'node:crypto';
import type { HeaderList, HeaderMod } from './http-filters.ts';
import { modifyHeaders } from './http-filters.ts';
import type { RequestContext } from './http-types.ts';

/** Never forwarded in either direction (RFC 9110 §7.6.1), plus what undici refuses to be given. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/** Request headers the proxy owns: stripped from the client's and set by us. */
const PROXY_OWNED = new Set(['host', 'expect', 'x-forwarded-client-cert']);

/** `Connection` values seen (bounded: clients choose them) → their drop sets; most are `keep-alive` or `close`. */
const connectionSets = new Map<string, Set<string>>();

/** Connection-specific header names: the fixed list plus the names listed in `Connection`. Never mutate the result. */
function connectionHeaders(connection: string | undefined): Set<string> {
  if (connection === undefined || connection === '') return HOP_BY_HOP;
  const known = connectionSets.get(connection);
  if (known !== undefined) return known;
  let set = HOP_BY_HOP;
  for (const t of connection.split(',')) {
    const name = t.trim().toLowerCase();
    if (name === '' || set.has(name)) continue;
    if (set === HOP_BY_HOP) set = new Set(HOP_BY_HOP);
    set.add(name);
  }
  if (connectionSets.size < 64 && connection.length <= 256) connectionSets.set(connection, set);
  return set;
}

/**
 * The client's request headers as they should go upstream, before filters: pseudo-headers, hop-by-hop headers,
 * Host, Expect and any client-sent X-Forwarded-Client-Cert dropped; HTTP/2 `cookie` crumbs joined with `; `.
 */
export function upstreamRequestHeaders(rawHeaders: string[]): {
  headers: HeaderList;
  requestId: string | null;
} {
  let connection: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'connection') {
      connection = connection === undefined ? rawHeaders[i + 1]! : `${connection},${rawHeaders[i + 1]!}`;
    }
  }
  const drop = connectionHeaders(connection);
  const headers: HeaderList = new Map();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name.startsWith(':') || drop.has(name) || PROXY_OWNED.has(name)) continue;
    const value = rawHeaders[i + 1]!;
    const cur = headers.get(name);
    if (cur === undefined) headers.set(name, [value]);
    else cur.push(value);
  }
  const cookies = headers.get('cookie');
  if (cookies !== undefined && cookies.length > 1) headers.set('cookie', [cookies.join('; ')]);
  const id = headers.get('x-request-id')?.[0];
  return { headers, requestId: id !== undefined && /^[\x21-\x7e]{1,128}$/.test(id) ? id : null };
}

/** Adds X-Forwarded-For/Proto/Host/Port, X-Request-Id and (for a verified client certificate) XFCC. */
export function addForwardingHeaders(
  headers: HeaderList,
  ctx: RequestContext,
  authority: string,
  requestId: string,
): void {
  const xff = headers.get('x-forwarded-for');
  const prior = xff === undefined ? '' : `${xff.join(', ')}, `;
  headers.set('x-forwarded-for', [prior + unmapV4(ctx.client.address)]);
  headers.set('x-forwarded-proto', [ctx.scheme]);
  headers.set('x-forwarded-host', [authority]);
  headers.set('x-forwarded-port', [String(ctx.localPort)]);
  headers.set('x-request-id', [requestId]);
  if (ctx.clientCert !== null) headers.set('x-forwarded-client-cert', [xfcc(ctx.clientCert)]);
}

export function newRequestId(): string {
  return randomUUID();
}

/** `::ffff:1.2.3.4` (a v4 client on a dual-stack socket) → `1.2.3.4`. */
export function unmapV4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * Envoy's x-forwarded-client-cert element for the verified client certificate:
 * `Hash=<hex sha256 of the DER>;Subject="<subject>";URI=<uri SAN>;DNS=<dns SAN>` (one entry per SAN).
 */
export function xfcc(cert: NonNullable<RequestContext['clientCert']>): string {
  const parts = [
    `Hash=${cert.fingerprint256.replaceAll(':', '').toLowerCase()}`,
    `Subject=${quote(cert.subject, true)}`,
  ];
  const dns: string[] = [];
  for (const entry of (cert.san ?? '').split(/,\s*/)) {
    const colon = entry.indexOf(':');
    if (colon === -1) continue;
    const kind = entry.slice(0, colon);
    const value = entry.slice(colon + 1);
    // Envoy's order: URI entries, then DNS entries.
    if (kind === 'URI') parts.push(`URI=${quote(value, false)}`);
    else if (kind === 'DNS') dns.push(`DNS=${quote(value, false)}`);
  }
  return [...parts, ...dns].join(';');
}

function quote(v: string, always: boolean): string {
  if (!always && !/[",;=\\]/.test(v)) return v;
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Upstream response headers as they should go to the client, as the flat `[name, value, ...]` list `writeHead` takes
 * without building an object: hop-by-hop removed, ResponseHeaderModifiers applied. Repeated names stay repeated.
 */
export function downstreamResponseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  mods: HeaderMod[],
): string[] {
  const conn = upstream.connection;
  const drop =
    conn === undefined ? HOP_BY_HOP : connectionHeaders(Array.isArray(conn) ? conn.join(',') : conn);
  const out: string[] = [];
  if (mods.length > 0) {
    const list: HeaderList = new Map();
    for (const [name, value] of Object.entries(upstream)) {
      const key = name.toLowerCase();
      if (value === undefined || drop.has(key)) continue;
      list.set(key, Array.isArray(value) ? [...value] : [value]);
    }
    for (const m of mods) modifyHeaders(list, m);
    for (const [k, vs] of list) for (const v of vs) out.push(k, v);
    return out;
  }
  const names = Object.keys(upstream);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const value = upstream[name];
    const key = name.toLowerCase();
    if (value === undefined || drop.has(key)) continue;
    if (typeof value === 'string') out.push(key, value);
    else for (const v of value) out.push(key, v);
  }
  return out;
}

/** HeaderList → undici's headers object (arrays become repeated header lines). */
export function toUndiciHeaders(headers: HeaderList, host: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = { host };
  for (const [k, v] of headers) out[k] = v.length === 1 ? v[0]! : v;
  return out;
}

/** HeaderList → the flat `[name, value, ...]` list undici's dispatch takes (no object, one line per value). */
export function toUndiciHeaderList(headers: HeaderList, host: string): string[] {
  // A filter that set `host` replaces ours, first in place, as the object form did (several values: undici refuses).
  const own = headers.get('host');
  const out = own === undefined ? ['host', host] : ['host', (own.length === 1 ? own[0] : own) as string];
  // forEach with a `this` argument: no closure and no [key, value] entry array per header.
  headers.forEach(own === undefined ? pushHeader : pushHeaderButHost, out);
  return out;
}

function pushHeader(this: string[], values: string[], name: string): void {
  if (values.length === 1) this.push(name, values[0]!);
  else for (const v of values) this.push(name, v);
}

function pushHeaderButHost(this: string[], values: string[], name: string): void {
  if (name !== 'host') pushHeader.call(this, values, name);
}

/** Serializes an HTTP/1.1 request head (WebSocket upgrades write it on a raw socket). */
export function requestHead(method: string, target: string, host: string, headers: HeaderList): string {
  let s = `${method} ${target} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, vs] of headers) {
    // Values with CR/LF would split the head; the client's are already refused by Node's parser.
    for (const v of vs) if (!/[\r\n]/.test(v)) s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}
