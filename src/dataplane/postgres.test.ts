/** Tests for PostgreSQL preamble classification at every prefix length. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CANCEL_REQUEST_PREFIX, classifyPostgresPreamble, GSSENC_REQUEST, SSL_REQUEST } from './postgres.ts';

describe('classifyPostgresPreamble', () => {
  it('has the wire bytes from the protocol docs', () => {
    assert.equal(SSL_REQUEST.toString('hex'), '0000000804d2162f');
    assert.equal(GSSENC_REQUEST.toString('hex'), '0000000804d21630');
    assert.equal(SSL_REQUEST.readUInt32BE(4), 80877103);
    assert.equal(CANCEL_REQUEST_PREFIX.readUInt32BE(4), 80877102);
  });

  it('is need-more on every strict prefix, then decides at 8 bytes', () => {
    const cases = [
      [SSL_REQUEST, 'ssl-request'],
      [GSSENC_REQUEST, 'gssenc-request'],
      [Buffer.concat([CANCEL_REQUEST_PREFIX, Buffer.alloc(8, 7)]), 'cancel-request'],
    ] as const;
    for (const [bytes, kind] of cases) {
      for (let n = 0; n < 8; n++)
        assert.equal(classifyPostgresPreamble(bytes.subarray(0, n)), 'need-more', `${n}`);
      for (let n = 8; n <= bytes.length; n++)
        assert.equal(classifyPostgresPreamble(bytes.subarray(0, n)), kind);
    }
  });

  it('decides not-postgres at the first byte that cannot match', () => {
    assert.equal(classifyPostgresPreamble(Buffer.from([0x16])), 'not-postgres');
    assert.equal(classifyPostgresPreamble(Buffer.from('GET /')), 'not-postgres');
    assert.equal(classifyPostgresPreamble(Buffer.from([0, 0, 0, 9])), 'not-postgres');
    // A plaintext StartupMessage (protocol 3.0) is Postgres, but not something we can route by SNI.
    assert.equal(classifyPostgresPreamble(Buffer.from([0, 0, 0, 0x29, 0, 3, 0, 0])), 'not-postgres');
    assert.equal(classifyPostgresPreamble(Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x31])), 'not-postgres');
    assert.equal(classifyPostgresPreamble(Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16])), 'need-more');
  });
});
