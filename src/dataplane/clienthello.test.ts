/** Tests for the ClientHello reader against hellos captured live from openssl and Node, re-chunked and re-framed. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { before, describe, it } from 'node:test';
import tls from 'node:tls';
import { ClientHelloReader, type HelloResult, parseClientHello } from './clienthello.ts';
import { SSL_REQUEST } from './postgres.ts';
import {
  alpnExt,
  bigKeyShareExt,
  frame,
  sniExt,
  splitHello,
  synthHello,
  unframe,
  versionsExt,
  withExtension,
  withoutExtension,
} from './testdata/tls-builder.ts';

/** Accept one connection on 127.0.0.1, read until the reader decides, then stop everything. */
function capture(startClient: (port: number) => () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let stopClient = () => {};
    const timer = setTimeout(() => {
      stopClient();
      server.close();
      reject(new Error('no ClientHello within 5 s'));
    }, 5000);
    const server = net.createServer((sock) => {
      const reader = new ClientHelloReader(65536);
      sock.on('error', () => {});
      sock.on('data', (d) => {
        if (reader.push(d).status === 'need-more') return;
        clearTimeout(timer);
        sock.destroy();
        stopClient();
        server.close();
        resolve(reader.bytes());
      });
    });
    server.listen(0, '127.0.0.1', () => {
      stopClient = startClient((server.address() as net.AddressInfo).port);
    });
  });
}

function opensslClient(extra: string[]): (port: number) => () => void {
  return (port) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...extra], {
      stdio: ['ignore', 'ignore', 'ignore'], // stdin is /dev/null
    });
    child.on('error', () => {});
    return () => child.kill();
  };
}

function nodeClient(opts: tls.ConnectionOptions): (port: number) => () => void {
  return (port) => {
    const sock = tls.connect({ host: '127.0.0.1', port, ...opts });
    sock.on('error', () => {});
    return () => sock.destroy();
  };
}

function ok(r: HelloResult) {
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return (r as Extract<HelloResult, { status: 'ok' }>).hello;
}

function errorOf(r: HelloResult): string {
  assert.equal(r.status, 'error', JSON.stringify(r));
  return (r as Extract<HelloResult, { status: 'error' }>).reason;
}

/** Push `buf` in the given chunk sizes (cycled) and return every intermediate result. */
function feed(
  buf: Buffer,
  sizes: number[],
  maxBytes = 65536,
): { results: HelloResult[]; reader: ClientHelloReader } {
  const reader = new ClientHelloReader(maxBytes);
  const results: HelloResult[] = [];
  let off = 0;
  let i = 0;
  while (off < buf.length) {
    const n = Math.max(1, sizes[i++ % sizes.length]!);
    results.push(reader.push(buf.subarray(off, off + n)));
    off += n;
  }
  return { results, reader };
}

const captured: Record<string, Buffer> = {};

before(async () => {
  captured.openssl = await capture(opensslClient(['-servername', 'abc.example.com', '-alpn', 'h2,http/1.1']));
  captured.opensslNoSni = await capture(opensslClient(['-noservername']));
  captured.node = await capture(
    nodeClient({ servername: 'abc.example.com', ALPNProtocols: ['h2', 'http/1.1'] }),
  );
});

describe('live ClientHellos', () => {
  it('openssl s_client: SNI and ALPN', () => {
    const hello = ok(parseClientHello(captured.openssl!));
    assert.equal(hello.sni, 'abc.example.com');
    assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
    assert.equal(hello.legacyVersion, 0x0303);
    assert.ok(hello.supportedVersions.includes(0x0304));
    assert.equal(hello.hasEch, false);
    assert.equal(hello.size, unframe(captured.openssl!).length);
  });

  it('openssl s_client -noservername: sni is null', () => {
    assert.equal(ok(parseClientHello(captured.opensslNoSni!)).sni, null);
  });

  it('node tls.connect: SNI and ALPN', () => {
    const hello = ok(parseClientHello(captured.node!));
    assert.equal(hello.sni, 'abc.example.com');
    assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
  });
});

describe('reassembly', () => {
  const names = ['openssl', 'node'];

  it('split at every position gives the same hello and keeps every byte', () => {
    for (const name of names) {
      const buf = captured[name]!;
      const expected = ok(parseClientHello(buf));
      for (let cut = 1; cut < buf.length; cut++) {
        const reader = new ClientHelloReader(65536);
        assert.equal(reader.push(buf.subarray(0, cut)).status, 'need-more');
        assert.deepEqual(ok(reader.push(buf.subarray(cut))), expected);
        assert.deepEqual(reader.bytes(), buf);
      }
    }
  });

  it('one byte per push: need-more until the very last byte', () => {
    for (const name of names) {
      const buf = captured[name]!;
      const { results, reader } = feed(buf, [1]);
      assert.ok(results.slice(0, -1).every((r) => r.status === 'need-more'));
      assert.deepEqual(ok(results.at(-1)!), ok(parseClientHello(buf)));
      assert.equal(reader.bufferedLength, buf.length);
      assert.deepEqual(reader.bytes(), buf);
    }
  });

  it('re-framed into 1-byte, 100-byte and mixed records', () => {
    for (const name of names) {
      const hs = unframe(captured[name]!);
      const expected = ok(parseClientHello(captured[name]!));
      for (const sizes of [[1], [100], [3, 1, 250], [4], [5]]) {
        const records = frame(hs, sizes);
        assert.deepEqual(ok(parseClientHello(records)), expected, `sizes ${sizes}`);
        assert.deepEqual(ok(feed(records, [7, 1, 13]).results.at(-1)!), expected);
      }
    }
  });

  it('a >16 KiB hello spread over several records', () => {
    const hs = withExtension(unframe(captured.openssl!), { type: 21, data: Buffer.alloc(20000) });
    const records = frame(hs, 16384);
    assert.ok(records.length > 16384 + 5 && records[16384 + 5] === 0x16, 'second record present');
    const hello = ok(parseClientHello(records));
    assert.equal(hello.sni, 'abc.example.com');
    assert.equal(hello.size, hs.length);
    assert.deepEqual(ok(feed(records, [1000]).results.at(-1)!), hello);
  });

  it('a synthesised post-quantum key_share (X25519MLKEM768 size)', () => {
    const hs = withExtension(unframe(captured.openssl!), bigKeyShareExt());
    assert.ok(hs.length > 1400);
    const hello = ok(parseClientHello(frame(hs)));
    assert.equal(hello.sni, 'abc.example.com');
    // Typical MSS split: the SNI lands in the first segment, the hello ends in the second.
    const { results } = feed(frame(hs), [1448]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['need-more', 'ok'],
    );
  });

  it('bytes after the hello in the same chunk are kept but not inspected', () => {
    const ccs = Buffer.from([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
    const buf = Buffer.concat([captured.openssl!, ccs]);
    const reader = new ClientHelloReader(65536);
    ok(reader.push(buf));
    assert.deepEqual(ok(reader.push(Buffer.from('junk'))), ok(parseClientHello(captured.openssl!)));
    assert.deepEqual(reader.bytes(), Buffer.concat([buf, Buffer.from('junk')]));
  });

  it('1-byte pushes of a 60 KiB hello run in amortised linear time', () => {
    const hs = withExtension(unframe(captured.openssl!), { type: 21, data: Buffer.alloc(60000) });
    const records = frame(hs, 16384);
    const t0 = performance.now();
    const { results } = feed(records, [1]);
    const ms = performance.now() - t0;
    ok(results.at(-1)!);
    assert.ok(ms < 2000, `took ${ms} ms`);
  });
});

describe('rejection', () => {
  it('non-TLS input is rejected from its first byte', () => {
    for (const s of ['GET / HTTP/1.1\r\n', 'SSH-2.0-OpenSSH_9.6\r\n', 'PROXY TCP4 ']) {
      const reader = new ClientHelloReader(65536);
      assert.equal(errorOf(reader.push(Buffer.from(s.slice(0, 1)))), 'not-tls', s);
    }
    assert.equal(errorOf(parseClientHello(SSL_REQUEST)), 'not-tls');
    // SSLv2-compatible hello: first byte has the high bit set.
    assert.equal(errorOf(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]))), 'not-tls');
    assert.equal(errorOf(parseClientHello(Buffer.from([0x16, 0x02]))), 'not-tls');
    assert.equal(errorOf(parseClientHello(Buffer.from([0x16, 0x03, 0x09]))), 'not-tls');
  });

  it('a ServerHello is not a ClientHello', () => {
    const hs = Buffer.from(unframe(captured.openssl!));
    hs[0] = 2;
    const reader = new ClientHelloReader(65536);
    assert.equal(reader.push(frame(hs).subarray(0, 5)).status, 'need-more');
    assert.equal(errorOf(reader.push(frame(hs).subarray(5, 6))), 'not-client-hello');
  });

  it('too-large is decided as soon as the handshake header is known', () => {
    const hs = withExtension(unframe(captured.openssl!), { type: 21, data: Buffer.alloc(20000) });
    const records = frame(hs, 16384);
    const reader = new ClientHelloReader(16384);
    assert.equal(reader.push(records.subarray(0, 8)).status, 'need-more');
    assert.equal(errorOf(reader.push(records.subarray(8, 9))), 'too-large');
    assert.equal(errorOf(parseClientHello(captured.openssl!, 100)), 'too-large');
  });

  it('too many records is too-large', () => {
    const hs = unframe(captured.openssl!);
    const reader = new ClientHelloReader(65536, 50);
    assert.equal(errorOf(reader.push(frame(hs, 1))), 'too-large');
    assert.ok(reader.bufferedLength > 0);
  });

  it('every truncation of a valid hello is need-more', () => {
    const buf = captured.openssl!;
    for (let n = 0; n < buf.length; n++)
      assert.equal(parseClientHello(buf.subarray(0, n)).status, 'need-more');
  });

  it('record-level errors', () => {
    const hs = unframe(captured.openssl!);
    const twoRecords = frame(hs, 100);
    const alertInside = Buffer.from(twoRecords);
    alertInside[105] = 0x15;
    assert.equal(errorOf(parseClientHello(alertInside)), 'malformed');
    assert.equal(errorOf(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]))), 'malformed');
    assert.equal(errorOf(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x48, 0x01]))), 'malformed');
  });

  it('body-level errors: duplicate extension, trailing bytes, zero length', () => {
    const parts = splitHello(unframe(captured.openssl!));
    parts.extensions.push(parts.extensions[0]!);
    const dup = synthHello(parts.extensions, parts.prefix);
    assert.equal(errorOf(parseClientHello(frame(dup))), 'malformed');

    const hs = unframe(captured.openssl!);
    const trailing = Buffer.concat([hs, Buffer.from([0])]);
    trailing.writeUIntBE(hs.length - 4 + 1, 1, 3);
    assert.equal(errorOf(parseClientHello(frame(trailing))), 'malformed');

    assert.equal(errorOf(parseClientHello(frame(Buffer.from([1, 0, 0, 0])))), 'malformed');
    const badAlpn = withExtension(hs, { type: 16, data: Buffer.from([0, 2, 0, 0x61]) });
    assert.equal(errorOf(parseClientHello(frame(badAlpn))), 'malformed');
  });

  it('hello without extensions (TLS 1.0 style) parses with no SNI', () => {
    const { prefix } = splitHello(unframe(captured.openssl!));
    const body = Buffer.concat([Buffer.from([1, 0, 0, prefix.length]), prefix]);
    const hello = ok(parseClientHello(frame(body)));
    assert.equal(hello.sni, null);
    assert.deepEqual(hello.alpn, []);
  });

  it('no server_name extension gives sni null', () => {
    const hs = withoutExtension(unframe(captured.node!), 0);
    const hello = ok(parseClientHello(frame(hs)));
    assert.equal(hello.sni, null);
    assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
  });
});

describe('server_name validation', () => {
  const hs = () => unframe(captured.openssl!);
  const sniOf = (name: string | Buffer) => parseClientHello(frame(withExtension(hs(), sniExt(name))));

  it('normalises case and a trailing dot', () => {
    assert.equal(ok(sniOf('ABC.Example.COM.')).sni, 'abc.example.com');
    assert.equal(ok(sniOf('localhost')).sni, 'localhost');
    assert.equal(ok(sniOf('xn--bcher-kva.example')).sni, 'xn--bcher-kva.example');
    assert.equal(ok(sniOf('1password.com')).sni, '1password.com');
    assert.equal(ok(sniOf(`${'a'.repeat(63)}.com`)).sni, `${'a'.repeat(63)}.com`);
  });

  it('rejects IP literals, wildcards and garbage', () => {
    const bad = [
      '1.2.3.4',
      '::1',
      '[::1]',
      '*.example.com',
      'a..b',
      '.example.com',
      '-a.example.com',
      'a-.example.com',
      'exa mple.com',
      'a_b.example.com',
      'a.b\u0000.com',
      `${'a'.repeat(64)}.com`,
      `${'a.'.repeat(127)}ab`,
      '.',
      'café.example',
    ];
    for (const name of bad) assert.equal(errorOf(sniOf(name)), 'malformed', JSON.stringify(name));
    assert.equal(errorOf(sniOf(Buffer.alloc(0))), 'malformed');
  });

  it('rejects two host_name entries and an empty list', () => {
    const two = Buffer.concat([Buffer.from([0, 0, 1, 0x61]), Buffer.from([0, 0, 1, 0x62])]);
    const ext = { type: 0, data: Buffer.concat([Buffer.from([0, two.length]), two]) };
    assert.equal(errorOf(parseClientHello(frame(withExtension(hs(), ext)))), 'malformed');
    const empty = { type: 0, data: Buffer.from([0, 0]) };
    assert.equal(errorOf(parseClientHello(frame(withExtension(hs(), empty)))), 'malformed');
  });

  it('reports ECH with the outer SNI', () => {
    const ech = withExtension(hs(), { type: 0xfe0d, data: Buffer.from([0, 0, 1, 0, 1, 7]) });
    const hello = ok(parseClientHello(frame(ech)));
    assert.equal(hello.hasEch, true);
    assert.equal(hello.sni, 'abc.example.com');
  });

  it('synthetic hello: ALPN and supported_versions as sent', () => {
    const h = synthHello([sniExt('db.example.net'), alpnExt(['postgresql']), versionsExt([0x0304])]);
    const hello = ok(parseClientHello(frame(h)));
    assert.deepEqual(hello, {
      sni: 'db.example.net',
      alpn: ['postgresql'],
      legacyVersion: 0x0303,
      supportedVersions: [0x0304],
      hasEch: false,
      size: h.length,
    });
  });
});
