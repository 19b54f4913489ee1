/** Property tests for the ClientHello reader: never throws, chunking-invariant, bounded memory, faithful fields. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ClientHelloReader, type HelloResult, normalizeSni, parseClientHello } from './clienthello.ts';
import { alpnExt, frame, sniExt, synthHello, unframe, versionsExt } from './testdata/tls-builder.ts';

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
