/** Property tests for the ClientHello reader: never throws, chunking-invariant, bounded memory, faithful fields. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ClientHelloReader, type HelloResult, normalizeSni, parseClientHello } from './clienthello.ts';
import { referenceParseBody } from './testdata/clienthello-reference.ts';
import {
  alpnExt,
  defaultPrefix,
  type Extension,
  frame,
  joinHello,
  sniExt,
  synthHello,
  unframe,
  versionsExt,
} from './testdata/tls-builder.ts';

const RUNS = 2000;
const fixtures = ['openssl-3.0-hello.bin', 'node-24-hello.bin', 'curl-hello.bin'].map((f) =>
  readFileSync(new URL(`./testdata/${f}`, import.meta.url)),
);

/** Push buf cut at the given (sorted, deduplicated) positions; returns the last result. */
function pushChunked(reader: ClientHelloReader, buf: Buffer, cuts: number[]): HelloResult {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  let last: HelloResult = { status: 'need-more' };
  let prev = 0;
  for (const p of [...points, buf.length]) {
    if (p <= prev) continue;
    last = reader.push(buf.subarray(prev, p));
    prev = p;
  }
  return last;
}

function validResult(r: HelloResult): boolean {
  if (r.status === 'need-more' || r.status === 'ok') return true;
  return ['not-tls', 'not-client-hello', 'malformed', 'too-large'].includes(r.reason) && r.detail.length > 0;
}

type Mutation = { kind: 'flip' | 'insert' | 'delete'; at: number; value: number };

function mutate(buf: Buffer, muts: Mutation[]): Buffer {
  let out = Buffer.from(buf);
  for (const m of muts) {
    const at = out.length === 0 ? 0 : m.at % out.length;
    if (m.kind === 'flip') {
      if (out.length > 0) out[at] = out[at]! ^ (m.value || 1);
    } else if (m.kind === 'insert') {
      out = Buffer.concat([out.subarray(0, at), Buffer.from([m.value]), out.subarray(at)]);
    } else {
      out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
    }
  }
  return out;
}

const mutationArb = fc.record({
  kind: fc.constantFrom<Mutation['kind']>('flip', 'insert', 'delete'),
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
});

/** A valid hello from a fixture, re-framed into random record sizes. */
const reframedArb = fc
  .record({
    i: fc.nat(fixtures.length - 1),
    sizes: fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1 }),
  })
  .map(({ i, sizes }) => frame(unframe(fixtures[i]!), sizes));

describe('ClientHello reader properties', () => {
  it('random bytes never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.array(fc.nat()), (bytes, cuts) => {
        const r = pushChunked(new ClientHelloReader(4096), Buffer.from(bytes), cuts);
        assert.ok(validResult(r));
      }),
      { numRuns: RUNS },
    );
  });

  it('random ClientHello bodies behind valid headers never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 1, max: 700 }), (body, recSize) => {
        const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
        const r = parseClientHello(frame(hs, recSize));
        assert.ok(validResult(r));
        assert.notEqual(r.status, 'need-more');
      }),
      { numRuns: RUNS },
    );
  });

  it('mutated real hellos never throw and do not depend on chunking', () => {
    fc.assert(
      fc.property(
        reframedArb,
        fc.array(mutationArb, { maxLength: 4 }),
        fc.array(fc.nat()),
        (buf, muts, cuts) => {
          const input = mutate(buf, muts);
          const whole = parseClientHello(input);
          assert.ok(validResult(whole));
          const reader = new ClientHelloReader();
          assert.deepEqual(pushChunked(reader, input, cuts), whole);
          assert.deepEqual(reader.bytes(), input);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('pushed views of a reused buffer, owned after each push, keep every byte in order', () => {
    fc.assert(
      fc.property(reframedArb, fc.array(fc.nat(), { maxLength: 40 }), (buf, cuts) => {
        // The native pump's reads are views of one buffer, overwritten by the next read: own() must copy.
        const scratch = Buffer.alloc(buf.length);
        const reader = new ClientHelloReader();
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1))), buf.length].sort((a, b) => a - b);
        let prev = 0;
        let last: HelloResult = { status: 'need-more' };
        for (const p of points) {
          if (p <= prev) continue;
          buf.copy(scratch, 0, prev, p);
          last = reader.push(scratch.subarray(0, p - prev));
          reader.own();
          scratch.fill(0xee);
          prev = p;
        }
        assert.equal(last.status, 'ok');
        assert.deepEqual(reader.bytes(), buf);
      }),
      { numRuns: RUNS },
    );
  });

  it('a hello dribbled one byte per push is kept whole (bytes after it too)', () => {
    const hello = frame(unframe(fixtures[0]!), 7);
    const input = Buffer.concat([hello, Buffer.from('early')]);
    const reader = new ClientHelloReader();
    const one = Buffer.alloc(1);
    let status = 'need-more';
    for (const b of input) {
      one[0] = b;
      status = reader.push(one).status;
      reader.own();
    }
    assert.equal(status, 'ok');
    assert.deepEqual(reader.bytes(), input);
    assert.equal(reader.bufferedLength, input.length);
  });

  it('memory stays within maxBytes + record overhead while waiting', () => {
    const maxBytes = 512;
    const maxRecords = 16;
    const recordArb = fc
      .uint8Array({ minLength: 1, maxLength: 200 })
      .map((p) => Buffer.concat([Buffer.from([0x16, 3, 1, p.length >> 8, p.length & 0xff]), p]));
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 40 }), fc.boolean(), (records, clientHello) => {
        const stream = Buffer.concat(records);
        if (clientHello && stream.length > 5) stream[5] = 1;
        const reader = new ClientHelloReader(maxBytes, maxRecords);
        for (let off = 0; off < stream.length; off += 37) {
          const r = reader.push(stream.subarray(off, off + 37));
          if (r.status !== 'need-more') break;
          assert.ok(reader.bufferedLength <= maxBytes + 5 * maxRecords + 4, `${reader.bufferedLength}`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('synthetic hellos report exactly the SNI and ALPN they carry', () => {
    const protoArb = fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(
        fc.domain(),
        fc.array(protoArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1 }),
        fc.array(fc.nat()),
        (domain, alpn, sizes, cuts) => {
          const hs = synthHello([sniExt(domain), alpnExt(alpn), versionsExt([0x0304, 0x0303])]);
          const r = pushChunked(new ClientHelloReader(), frame(hs, sizes), cuts);
          assert.deepEqual(r, {
            status: 'ok',
            hello: {
              sni: domain.toLowerCase(),
              alpn,
              legacyVersion: 0x0303,
              supportedVersions: [0x0304, 0x0303],
              hasEch: false,
              size: hs.length,
            },
          });
        },
      ),
      { numRuns: RUNS },
    );
  });
});

/** The first, regex-based normalizeSni: the reference the one-pass version must agree with. */
function referenceNormalizeSni(raw: Buffer): string | null {
  if (raw.length === 0 || raw.length > 254) return null;
  for (const b of raw) if (b < 0x21 || b > 0x7e) return null;
  let name = raw.toString('latin1').toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return null;
  const labels = name.split('.');
  for (const label of labels) if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) return null;
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return null;
  return name;
}

describe('normalizeSni', () => {
  it('agrees with the regex reference on arbitrary bytes and on hostname-like strings', () => {
    const hostChars = fc.constantFrom(...'abcXYZ09-.'.split(''), '_', '*', '\0', 'é', ' ');
    const hostLike = fc
      .array(fc.oneof(hostChars, fc.constantFrom('a'.repeat(63), 'b'.repeat(64), '.')), { maxLength: 12 })
      .map((parts) => Buffer.from(parts.join(''), 'latin1'));
    const long = fc.integer({ min: 248, max: 260 }).map((n) => Buffer.from(`${'a.'.repeat(n)}com`.slice(-n)));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
          hostLike,
          long,
        ),
        (b) => {
          assert.equal(normalizeSni(b), referenceNormalizeSni(b));
        },
      ),
      { numRuns: 20_000 },
    );
    for (const s of ['Example.COM.', '1.2.3.4', 'a-.b', '-a.b', 'a..b', '.', 'x.y1', 'x.123', 'a'.repeat(64)])
      assert.equal(normalizeSni(Buffer.from(s)), referenceNormalizeSni(Buffer.from(s)), s);
  });
});

/** What parseClientHello must say about a handshake message, per the Cursor-based reference parser. */
function referenceResult(hs: Buffer): HelloResult {
  const r = referenceParseBody(hs.subarray(4));
  return r.ok ? { status: 'ok', hello: r.hello } : { status: 'error', reason: 'malformed', detail: r.detail };
}

/** A handshake message (type 1, 24-bit length) around an arbitrary body. */
function handshake(body: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]),
    body,
  ]);
}

describe('ClientHello body parser agrees with the reference parser', () => {
  const typeArb = fc.oneof(fc.constantFrom(0, 16, 43, 0xfe0d, 51, 10), fc.integer({ min: 0, max: 0xffff }));
  const dataArb = fc.oneof(
    fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
    fc.domain().map((d) => sniExt(d).data),
    fc
      .array(fc.string({ unit: 'binary-ascii', maxLength: 10 }), { maxLength: 4 })
      .map((a) => alpnExt(a).data),
    fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 4 }).map((v) => versionsExt(v).data),
  );
  const extArb: fc.Arbitrary<Extension> = fc.record({ type: typeArb, data: dataArb });

  it('on synthetic extension lists (duplicates, bad lengths, unknown types), mutated or not', () => {
    fc.assert(
      fc.property(
        fc.array(extArb, { maxLength: 8 }),
        fc.integer({ min: 0, max: 33 }),
        fc.array(mutationArb, { maxLength: 3 }),
        (exts, sid, muts) => {
          const hs = joinHello({ prefix: defaultPrefix(sid), extensions: exts });
          const body = mutate(hs.subarray(4), muts);
          const msg = handshake(body);
          assert.deepEqual(parseClientHello(frame(msg)), referenceResult(msg));
        },
      ),
      { numRuns: RUNS * 5 },
    );
  });

  it('on mutated real hellos and on random bodies', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .record({ i: fc.nat(fixtures.length - 1), muts: fc.array(mutationArb, { maxLength: 4 }) })
            .map(({ i, muts }) => mutate(unframe(fixtures[i]!).subarray(4), muts)),
          fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from([3, 3, ...u])),
        ),
        (body) => {
          const msg = handshake(body);
          assert.deepEqual(parseClientHello(frame(msg)), referenceResult(msg));
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });

  it('finds a duplicate 16k extensions apart, and forgets the types of the previous hello', () => {
    const many = Array.from({ length: 16_000 }, (_, i) => ({ type: 100 + i, data: Buffer.alloc(0) }));
    const dup = joinHello({
      prefix: defaultPrefix(),
      extensions: [...many, { type: 100, data: Buffer.alloc(0) }],
    });
    const r = parseClientHello(frame(dup), 1 << 20);
    assert.deepEqual(r, { status: 'error', reason: 'malformed', detail: 'duplicate extension 100' });
    // The same types again, once each, in a later hello: not duplicates.
    const again = parseClientHello(frame(joinHello({ prefix: defaultPrefix(), extensions: many })), 1 << 20);
    assert.equal(again.status, 'ok');
  });
});
