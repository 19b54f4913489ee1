/** Classifies the PostgreSQL preamble (SSLRequest, GSSENCRequest, CancelRequest) a client may send before TLS. */

/** Length 8, code 80877103: "please switch to TLS". */
export const SSL_REQUEST: Buffer = Buffer.from([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f]);
/** Length 8, code 80877104: GSSAPI encryption; we answer 'N' so the client falls back to SSLRequest. */
export const GSSENC_REQUEST: Buffer = Buffer.from([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x30]);
/** First 8 bytes of a CancelRequest (length 16, code 80877102); it carries no TLS, so no SNI to route on. */
export const CANCEL_REQUEST_PREFIX: Buffer = Buffer.from([0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e]);
/** Total length of a CancelRequest message (8-byte prefix + process id + secret key). */
export const CANCEL_REQUEST_LENGTH = 16;
/** The server's one-byte answers to SSLRequest / GSSENCRequest. */
export const PG_ACCEPT_SSL = 0x53; // 'S'
export const PG_REFUSE = 0x4e; // 'N'

export type PgPreamble = 'need-more' | 'ssl-request' | 'gssenc-request' | 'cancel-request' | 'not-postgres';

const PREAMBLES: ReadonlyArray<readonly [Buffer, PgPreamble]> = [
  [SSL_REQUEST, 'ssl-request'],
  [GSSENC_REQUEST, 'gssenc-request'],
  [CANCEL_REQUEST_PREFIX, 'cancel-request'],
];

/**
 * Classify the first bytes of a connection. Decided from the first 8 bytes; 'not-postgres' as soon as the
 * bytes cannot be one of these (a TLS record starts with 0x16, a PG length with 0x00), so TLS clients pay
 * nothing for the check.
 */
export function classifyPostgresPreamble(buf: Buffer): PgPreamble {
  // Every preamble starts with a zero length byte; a TLS record with 0x16: one comparison per connection.
  if (buf.length > 0 && buf[0] !== 0) return 'not-postgres';
  const n = Math.min(buf.length, 8);
  let candidate = false;
  for (const [magic, kind] of PREAMBLES) {
    if (buf.compare(magic, 0, n, 0, n) !== 0) continue;
    if (n === 8) return kind;
    candidate = true;
  }
  return candidate ? 'need-more' : 'not-postgres';
}
