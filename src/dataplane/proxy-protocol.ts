/** HAProxy PROXY protocol v1/v2: encode for backends, decode (bounded, never throws) from trusted peers. */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface ProxyAddresses {
  family: 'tcp4' | 'tcp6';
  sourceAddress: string;
  sourcePort: number;
  destAddress: string;
  destPort: number;
}

export type ProxyHeaderResult =
  | { status: 'need-more' }
  | { status: 'ok'; addresses: ProxyAddresses | null /* null for LOCAL / UNKNOWN */; consumed: number }
  | { status: 'none' }
  | { status: 'error'; detail: string };

/** The 12-byte v2 signature. */
export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Spec §2.1: the longest v1 line, CRLF included. */
export const PROXY_V1_MAX_LENGTH = 107;
export const PROXY_V2_MAX_LENGTH = 16 + 65535;

/** Parse a textual IPv6 address (no zone id) into 16 bytes; null if invalid. */
export function parseIPv6(text: string): Buffer | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  let s = text;
  const out = Buffer.alloc(16);
  // A trailing dotted quad stands for the last two groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = tail.split('.').map(Number);
    const hex = (a: number, b: number) => ((a << 8) | b).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hex(v4[0]!, v4[1]!)}:${hex(v4[2]!, v4[3]!)}`;
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const missing = 8 - left.length - right.length;
  // '::' stands for at least one zero group; without it there must be exactly eight.
  if (rest === undefined ? missing !== 0 : missing < 1) return null;
  const groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  for (const [i, g] of groups.entries()) {
    if (!(g >= 0 && g <= 0xffff)) return null;
    out.writeUInt16BE(g, i * 2);
  }
  return out;
}

/** RFC 5952 text for 16 address bytes (longest zero run compressed, lowercase, IPv4-mapped shown dotted). */
export function formatIPv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function ipv4Bytes(text: string): Buffer | null {
  if (!isIPv4(text)) return null;
  return Buffer.from(text.split('.').map(Number));
}

const MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** Unwrap an IPv4-mapped IPv6 address (what a dual-stack socket reports for IPv4 peers). */
export function unmapIPv4(address: string): string {
  const m = MAPPED.exec(address);
  return m && isIPv4(m[1]!) ? m[1]! : address;
}

/**
 * Build ProxyAddresses from socket endpoints. A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d;
 * those become TCP4 when both ends are IPv4, so backends see the plain client address.
 */
export function proxyAddressesFor(
  sourceAddress: string,
  sourcePort: number,
  destAddress: string,
  destPort: number,
): ProxyAddresses {
  const src = unmapIPv4(sourceAddress);
  const dst = unmapIPv4(destAddress);
  if (isIPv4(src) && isIPv4(dst)) {
    return { family: 'tcp4', sourceAddress: src, sourcePort, destAddress: dst, destPort };
  }
  const six = (a: string) => (isIPv4(a) ? `::ffff:${a}` : a);
  return { family: 'tcp6', sourceAddress: six(src), sourcePort, destAddress: six(dst), destPort };
}

function addressBytes(a: ProxyAddresses, which: 'source' | 'dest'): Buffer {
  const text = which === 'source' ? a.sourceAddress : a.destAddress;
  const b = a.family === 'tcp4' ? ipv4Bytes(text) : parseIPv6(text);
  if (b === null) throw new TypeError(`invalid ${a.family} ${which} address: ${text}`);
  return b;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`invalid port ${port}`);
  return port;
}

/** Encode a v1 line. Throws TypeError on invalid addresses (a caller bug, never client input). */
export function encodeProxyV1(a: ProxyAddresses): Buffer {
  const src = addressBytes(a, 'source');
  const dst = addressBytes(a, 'dest');
  const fmt = (b: Buffer) => (a.family === 'tcp4' ? [...b].join('.') : formatIPv6(b));
  const proto = a.family === 'tcp4' ? 'TCP4' : 'TCP6';
  const line = `PROXY ${proto} ${fmt(src)} ${fmt(dst)} ${checkPort(a.sourcePort)} ${checkPort(a.destPort)}\r\n`;
  return Buffer.from(line, 'latin1');
}

/** Encode a v2 PROXY-command header with no TLVs. Throws TypeError on invalid addresses. */
export function encodeProxyV2(a: ProxyAddresses): Buffer {
  const src = addressBytes(a, 'source');
  const dst = addressBytes(a, 'dest');
  const addrLen = src.length * 2 + 4;
  const out = Buffer.alloc(16 + addrLen);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = a.family === 'tcp4' ? 0x11 : 0x21; // AF_INET/AF_INET6 over STREAM
  out.writeUInt16BE(addrLen, 14);
  src.copy(out, 16);
  dst.copy(out, 16 + src.length);
  out.writeUInt16BE(checkPort(a.sourcePort), 16 + src.length * 2);
  out.writeUInt16BE(checkPort(a.destPort), 18 + src.length * 2);
  return out;
}

/** True when buf is a (possibly complete) prefix of sig. */
function isPrefixOf(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  return buf.compare(sig, 0, n, 0, n) === 0;
}

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

function parsePort(s: string): number {
  if (!PORT.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

function decodeV1(buf: Buffer): ProxyHeaderResult {
  const limit = Math.min(buf.length, PROXY_V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const b = buf[i]!;
    if (b === 0x0a) {
      if (buf[i - 1] !== 0x0d) return { status: 'error', detail: 'v1: LF without CR' };
      end = i + 1;
      break;
    }
    if (b !== 0x0d && (b < 0x20 || b > 0x7e)) return { status: 'error', detail: 'v1: non-printable byte' };
  }
  if (end < 0) {
    return buf.length >= PROXY_V1_MAX_LENGTH
      ? { status: 'error', detail: `v1: no CRLF within ${PROXY_V1_MAX_LENGTH} bytes` }
      : { status: 'need-more' };
  }
  const parts = buf.toString('latin1', 0, end - 2).split(' ');
  if (parts[1] === 'UNKNOWN') return { status: 'ok', addresses: null, consumed: end };
  if (parts.length !== 6) return { status: 'error', detail: 'v1: expected 6 fields' };
  const [, proto, src, dst, sp, dp] = parts as [string, string, string, string, string, string];
  const sourcePort = parsePort(sp);
  const destPort = parsePort(dp);
  if (sourcePort < 0 || destPort < 0) return { status: 'error', detail: 'v1: bad port' };
  if (proto === 'TCP4') {
    if (!isIPv4(src) || !isIPv4(dst)) return { status: 'error', detail: 'v1: bad IPv4 address' };
    return {
      status: 'ok',
      addresses: { family: 'tcp4', sourceAddress: src, sourcePort, destAddress: dst, destPort },
      consumed: end,
    };
  }
  if (proto === 'TCP6') {
    const s = parseIPv6(src);
    const d = parseIPv6(dst);
    if (s === null || d === null) return { status: 'error', detail: 'v1: bad IPv6 address' };
    const addresses: ProxyAddresses = {
      family: 'tcp6',
      sourceAddress: formatIPv6(s),
      sourcePort,
      destAddress: formatIPv6(d),
      destPort,
    };
    return { status: 'ok', addresses, consumed: end };
  }
  return { status: 'error', detail: 'v1: unknown protocol' };
}

function decodeV2(buf: Buffer): ProxyHeaderResult {
  if (buf.length < 16) return { status: 'need-more' };
  const verCmd = buf[12]!;
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return { status: 'error', detail: `v2: version ${verCmd >> 4}` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { status: 'error', detail: `v2: command ${cmd}` };
  const af = fam >> 4;
  const transport = fam & 0x0f;
  if (af > 3 || transport > 2) return { status: 'error', detail: `v2: family 0x${fam.toString(16)}` };
  if (buf.length < 16 + len) return { status: 'need-more' };
  const consumed = 16 + len;
  // LOCAL (health checks from the balancer itself) and non-TCP families keep the real socket endpoints.
  if (cmd === 0 || transport !== 1 || af === 0 || af === 3)
    return { status: 'ok', addresses: null, consumed };
  const size = af === 1 ? 4 : 16;
  if (len < size * 2 + 4) return { status: 'error', detail: 'v2: address block too short' };
  const src = buf.subarray(16, 16 + size);
  const dst = buf.subarray(16 + size, 16 + size * 2);
  const fmt = (b: Buffer) => (size === 4 ? [...b].join('.') : formatIPv6(b));
  // Any TLVs after the addresses are skipped: we have no use for them yet.
  const addresses: ProxyAddresses = {
    family: size === 4 ? 'tcp4' : 'tcp6',
    sourceAddress: fmt(src),
    sourcePort: buf.readUInt16BE(16 + size * 2),
    destAddress: fmt(dst),
    destPort: buf.readUInt16BE(18 + size * 2),
  };
  return { status: 'ok', addresses, consumed };
}

const SIGNATURES = [PROXY_V2_SIGNATURE, V1_PREFIX];

/**
 * Whether the bytes start a PROXY header: 'proxy' as soon as the v1 prefix or the v2 signature is complete,
 * 'need-more' while they could still be one. An untrusted peer is refused on this, without buffering a header
 * that v2 lets run to 64 KiB.
 */
export function proxySignature(buf: Buffer): 'proxy' | 'need-more' | 'none' {
  if (buf.length === 0) return 'need-more';
  for (const sig of SIGNATURES) {
    if (isPrefixOf(buf, sig)) return buf.length >= sig.length ? 'proxy' : 'need-more';
  }
  return 'none';
}

/** Decode a v1 or v2 header at the start of buf (bounded: v1 ≤ 107 bytes, v2 ≤ 16+65535). Never throws. */
export function decodeProxyHeader(buf: Buffer): ProxyHeaderResult {
  try {
    if (buf.length === 0) return { status: 'need-more' };
    if (isPrefixOf(buf, PROXY_V2_SIGNATURE)) {
      return buf.length < PROXY_V2_SIGNATURE.length ? { status: 'need-more' } : decodeV2(buf);
    }
    if (isPrefixOf(buf, V1_PREFIX)) {
      return buf.length < V1_PREFIX.length ? { status: 'need-more' } : decodeV1(buf);
    }
    return { status: 'none' };
  } catch (err) {
    return { status: 'error', detail: `internal error: ${String(err)}` };
  }
}

const compiled = new WeakMap<readonly string[], BlockList>();

/** Compile CIDRs ("10.0.0.0/8", "2001:db8::/32", or a bare address) into a BlockList; invalid entries are skipped. */
export function compileCidrs(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addr = '', prefix] = entry.trim().split('/');
    const family = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : null;
    if (family === null) continue;
    const max = family === 'ipv4' ? 32 : 128;
    const bits = prefix === undefined ? max : /^[0-9]{1,3}$/.test(prefix) ? Number(prefix) : -1;
    if (bits < 0 || bits > max) continue;
    try {
      list.addSubnet(addr, bits, family);
    } catch {
      // Config validation reports bad entries; here they simply trust nobody.
    }
  }
  return list;
}

/**
 * Is `address` (IPv4, IPv6 or IPv4-mapped IPv6) inside one of the CIDRs? The compiled list is cached per
 * array object, so config must replace the array rather than mutate it.
 */
export function isTrusted(address: string, cidrs: string[]): boolean {
  let list = compiled.get(cidrs);
  if (list === undefined) {
    list = compileCidrs(cidrs);
    compiled.set(cidrs, list);
  }
  const plain = unmapIPv4(address);
  try {
    if (isIPv4(plain)) return list.check(plain, 'ipv4') || list.check(`::ffff:${plain}`, 'ipv6');
    if (isIPv6(address)) return list.check(address, 'ipv6');
  } catch {
    // Unparseable input is simply not trusted.
  }
  return false;
}
