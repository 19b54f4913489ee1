/** Test-only helpers that build, take apart and re-frame TLS ClientHello bytes (no validation: tests do that). */

export interface Extension {
  type: number;
  data: Buffer;
}

/** A ClientHello split into the part before the extensions and the extensions themselves. */
export interface HelloParts {
  prefix: Buffer; // legacy_version .. compression_methods
  extensions: Extension[];
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}

export function vec8(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([data.length]), data]);
}

export function vec16(data: Buffer): Buffer {
  return Buffer.concat([u16(data.length), data]);
}

/** Concatenate the handshake payloads of well-formed records. */
export function unframe(records: Buffer): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  while (off + 5 <= records.length) {
    const len = records.readUInt16BE(off + 3);
    parts.push(records.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return Buffer.concat(parts);
}

/** Frame handshake bytes into handshake records whose payload sizes cycle through `sizes`. */
export function frame(handshake: Buffer, sizes: number | number[] = 16384, version = 0x0301): Buffer {
  const list = Array.isArray(sizes) ? sizes : [sizes];
  const out: Buffer[] = [];
  let off = 0;
  let i = 0;
  while (off < handshake.length) {
    const n = Math.min(list[i++ % list.length]!, handshake.length - off);
    out.push(Buffer.from([0x16, version >> 8, version & 0xff]), u16(n), handshake.subarray(off, off + n));
    off += n;
  }
  return Buffer.concat(out);
}

/** Split a handshake message (with its 4-byte header) into prefix and extensions. */
export function splitHello(handshake: Buffer): HelloParts {
  let off = 4 + 2 + 32;
  off += 1 + handshake[off]!; // session id
  off += 2 + handshake.readUInt16BE(off); // cipher suites
  off += 1 + handshake[off]!; // compression
  const prefix = handshake.subarray(4, off);
  const extensions: Extension[] = [];
  const end = off + 2 + handshake.readUInt16BE(off);
  off += 2;
  while (off < end) {
    const type = handshake.readUInt16BE(off);
    const len = handshake.readUInt16BE(off + 2);
    extensions.push({ type, data: handshake.subarray(off + 4, off + 4 + len) });
    off += 4 + len;
  }
  return { prefix, extensions };
}

/** Build a handshake message (with header) from parts, fixing every length. */
export function joinHello(parts: HelloParts): Buffer {
  const exts = Buffer.concat(parts.extensions.flatMap((e) => [u16(e.type), vec16(e.data)]));
  const body = Buffer.concat([parts.prefix, vec16(exts)]);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

export function sniExt(name: string | Buffer): Extension {
  const raw = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
  return { type: 0, data: vec16(Buffer.concat([Buffer.from([0]), vec16(raw)])) };
}

export function alpnExt(protocols: string[]): Extension {
  return { type: 16, data: vec16(Buffer.concat(protocols.map((p) => vec8(Buffer.from(p, 'latin1'))))) };
}

export function versionsExt(versions: number[]): Extension {
  return { type: 43, data: vec8(Buffer.concat(versions.map(u16))) };
}

/** A key_share extension with one X25519MLKEM768-sized share (1216 bytes) ahead of an X25519 share. */
export function bigKeyShareExt(): Extension {
  const pq = Buffer.concat([u16(0x11ec), vec16(Buffer.alloc(1216, 0xab))]);
  const x25519 = Buffer.concat([u16(0x001d), vec16(Buffer.alloc(32, 0xcd))]);
  return { type: 51, data: vec16(Buffer.concat([pq, x25519])) };
}

/** The bytes before the extensions of a plausible TLS 1.2/1.3 ClientHello. */
export function defaultPrefix(sessionIdLength = 32): Buffer {
  return Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 0x11),
    vec8(Buffer.alloc(sessionIdLength, 0x22)),
    vec16(Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f])),
    vec8(Buffer.from([0])),
  ]);
}

/** A synthetic handshake message with the given extensions. */
export function synthHello(extensions: Extension[], prefix: Buffer = defaultPrefix()): Buffer {
  return joinHello({ prefix, extensions });
}

/** Replace (or append) the extension of the same type, keeping the order of the others. */
export function withExtension(handshake: Buffer, ext: Extension): Buffer {
  const parts = splitHello(handshake);
  const i = parts.extensions.findIndex((e) => e.type === ext.type);
  if (i >= 0) parts.extensions[i] = ext;
  else parts.extensions.unshift(ext);
  return joinHello(parts);
}

export function withoutExtension(handshake: Buffer, type: number): Buffer {
  const parts = splitHello(handshake);
  parts.extensions = parts.extensions.filter((e) => e.type !== type);
  return joinHello(parts);
}
