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

/**
 * The name must be something a Gateway API hostname could match (RFC 1123 LDH labels: 1-63 of a-z, 0-9 and
 * '-', not starting or ending with '-'; one trailing dot allowed): anything else (IP literals, wildcards, NULs,
 * non-ASCII) is refused rather than routed. One pass over the bytes, one string made (every connection runs it).
 */
export function normalizeSni(raw: Buffer): string | null {
  return normalizeSniAt(raw, 0, raw.length);
}

/** normalizeSni over raw[start, end): no view made per connection. */
function normalizeSniAt(raw: Buffer, start: number, end: number): string | null {
  let n = end - start;
  if (n === 0 || n > 254) return null;
  if (raw[start + n - 1] === 0x2e) n--;
  if (n === 0 || n > 253) return null;
  let label = 0;
  let upper = false;
  let dashLast = false;
  let digitsOnly = true;
  for (let i = 0; i < n; i++) {
    let b = raw[start + i]!;
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
  const name = raw.toString('latin1', start, start + n);
  return upper ? name.toLowerCase() : name;
}

/**
 * Duplicate extensions are found with one stamp per extension type: a hello of 64 KiB can carry 16k empty
 * extensions, and a list searched per extension cost ~100 ms of event loop for one such hello. The stamp of
 * the current parse marks a type as seen, so nothing is cleared between hellos (parsing is synchronous).
 */
const seenStamp = new Uint32Array(65536);
let stamp = 0;

function nextStamp(): number {
  if (stamp === 0xffffffff) {
    seenStamp.fill(0);
    stamp = 0;
  }
  return ++stamp;
}

const HTTP11 = Buffer.from('http/1.1', 'latin1');

/** Common protocol names share one string instead of one per connection. */
export function alpnName(b: Buffer, start: number, len: number): string {
  if (len === 2 && b[start] === 0x68 && b[start + 1] === 0x32) return 'h2';
  if (len === 8) {
    let i = 0;
    while (i < 8 && b[start + i] === HTTP11[i]) i++;
    if (i === 8) return 'http/1.1';
  }
  return b.toString('latin1', start, start + len);
}

/** server_name extension data in b[p, e): the normalized host_name, or an error detail prefixed '!'. */
function parseServerName(b: Buffer, p: number, e: number): string {
  if (e - p < 2) return '!server_name: bad list length';
  const len = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  if (len !== e - p) return '!server_name: bad list length';
  if (len === 0) return '!server_name: empty list';
  let sni: string | null = null;
  while (p < e) {
    const type = b[p++]!;
    if (e - p < 2) return '!server_name: truncated entry';
    const n = (b[p]! << 8) | b[p + 1]!;
    p += 2;
    if (e - p < n) return '!server_name: truncated entry';
    const at = p;
    p += n;
    if (type !== 0) continue; // unknown name types are skipped, as Go and OpenSSL do
    if (sni !== null) return '!server_name: more than one host_name';
    const normalized = normalizeSniAt(b, at, at + n);
    if (normalized === null) return '!server_name: not a valid DNS hostname';
    sni = normalized;
  }
  return sni ?? '!server_name: no host_name entry';
}

/**
 * ALPN extension data in b[p, e): the protocol names, or an error detail. Checked and counted first, so the
 * array is made at its size (a pushed-to array grows a 17-slot store, kept as long as the connection).
 */
function parseAlpn(b: Buffer, p: number, e: number): string[] | string {
  if (e - p < 2) return 'alpn: bad list length';
  const len = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  if (len !== e - p) return 'alpn: bad list length';
  if (len === 0) return 'alpn: empty list';
  let count = 0;
  for (let q = p; q < e; count++) {
    const n = b[q++]!;
    if (e - q < n) return 'alpn: truncated protocol name';
    if (n === 0) return 'alpn: empty protocol name';
    q += n;
  }
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const n = b[p++]!;
    out[i] = alpnName(b, p, n);
    p += n;
  }
  return out;
}

function parseSupportedVersions(b: Buffer, p: number, e: number): number[] | string {
  if (e - p < 1) return 'supported_versions: bad list length';
  const len = b[p++]!;
  if (len !== e - p || len < 2 || len % 2 !== 0) return 'supported_versions: bad list length';
  const out = new Array<number>(len >> 1);
  for (let i = 0; p < e; p += 2) out[i++] = (b[p]! << 8) | b[p + 1]!;
  return out;
}

/**
 * Parses a complete ClientHello body, b[s, e) (after the 4-byte handshake header), in place: offsets only,
 * no views or cursor objects. Returns the hello or an error detail.
 */
function parseBody(b: Buffer, s: number, e: number): ClientHello | string {
  let p = s;
  if (e - p < 2) return 'truncated legacy_version';
  const legacyVersion = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  if (legacyVersion >> 8 !== 3) return `unsupported legacy_version 0x${legacyVersion.toString(16)}`;
  if (e - p < 32) return 'truncated random';
  p += 32;
  let len = p < e ? b[p++]! : -1;
  if (len < 0 || e - p < len || len > 32) return 'bad legacy_session_id';
  p += len;
  len = e - p >= 2 ? (b[p]! << 8) | b[p + 1]! : -1;
  if (len >= 0) p += 2;
  if (len < 0 || e - p < len || len < 2 || len % 2 !== 0) return 'bad cipher_suites';
  p += len;
  len = p < e ? b[p++]! : -1;
  if (len < 0 || e - p < len || len < 1) return 'bad compression_methods';
  p += len;

  const hello: ClientHello = {
    sni: null,
    alpn: [],
    legacyVersion,
    supportedVersions: [],
    hasEch: false,
    size: e - s + HANDSHAKE_HEADER,
  };
  // Extensions are optional before TLS 1.3: a hello may end right after compression_methods.
  if (p === e) return hello;
  if (e - p < 2) return 'bad extensions length';
  len = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  if (e - p < len) return 'bad extensions length';
  if (e - p !== len) return 'trailing bytes after extensions';

  const mark = nextStamp();
  while (p < e) {
    if (e - p < 4) return 'truncated extension';
    const type = (b[p]! << 8) | b[p + 1]!;
    const dl = (b[p + 2]! << 8) | b[p + 3]!;
    p += 4;
    if (e - p < dl) return 'truncated extension';
    const de = p + dl;
    // Duplicates are illegal (RFC 8446 §4.2) and would let two parsers disagree on the SNI.
    if (seenStamp[type] === mark) return `duplicate extension ${type}`;
    seenStamp[type] = mark;
    if (type === EXT_SERVER_NAME) {
      const r = parseServerName(b, p, de);
      if (r.charCodeAt(0) === 0x21) return r.slice(1);
      hello.sni = r;
    } else if (type === EXT_ALPN) {
      const r = parseAlpn(b, p, de);
      if (typeof r === 'string') return r;
      hello.alpn = r;
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      const r = parseSupportedVersions(b, p, de);
      if (typeof r === 'string') return r;
      hello.supportedVersions = r;
    } else if (type === EXT_ECH) {
      hello.hasEch = true;
    }
    p = de;
  }
  return hello;
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
  /**
   * The bytes pushed so far, for bytes(): the first chunk by reference while it is the only one and not owned
   * (the usual whole hello), else a copy of every byte in `acc`, grown by doubling. Copying each chunk once on
   * arrival keeps a hello dribbled a byte per segment linear: re-copying the kept chunks at every own() (the
   * native pump's reads are views of one buffer) had made it quadratic.
   */
  private first: Buffer | null = null;
  private acc: Buffer | null = null;
  private total = 0;
  private result: HelloResult = NEED_MORE;

  // Record framing state (the byte-by-byte path only: a hello in one record never needs it).
  private recHeader: Uint8Array | null = null;
  private recHeaderFill = 0;
  private recRemaining = 0;
  private records = 0;

  // Handshake reassembly state.
  private hsHeader: Uint8Array | null = null;
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
    if (this.acc !== null) return this.acc.subarray(0, this.total);
    return this.first ?? Buffer.alloc(0);
  }

  /** Copies the bytes kept for bytes() (once): the caller's buffers may be views it is about to reuse. */
  own(): void {
    if (this.first !== null) this.reserve(0);
  }

  /** Room in `acc` for `extra` more bytes after the `total` kept (moving the first chunk into it). */
  private reserve(extra: number): Buffer {
    const need = this.total + extra;
    let acc = this.acc;
    if (acc !== null && need <= acc.length) return acc;
    const next = Buffer.allocUnsafe(Math.max(need, 2 * (acc?.length ?? 0), 512));
    if (acc !== null) acc.copy(next, 0, 0, this.total);
    else if (this.first !== null) this.first.copy(next, 0);
    this.first = null;
    acc = this.acc = next;
    return acc;
  }

  push(chunk: Buffer): HelloResult {
    if (chunk.length === 0) return this.result;
    const first = this.total === 0;
    if (first) this.first = chunk;
    else chunk.copy(this.reserve(chunk.length), this.total);
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
    return this.finish(chunk, RECORD_HEADER + HANDSHAKE_HEADER, end);
  }

  private consume(chunk: Buffer): HelloResult {
    let off = 0;
    while (off < chunk.length) {
      if (this.recRemaining === 0) {
        // Read the record header byte by byte so 'not-tls' is decided from the first byte.
        const b = chunk[off++]!;
        (this.recHeader ??= new Uint8Array(RECORD_HEADER))[this.recHeaderFill++] = b;
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
    const h = this.recHeader!;
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
      const hs = (this.hsHeader ??= new Uint8Array(HANDSHAKE_HEADER));
      hs[this.hsHeaderFill++] = b;
      if (this.hsHeaderFill === 1 && b !== HANDSHAKE_CLIENT_HELLO) {
        return fail('not-client-hello', `handshake type ${b} is not ClientHello`);
      }
      if (this.hsHeaderFill === HANDSHAKE_HEADER) {
        const len = (hs[1]! << 16) | (hs[2]! << 8) | hs[3]!;
        if (len + HANDSHAKE_HEADER > this.maxBytes) {
          return fail('too-large', `ClientHello of ${len + HANDSHAKE_HEADER} bytes exceeds ${this.maxBytes}`);
        }
        this.body = Buffer.alloc(len);
        if (len === 0) return this.finish(this.body, 0, 0);
      }
    }
    if (this.body === null || off >= end) return null;
    const n = Math.min(end - off, this.body.length - this.bodyFill);
    chunk.copy(this.body, this.bodyFill, off, off + n);
    this.bodyFill += n;
    // Bytes after the ClientHello (a later record, early data) are kept in bytes() but not inspected.
    return this.bodyFill === this.body.length ? this.finish(this.body, 0, this.body.length) : null;
  }

  private finish(b: Buffer, start: number, end: number): HelloResult {
    const p = parseBody(b, start, end);
    return typeof p === 'string' ? fail('malformed', p) : { status: 'ok', hello: p };
  }
}

/** One-shot convenience over a complete buffer. */
export function parseClientHello(buf: Buffer, maxBytes: number = DEFAULT_MAX_HELLO_BYTES): HelloResult {
  return new ClientHelloReader(maxBytes).push(buf);
}
