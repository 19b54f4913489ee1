// PROXY protocol v1/v2 encode and parse for tests: the echo backend decodes what the gateway sends, clients send it in.
import { once } from 'node:events';
import { isIPv4, isIPv6, type Socket } from 'node:net';

export interface ProxyInfo {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  family: 'TCP4' | 'TCP6' | 'UNKNOWN';
  sourceAddress?: string;
  sourcePort?: number;
  destAddress?: string;
  destPort?: number;
  tlvs: Array<{ type: number; value: string /* hex */ }>;
}

export type ParseResult =
  | { status: 'ok'; info: ProxyInfo; length: number }
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string };

export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_MAX = 107;

export interface Endpoints {
  sourceAddress: string;
  sourcePort: number;
  destAddress: string;
  destPort: number;
}

export function encodeProxyV1(e: Endpoints): Buffer {
  const fam = isIPv6(e.sourceAddress) ? 'TCP6' : 'TCP4';
  return Buffer.from(
    `PROXY ${fam} ${e.sourceAddress} ${e.destAddress} ${e.sourcePort} ${e.destPort}\r\n`,
    'latin1',
  );
}

function ipv6Bytes(addr: string): Buffer {
  const [head = '', tail] = addr.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => Number.parseInt(h, 16)));
  const a = parse(head);
  const b = tail === undefined ? [] : parse(tail);
  const groups = [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(g, i * 2);
  return out;
}

function ipv6String(buf: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(i).toString(16));
  // Canonical enough for assertions on loopback and simple addresses.
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

export function encodeProxyV2(
  e: Endpoints | null,
  tlvs: Array<{ type: number; value: Buffer }> = [],
): Buffer {
  const tlvBuf = Buffer.concat(
    tlvs.map((t) => {
      const h = Buffer.alloc(3);
      h.writeUInt8(t.type, 0);
      h.writeUInt16BE(t.value.length, 1);
      return Buffer.concat([h, t.value]);
    }),
  );
  let fam = 0x00;
  let addr = Buffer.alloc(0);
  if (e) {
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(e.sourcePort, 0);
    ports.writeUInt16BE(e.destPort, 2);
    if (isIPv4(e.sourceAddress) !== isIPv4(e.destAddress))
      throw new Error('PROXY v2: mixed address families');
    if (isIPv4(e.sourceAddress)) {
      fam = 0x11;
      const ip = (s: string) => Buffer.from(s.split('.').map(Number));
      addr = Buffer.concat([ip(e.sourceAddress), ip(e.destAddress), ports]);
    } else {
      fam = 0x21;
      addr = Buffer.concat([ipv6Bytes(e.sourceAddress), ipv6Bytes(e.destAddress), ports]);
    }
  }
  const head = Buffer.alloc(4);
  head.writeUInt8(e ? 0x21 : 0x20, 0);
  head.writeUInt8(fam, 1);
  head.writeUInt16BE(addr.length + tlvBuf.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, addr, tlvBuf]);
}

function parseV1(buf: Buffer): ParseResult {
  const end = buf.indexOf('\r\n');
  if (end < 0)
    return buf.length >= V1_MAX
      ? { status: 'invalid', reason: 'v1 header too long' }
      : { status: 'incomplete' };
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const fam = parts[1];
  if (fam === 'UNKNOWN') {
    return {
      status: 'ok',
      length: end + 2,
      info: { version: 1, command: 'PROXY', family: 'UNKNOWN', tlvs: [] },
    };
  }
  if ((fam !== 'TCP4' && fam !== 'TCP6') || parts.length !== 6)
    return { status: 'invalid', reason: 'bad v1 header' };
  return {
    status: 'ok',
    length: end + 2,
    info: {
      version: 1,
      command: 'PROXY',
      family: fam,
      sourceAddress: parts[2],
      destAddress: parts[3],
      sourcePort: Number(parts[4]),
      destPort: Number(parts[5]),
      tlvs: [],
    },
  };
}

function parseV2(buf: Buffer): ParseResult {
  if (buf.length < 16) return { status: 'incomplete' };
  const verCmd = buf.readUInt8(12);
  if (verCmd >> 4 !== 2) return { status: 'invalid', reason: 'bad v2 version' };
  const famByte = buf.readUInt8(13);
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return { status: 'incomplete' };
  const body = buf.subarray(16, 16 + len);
  const info: ProxyInfo = {
    version: 2,
    command: (verCmd & 0xf) === 1 ? 'PROXY' : 'LOCAL',
    family: 'UNKNOWN',
    tlvs: [],
  };
  let off = 0;
  if (famByte === 0x11 && body.length >= 12) {
    info.family = 'TCP4';
    info.sourceAddress = [...body.subarray(0, 4)].join('.');
    info.destAddress = [...body.subarray(4, 8)].join('.');
    info.sourcePort = body.readUInt16BE(8);
    info.destPort = body.readUInt16BE(10);
    off = 12;
  } else if (famByte === 0x21 && body.length >= 36) {
    info.family = 'TCP6';
    info.sourceAddress = ipv6String(body.subarray(0, 16));
    info.destAddress = ipv6String(body.subarray(16, 32));
    info.sourcePort = body.readUInt16BE(32);
    info.destPort = body.readUInt16BE(34);
    off = 36;
  } else if (famByte !== 0x00) {
    return { status: 'invalid', reason: `unsupported v2 family 0x${famByte.toString(16)}` };
  }
  while (off + 3 <= body.length) {
    const type = body.readUInt8(off);
    const tlen = body.readUInt16BE(off + 1);
    if (off + 3 + tlen > body.length) return { status: 'invalid', reason: 'truncated TLV' };
    info.tlvs.push({ type, value: body.subarray(off + 3, off + 3 + tlen).toString('hex') });
    off += 3 + tlen;
  }
  return { status: 'ok', info, length: 16 + len };
}

export function parseProxyHeader(buf: Buffer): ParseResult {
  const sigLen = Math.min(buf.length, V2_SIGNATURE.length);
  if (buf.subarray(0, sigLen).equals(V2_SIGNATURE.subarray(0, sigLen))) {
    return sigLen < V2_SIGNATURE.length ? { status: 'incomplete' } : parseV2(buf);
  }
  const v1Prefix = Buffer.from('PROXY ', 'latin1');
  const pLen = Math.min(buf.length, v1Prefix.length);
  if (!buf.subarray(0, pLen).equals(v1Prefix.subarray(0, pLen)))
    return { status: 'invalid', reason: 'no PROXY header' };
  return pLen < v1Prefix.length ? { status: 'incomplete' } : parseV1(buf);
}

/** Reads a PROXY header off a socket; the bytes after it are pushed back with unshift(). */
export async function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyInfo> {
  let buf = Buffer.alloc(0);
  const deadline = AbortSignal.timeout(timeoutMs);
  for (let i = 0; i < 1000; i++) {
    const chunk = socket.read() as Buffer | null;
    if (chunk === null) {
      if (socket.readableEnded || socket.destroyed)
        throw new Error('connection closed before the PROXY header');
      const done = new AbortController();
      const signal = AbortSignal.any([deadline, done.signal]);
      try {
        await Promise.race([once(socket, 'readable', { signal }), once(socket, 'end', { signal })]);
      } finally {
        done.abort();
      }
      continue;
    }
    buf = Buffer.concat([buf, chunk]);
    const r = parseProxyHeader(buf);
    if (r.status === 'invalid') throw new Error(`invalid PROXY header: ${r.reason}`);
    if (r.status === 'ok') {
      if (buf.length > r.length) socket.unshift(buf.subarray(r.length));
      return r.info;
    }
  }
  throw new Error('PROXY header not complete after 1000 reads');
}
