/** Incremental, bounds-checked TLS ClientHello reader: reassembles across TCP segments and TLS records, extracts SNI/ALPN. */

export interface ClientHello {
  /** Lowercased, trailing dot stripped; null when no server_name extension. */
  sni: string | null;
  /** ALPN protocol names in client order ([] if absent). Bytes are decoded as latin1 so nothing is lost. */
  alpn: string[];
  legacyVersion: number;
  /** From the supported_versions extension ([] if absent). */
  supportedVersions: number[];
  /** encrypted_client_hello present: the SNI above is the outer (public) name, the only routable one. */
  hasEch: boolean;
  /** Handshake message length including its 4-byte header, without record headers. */
  size: number;
}

export type HelloError = 'not-tls' | 'not-client-hello' | 'malformed' | 'too-large';

export type HelloResult =
  | { status: 'need-more' }
  | { status: 'ok'; hello: ClientHello }
  | { status: 'error'; reason: HelloError; detail: string };

/** RFC 8446 §5.2: records may exceed 2^14 by at most 2048 bytes; anything larger is not a real peer. */
export const MAX_RECORD_LENGTH = 2 ** 14 + 2048;
/** Go's crypto/tls cap for a handshake message; post-quantum hellos with tickets stay well under it. */
export const DEFAULT_MAX_HELLO_BYTES = 65536;
/**
 * A ClientHello split into many tiny records costs 5 header bytes each; capping the record count
 * keeps memory at maxBytes + 5 * maxRecords while still accepting deliberately fragmented hellos.
 */
export const DEFAULT_MAX_RECORDS = 2048;

const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ECH = 0xfe0d;

const NEED_MORE: HelloResult = Object.freeze({ status: 'need-more' });

function fail(reason: HelloError, detail: string): HelloResult {
  return { status: 'error', reason, detail };
}

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

/**
 * The name must be something a Gateway API hostname could match (RFC 1123 LDH labels: 1-63 of a-z, 0-9 and
 * '-', not starting or ending with '-'; one trailing dot allowed): anything else (IP literals, wildcards, NULs,
 * non-ASCII) is refused rather than routed. One pass over the bytes, one string made (every connection runs it).
 */
export function normalizeSni(raw: Buffer): string | null {
  let n = raw.length;
  if (n === 0 || n > 254) return null;
  if (raw[n - 1] === 0x2e) n--;
  if (n === 0 || n > 253) return null;
  let label = 0;
  let upper = false;
  let dashLast = false;
  let digitsOnly = true;
  for (let i = 0; i < n; i++) {
    let b = raw[i]!;
    if (b === 0x2e) {
      if (label === 0 || dashLast) return null;
      label = 0;
      digitsOnly = true;
      continue;
    }
    if (b >= 0x41 && b <= 0x5a) {
      upper = true;
      b |= 0x20;
    }
    const digit = b >= 0x30 && b <= 0x39;
    if (b === 0x2d) {
      if (label === 0) return null;
    } else if (!digit && (b < 0x61 || b > 0x7a)) return null;
    if (++label > 63) return null;
    dashLast = b === 0x2d;
    if (!digit) digitsOnly = false;
  }
  // A numeric top label means an IPv4 literal (RFC 6066 §3 forbids literals in host_name).
  if (dashLast || digitsOnly) return null;
  const name = raw.toString('latin1', 0, n);
  return upper ? name.toLowerCase() : name;
}

type Parsed = { ok: true; hello: ClientHello } | { ok: false; detail: string };

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
function parseBody(body: Buffer): Parsed {
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

/**
 * Incremental reader: one per connection. push() each chunk as it arrives; never throws on any input.
 * Each byte is looked at once (record headers are tracked as a small state machine, handshake bytes are
 * copied once into a buffer sized from the handshake header) and the hello is parsed only when complete.
 * While the result is 'need-more', bufferedLength <= maxBytes + 5 * maxRecords + 4.
 */
export class ClientHelloReader {
  readonly maxBytes: number;
  readonly maxRecords: number;
  private chunks: Buffer[] = [];
  private total = 0;
  private result: HelloResult = NEED_MORE;

  // Record framing state.
  private readonly recHeader = new Uint8Array(RECORD_HEADER);
  private recHeaderFill = 0;
  private recRemaining = 0;
  private records = 0;

  // Handshake reassembly state.
  private readonly hsHeader = new Uint8Array(HANDSHAKE_HEADER);
  private hsHeaderFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;

  constructor(maxBytes: number = DEFAULT_MAX_HELLO_BYTES, maxRecords: number = DEFAULT_MAX_RECORDS) {
    this.maxBytes = maxBytes;
    this.maxRecords = maxRecords;
  }

  get bufferedLength(): number {
    return this.total;
  }

  /** Every byte pushed so far, in order (to replay to a passthrough backend or unshift into a TLSSocket). */
  bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.total)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Copies the chunks kept for bytes(): the caller's buffers may be views it is about to reuse. */
  own(): void {
    this.chunks = this.chunks.map((c) => Buffer.from(c));
  }

  push(chunk: Buffer): HelloResult {
    if (chunk.length === 0) return this.result;
    const first = this.total === 0;
    this.chunks.push(chunk);
    this.total += chunk.length;
    if (this.result.status !== 'need-more') return this.result;
    try {
      this.result = (first ? this.whole(chunk) : null) ?? this.consume(chunk);
    } catch (err) {
      // Unreachable by design; kept so that no input can ever throw out of push().
      this.result = fail('malformed', `internal error: ${String(err)}`);
    }
    if (this.result.status !== 'need-more') this.body = null;
    return this.result;
  }

  /**
   * The common case: the first chunk holds one record with the whole ClientHello. It is parsed in place
   * (no copy, no framing state); anything unusual (fragments, several records, bad headers) returns null
   * and takes the byte-by-byte path, which decides errors exactly as before.
   */
  private whole(chunk: Buffer): HelloResult | null {
    if (chunk.length < RECORD_HEADER + HANDSHAKE_HEADER) return null;
    if (chunk[0] !== CONTENT_HANDSHAKE || chunk[1] !== 3 || chunk[2]! > 4) return null;
    const recLen = (chunk[3]! << 8) | chunk[4]!;
    if (recLen === 0 || recLen > MAX_RECORD_LENGTH || chunk[5] !== HANDSHAKE_CLIENT_HELLO) return null;
    const len = (chunk[6]! << 16) | (chunk[7]! << 8) | chunk[8]!;
    const end = RECORD_HEADER + HANDSHAKE_HEADER + len;
    if (len + HANDSHAKE_HEADER > recLen || len + HANDSHAKE_HEADER > this.maxBytes || chunk.length < end) {
      return null;
    }
    this.records = 1;
    return this.finish(chunk.subarray(RECORD_HEADER + HANDSHAKE_HEADER, end));
  }

  private consume(chunk: Buffer): HelloResult {
    let off = 0;
    while (off < chunk.length) {
      if (this.recRemaining === 0) {
        // Read the record header byte by byte so 'not-tls' is decided from the first byte.
        const b = chunk[off++]!;
        this.recHeader[this.recHeaderFill++] = b;
        const r = this.checkRecordHeaderByte();
        if (r !== null) return r;
        continue;
      }
      const n = Math.min(this.recRemaining, chunk.length - off);
      this.recRemaining -= n;
      const r = this.feedHandshake(chunk, off, off + n);
      if (r !== null) return r;
      off += n;
    }
    return NEED_MORE;
  }

  private checkRecordHeaderByte(): HelloResult | null {
    const h = this.recHeader;
    const first = this.records === 0;
    switch (this.recHeaderFill) {
      case 1:
        if (h[0] !== CONTENT_HANDSHAKE) {
          return first
            ? fail('not-tls', `first byte 0x${h[0]!.toString(16)} is not a TLS handshake record`)
            : fail('malformed', `record type ${h[0]} inside a fragmented ClientHello`);
        }
        return null;
      case 2:
        if (h[1] !== 3) return fail(first ? 'not-tls' : 'malformed', `bad record version major ${h[1]}`);
        return null;
      case 3:
        if (h[2]! > 4) return fail(first ? 'not-tls' : 'malformed', `bad record version minor ${h[2]}`);
        return null;
      case 4:
        return null;
      default: {
        const len = (h[3]! << 8) | h[4]!;
        this.recHeaderFill = 0;
        this.records++;
        if (len === 0) return fail('malformed', 'empty handshake record');
        if (len > MAX_RECORD_LENGTH)
          return fail('malformed', `record length ${len} exceeds ${MAX_RECORD_LENGTH}`);
        if (this.records > this.maxRecords) {
          return fail('too-large', `ClientHello fragmented over more than ${this.maxRecords} records`);
        }
        this.recRemaining = len;
        return null;
      }
    }
  }

  /** Feed handshake payload bytes chunk[start, end); returns a final result or null to continue. */
  private feedHandshake(chunk: Buffer, start: number, end: number): HelloResult | null {
    let off = start;
    while (this.body === null && off < end) {
      const b = chunk[off++]!;
      this.hsHeader[this.hsHeaderFill++] = b;
      if (this.hsHeaderFill === 1 && b !== HANDSHAKE_CLIENT_HELLO) {
        return fail('not-client-hello', `handshake type ${b} is not ClientHello`);
      }
      if (this.hsHeaderFill === HANDSHAKE_HEADER) {
        const hs = this.hsHeader;
        const len = (hs[1]! << 16) | (hs[2]! << 8) | hs[3]!;
        if (len + HANDSHAKE_HEADER > this.maxBytes) {
          return fail('too-large', `ClientHello of ${len + HANDSHAKE_HEADER} bytes exceeds ${this.maxBytes}`);
        }
        this.body = Buffer.alloc(len);
        if (len === 0) return this.finish(this.body);
      }
    }
    if (this.body === null || off >= end) return null;
    const n = Math.min(end - off, this.body.length - this.bodyFill);
    chunk.copy(this.body, this.bodyFill, off, off + n);
    this.bodyFill += n;
    // Bytes after the ClientHello (a later record, early data) are kept in bytes() but not inspected.
    return this.bodyFill === this.body.length ? this.finish(this.body) : null;
  }

  private finish(body: Buffer): HelloResult {
    const p = parseBody(body);
    return p.ok ? { status: 'ok', hello: p.hello } : fail('malformed', p.detail);
  }
}

/** One-shot convenience over a complete buffer. */
export function parseClientHello(buf: Buffer, maxBytes: number = DEFAULT_MAX_HELLO_BYTES): HelloResult {
  return new ClientHelloReader(maxBytes).push(buf);
}
