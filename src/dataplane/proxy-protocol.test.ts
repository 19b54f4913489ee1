/** Tests for PROXY protocol v1/v2 encoding, decoding (every split, garbage) and trusted-CIDR checks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  formatIPv6,
  isTrusted,
  PROXY_V2_SIGNATURE,
  type ProxyAddresses,
  parseIPv6,
  proxyAddressesFor,
} from './proxy-protocol.ts';

const v4: ProxyAddresses = {
  family: 'tcp4',
  sourceAddress: '192.0.2.10',
  sourcePort: 51234,
  destAddress: '198.51.100.1',
  destPort: 443,
};
const v6: ProxyAddresses = {
  family: 'tcp6',
  sourceAddress: '2001:db8::1',
  sourcePort: 0,
  destAddress: '::ffff:10.0.0.1',
  destPort: 65535,
};

function v2(verCmd: number, fam: number, body: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([verCmd, fam]), len, body]);
}

describe('PROXY protocol', () => {
  it('v1 encodes the spec text', () => {
    assert.equal(encodeProxyV1(v4).toString(), 'PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\n');
    assert.equal(encodeProxyV1(v6).toString(), 'PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n');
  });

  it('v2 encodes the spec bytes', () => {
    const b = encodeProxyV2(v4);
    assert.equal(b.length, 16 + 12);
    assert.deepEqual([...b.subarray(12, 16)], [0x21, 0x11, 0, 12]);
    assert.deepEqual([...b.subarray(16, 20)], [192, 0, 2, 10]);
    assert.equal(b.readUInt16BE(24), 51234);
    assert.equal(encodeProxyV2(v6).length, 16 + 36);
  });

  it('round-trips v1 and v2, and stops exactly at the header', () => {
    const trailer = Buffer.from([0x16, 0x03, 0x01]);
    for (const a of [v4, v6]) {
      for (const enc of [encodeProxyV1, encodeProxyV2]) {
        const header = enc(a);
        const r = decodeProxyHeader(Buffer.concat([header, trailer]));
        assert.deepEqual(r, { status: 'ok', addresses: a, consumed: header.length });
      }
    }
  });

  it('every strict prefix is need-more', () => {
    for (const a of [v4, v6]) {
      for (const header of [encodeProxyV1(a), encodeProxyV2(a)]) {
        for (let n = 0; n < header.length; n++) {
          assert.deepEqual(decodeProxyHeader(header.subarray(0, n)), { status: 'need-more' }, `${n}`);
        }
      }
    }
  });

  it('non-PROXY input is none as soon as it diverges', () => {
    for (const s of ['GET / HTTP/1.1\r\n', 'POST', '\x16\x03\x01', 'PROXZ', 'SSH-2.0']) {
      assert.deepEqual(decodeProxyHeader(Buffer.from(s, 'latin1')), { status: 'none' }, s);
    }
    assert.deepEqual(decodeProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x01])), { status: 'none' });
  });

  it('v1 UNKNOWN and v2 LOCAL carry no addresses', () => {
    const unknown = Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest');
    assert.deepEqual(decodeProxyHeader(unknown), {
      status: 'ok',
      addresses: null,
      consumed: unknown.length - 4,
    });
    assert.deepEqual(decodeProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), {
      status: 'ok',
      addresses: null,
      consumed: 15,
    });
    const local = v2(0x20, 0x00, Buffer.alloc(0));
    assert.deepEqual(decodeProxyHeader(local), { status: 'ok', addresses: null, consumed: 16 });
    const unspec = v2(0x21, 0x00, Buffer.alloc(3));
    assert.deepEqual(decodeProxyHeader(unspec), { status: 'ok', addresses: null, consumed: 19 });
  });

  it('v2 TLVs after the addresses are consumed', () => {
    const plain = encodeProxyV2(v4);
    const tlv = Buffer.from([0x02, 0x00, 0x03, 0x61, 0x62, 0x63]);
    const body = Buffer.concat([plain.subarray(16), tlv]);
    const r = decodeProxyHeader(v2(0x21, 0x11, body));
    assert.deepEqual(r, { status: 'ok', addresses: v4, consumed: 16 + body.length });
  });

  it('rejects malformed headers', () => {
    const bad = [
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
      'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n',
      'PROXY TCP4 ::1 ::2 1 2\r\n',
      'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
      'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n',
      `PROXY ${'A'.repeat(120)}`,
    ];
    for (const s of bad)
      assert.equal(decodeProxyHeader(Buffer.from(s, 'latin1')).status, 'error', JSON.stringify(s));
    assert.equal(decodeProxyHeader(v2(0x11, 0x11, Buffer.alloc(12))).status, 'error');
    assert.equal(decodeProxyHeader(v2(0x22, 0x11, Buffer.alloc(12))).status, 'error');
    assert.equal(decodeProxyHeader(v2(0x21, 0x41, Buffer.alloc(12))).status, 'error');
    assert.equal(decodeProxyHeader(v2(0x21, 0x21, Buffer.alloc(12))).status, 'error');
  });

  it('IPv6 text round-trips through bytes in RFC 5952 form', () => {
    const cases: Array<[string, string]> = [
      ['::', '::'],
      ['::1', '::1'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['fe80::', 'fe80::'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
      ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ];
    for (const [input, canonical] of cases) assert.equal(formatIPv6(parseIPv6(input)!), canonical, input);
    assert.equal(parseIPv6('fe80::1%eth0'), null);
    assert.equal(parseIPv6('1.2.3.4'), null);
  });

  it('proxyAddressesFor unmaps IPv4-mapped peers of a dual-stack socket', () => {
    assert.deepEqual(proxyAddressesFor('::ffff:192.0.2.10', 51234, '::ffff:198.51.100.1', 443), v4);
    assert.equal(proxyAddressesFor('2001:db8::1', 1, '::ffff:10.0.0.1', 2).family, 'tcp6');
    assert.equal(proxyAddressesFor('2001:db8::1', 1, '10.0.0.1', 2).destAddress, '::ffff:10.0.0.1');
  });

  it('isTrusted handles IPv4, IPv6 and IPv4-mapped addresses', () => {
    const cidrs = ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7', 'garbage', '10.0.0.0/99'];
    assert.equal(isTrusted('10.1.2.3', cidrs), true);
    assert.equal(isTrusted('::ffff:10.1.2.3', cidrs), true);
    assert.equal(isTrusted('::FFFF:10.1.2.3', cidrs), true);
    assert.equal(isTrusted('11.1.2.3', cidrs), false);
    assert.equal(isTrusted('2001:db8:1::5', cidrs), true);
    assert.equal(isTrusted('2001:db9::5', cidrs), false);
    assert.equal(isTrusted('192.0.2.7', cidrs), true);
    assert.equal(isTrusted('192.0.2.8', cidrs), false);
    assert.equal(isTrusted('not an ip', cidrs), false);
    assert.equal(isTrusted('1.2.3.4', []), false);
    assert.equal(isTrusted('1.2.3.4', ['::ffff:0:0/96']), true);
  });

  it('decode never throws and agrees with itself on prefixes (fast-check)', () => {
    const sig = fc.constantFrom(Buffer.alloc(0), PROXY_V2_SIGNATURE, Buffer.from('PROXY '));
    fc.assert(
      fc.property(sig, fc.uint8Array({ maxLength: 300 }), (head, tail) => {
        const buf = Buffer.concat([head, tail]);
        const r = decodeProxyHeader(buf);
        assert.ok(['need-more', 'ok', 'none', 'error'].includes(r.status));
        if (r.status === 'ok') {
          assert.ok(r.consumed > 0 && r.consumed <= buf.length);
          // A decided header does not change when more bytes follow.
          assert.deepEqual(decodeProxyHeader(Buffer.concat([buf, Buffer.from('x')])), r);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips arbitrary addresses (fast-check)', () => {
    const port = fc.integer({ min: 0, max: 65535 });
    const arb = fc.oneof(
      fc.record({
        family: fc.constant<'tcp4'>('tcp4'),
        sourceAddress: fc.ipV4(),
        sourcePort: port,
        destAddress: fc.ipV4(),
        destPort: port,
      }),
      fc.record({
        family: fc.constant<'tcp6'>('tcp6'),
        sourceAddress: fc.ipV6(),
        sourcePort: port,
        destAddress: fc.ipV6(),
        destPort: port,
      }),
    );
    fc.assert(
      fc.property(arb, (a) => {
        const canon = (s: string) => (a.family === 'tcp4' ? s : formatIPv6(parseIPv6(s)!));
        const want = { ...a, sourceAddress: canon(a.sourceAddress), destAddress: canon(a.destAddress) };
        for (const enc of [encodeProxyV1, encodeProxyV2]) {
          const h = enc(a);
          assert.deepEqual(decodeProxyHeader(h), { status: 'ok', addresses: want, consumed: h.length });
        }
      }),
      { numRuns: 1000 },
    );
  });
});
