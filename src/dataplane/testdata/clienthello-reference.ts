/**
 * Test-only: the first, Cursor-based ClientHello body parser, kept verbatim as the reference the
 * allocation-free parser in clienthello.ts must agree with (same fields, same error details).
 */
import { type ClientHello, normalizeSni } from '../clienthello.ts';

const HANDSHAKE_HEADER = 4;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ECH = 0xfe0d;

/** Bounds-checked cursor: reads past the end return -1/null instead of throwing. */
class Cursor {
  private pos: number;
  private readonly end: number;
  private readonly buf: Buffer;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.remaining < 1) return -1;
    return this.buf[this.pos++]!;
  }

  u16(): number {
    if (this.remaining < 2) return -1;
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  take(n: number): Buffer | null {
    if (n < 0 || this.remaining < n) return null;
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A sub-cursor over a vector prefixed by a `lenBytes`-byte length. */
  vec(lenBytes: 1 | 2): Cursor | null {
    const len = lenBytes === 1 ? this.u8() : this.u16();
    if (len < 0 || this.remaining < len) return null;
    const sub = new Cursor(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return sub;
  }
}

export type Parsed = { ok: true; hello: ClientHello } | { ok: false; detail: string };

function bad(detail: string): Parsed {
  return { ok: false, detail };
}

function parseServerName(c: Cursor): { sni: string } | { error: string } {
  const list = c.vec(2);
  if (list === null || c.remaining !== 0) return { error: 'server_name: bad list length' };
  if (list.remaining === 0) return { error: 'server_name: empty list' };
  let sni: string | null = null;
  while (list.remaining > 0) {
    const type = list.u8();
    const name = list.take(list.u16());
    if (type < 0 || name === null) return { error: 'server_name: truncated entry' };
    if (type !== 0) continue; // unknown name types are skipped, as Go and OpenSSL do
    if (sni !== null) return { error: 'server_name: more than one host_name' };
    const normalized = normalizeSni(name);
    if (normalized === null) return { error: 'server_name: not a valid DNS hostname' };
    sni = normalized;
  }
  if (sni === null) return { error: 'server_name: no host_name entry' };
  return { sni };
}

function parseAlpn(c: Cursor): string[] | string {
  const list = c.vec(2);
  if (list === null || c.remaining !== 0) return 'alpn: bad list length';
  if (list.remaining === 0) return 'alpn: empty list';
  const out: string[] = [];
  while (list.remaining > 0) {
    const name = list.take(list.u8());
    if (name === null) return 'alpn: truncated protocol name';
    if (name.length === 0) return 'alpn: empty protocol name';
    out.push(name.toString('latin1'));
  }
  return out;
}

function parseSupportedVersions(c: Cursor): number[] | string {
  const list = c.vec(1);
  if (list === null || c.remaining !== 0) return 'supported_versions: bad list length';
  if (list.remaining < 2 || list.remaining % 2 !== 0) return 'supported_versions: bad list length';
  const out: number[] = [];
  while (list.remaining > 0) out.push(list.u16());
  return out;
}

/** Parse a complete ClientHello body (after the 4-byte handshake header). */
export function referenceParseBody(body: Buffer): Parsed {
  const c = new Cursor(body);
  const legacyVersion = c.u16();
  if (legacyVersion < 0) return bad('truncated legacy_version');
  if (legacyVersion >> 8 !== 3) return bad(`unsupported legacy_version 0x${legacyVersion.toString(16)}`);
  if (c.take(32) === null) return bad('truncated random');
  const sessionId = c.vec(1);
  if (sessionId === null || sessionId.remaining > 32) return bad('bad legacy_session_id');
  const suites = c.vec(2);
  if (suites === null || suites.remaining < 2 || suites.remaining % 2 !== 0) return bad('bad cipher_suites');
  const compression = c.vec(1);
  if (compression === null || compression.remaining < 1) return bad('bad compression_methods');

  const hello: ClientHello = {
    sni: null,
    alpn: [],
    legacyVersion,
    supportedVersions: [],
    hasEch: false,
    size: body.length + HANDSHAKE_HEADER,
  };
  // Extensions are optional before TLS 1.3: a hello may end right after compression_methods.
  if (c.remaining === 0) return { ok: true, hello };
  const exts = c.vec(2);
  if (exts === null) return bad('bad extensions length');
  if (c.remaining !== 0) return bad('trailing bytes after extensions');

  // A hello carries a few dozen extensions at most: a linear scan beats hashing them into a Set.
  const seen: number[] = [];
  while (exts.remaining > 0) {
    const type = exts.u16();
    const data = exts.vec(2);
    if (type < 0 || data === null) return bad('truncated extension');
    // Duplicates are illegal (RFC 8446 §4.2) and would let two parsers disagree on the SNI.
    if (seen.includes(type)) return bad(`duplicate extension ${type}`);
    seen.push(type);
    if (type === EXT_SERVER_NAME) {
      const r = parseServerName(data);
      if ('error' in r) return bad(r.error);
      hello.sni = r.sni;
    } else if (type === EXT_ALPN) {
      const r = parseAlpn(data);
      if (typeof r === 'string') return bad(r);
      hello.alpn = r;
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      const r = parseSupportedVersions(data);
      if (typeof r === 'string') return bad(r);
      hello.supportedVersions = r;
    } else if (type === EXT_ECH) {
      hello.hasEch = true;
    }
  }
  return { ok: true, hello };
}
