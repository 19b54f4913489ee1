/** Reads what precedes routing off a raw socket: PROXY header in, Postgres SSLRequest dance, then the ClientHello. */
import { type ClientHello, ClientHelloReader, type HelloError } from './clienthello.ts';
import type { RejectReason } from './conn-log.ts';
import { classifyPostgresPreamble, SSL_REQUEST } from './postgres.ts';
import { decodeProxyHeader, type ProxyAddresses, proxySignature } from './proxy-protocol.ts';

/** A v2 header with TLVs from a cloud LB stays far below this; a v1 line is at most 107 bytes. */
export const MAX_PROXY_HEADER_BYTES = 4096;

const REPLY_S = Buffer.from('S');
const REPLY_N = Buffer.from('N');
const EMPTY = Buffer.alloc(0);

export interface PreambleOptions {
  /** The peer is a trusted CIDR: a PROXY v1/v2 header must come first. */
  expectProxy: boolean;
  /** PROXY in is on but the peer is not trusted: a PROXY header closes the connection. */
  refuseProxy: boolean;
  /** tls binds read a ClientHello (and a Postgres preamble); tcp and http binds stop after PROXY. */
  readHello: boolean;
  helloMaxBytes: number;
}

export type PreambleStatus = 'need-more' | 'done' | 'reject';

const HELLO_REJECT: Record<HelloError, RejectReason> = {
  'not-tls': 'not-tls',
  'not-client-hello': 'malformed-hello',
  malformed: 'malformed-hello',
  'too-large': 'hello-too-large',
};

type Phase = 'proxy' | 'refuse-proxy' | 'pg' | 'hello' | 'done';

/**
 * Fed every chunk until it says 'done' or 'reject'; results are fields (no per-chunk allocation).
 * `reply` writes the Postgres answers ('S', 'N') to the client.
 */
export class PreambleReader {
  readonly #opts: PreambleOptions;
  readonly #reply: (b: Buffer) => void;
  #phase: Phase;
  #pending: Buffer = EMPTY;
  #reader: ClientHelloReader | null = null;

  /** Addresses from the PROXY header (null: none, or a LOCAL/UNKNOWN header). */
  proxy: ProxyAddresses | null = null;
  /** The client sent an SSLRequest that was answered 'S': replay it to the backend and swallow its 'S'. */
  pgSsl = false;
  hello: ClientHello | null = null;
  rejectReason: RejectReason | null = null;
  rejectDetail = '';

  constructor(opts: PreambleOptions, reply: (b: Buffer) => void) {
    this.#opts = opts;
    this.#reply = reply;
    this.#phase = opts.expectProxy ? 'proxy' : opts.refuseProxy ? 'refuse-proxy' : this.#afterProxy();
  }

  /** True when nothing needs to be read before routing (tcp/http binds without PROXY in). */
  get immediate(): boolean {
    return this.#phase === 'done';
  }

  push(chunk: Buffer): PreambleStatus {
    let buf = chunk;
    for (let step = 0; step < 8; step++) {
      switch (this.#phase) {
        case 'proxy':
        case 'refuse-proxy': {
          const next = this.#proxyPhase(buf);
          if (next === null) return this.rejectReason === null ? 'need-more' : 'reject';
          buf = next;
          break;
        }
        case 'pg': {
          const next = this.#pgPhase(buf);
          if (next === null) return this.rejectReason === null ? 'need-more' : 'reject';
          buf = next;
          break;
        }
        case 'hello':
          return this.#helloPhase(buf);
        case 'done':
          if (buf.length > 0)
            this.#pending = this.#pending.length === 0 ? buf : Buffer.concat([this.#pending, buf]);
          return 'done';
      }
    }
    return this.#reject('proxy-header-invalid', 'too many preamble steps');
  }

  /** Bytes to replay to the backend, in order (the PROXY header in is not among them). */
  head(): Buffer {
    const rest = this.#reader !== null ? this.#reader.bytes() : this.#pending;
    return this.pgSsl ? Buffer.concat([SSL_REQUEST, rest]) : rest;
  }

  /** Bytes after the preamble, without the SSLRequest (for an in-process TLS hand-off). */
  tail(): Buffer {
    return this.#reader !== null ? this.#reader.bytes() : this.#pending;
  }

  /**
   * Copies every byte kept so far: the chunks pushed may be views of a buffer their owner reuses after
   * push() returns (the native pump's read buffer); call it when push() says 'need-more'.
   */
  own(): void {
    if (this.#pending.length > 0) this.#pending = Buffer.from(this.#pending);
    this.#reader?.own();
  }

  /** Drops the bytes kept for replay once they were taken (tail/head): an idle connection holds no copy. */
  release(): void {
    this.#pending = EMPTY;
    this.#reader = null;
  }

  #afterProxy(): Phase {
    return this.#opts.readHello ? 'pg' : 'done';
  }

  /** Returns the bytes left for the next phase, or null when waiting or rejected. */
  #proxyPhase(chunk: Buffer): Buffer | null {
    const buf = this.#append(chunk);
    if (this.#phase === 'refuse-proxy') {
      // Decided on the signature (at most 12 bytes kept): the header itself is never read from such a peer.
      const sig = proxySignature(buf);
      if (sig === 'need-more') return this.#wait(buf);
      if (sig === 'proxy') return this.#fail('proxy-header-invalid', 'PROXY header from an untrusted peer');
      return this.#advance(this.#afterProxy(), buf);
    }
    const r = decodeProxyHeader(buf);
    switch (r.status) {
      case 'need-more':
        if (buf.length > MAX_PROXY_HEADER_BYTES) return this.#fail('proxy-header-invalid', 'header too long');
        return this.#wait(buf);
      case 'none':
        return this.#fail('proxy-header-invalid', 'trusted peer sent no PROXY header');
      case 'error':
        return this.#fail('proxy-header-invalid', r.detail);
      case 'ok':
        this.proxy = r.addresses;
        return this.#advance(this.#afterProxy(), buf.subarray(r.consumed));
    }
  }

  #pgPhase(chunk: Buffer): Buffer | null {
    const buf = this.#append(chunk);
    switch (classifyPostgresPreamble(buf)) {
      case 'need-more':
        return this.#wait(buf);
      case 'not-postgres':
        return this.#advance('hello', buf);
      case 'cancel-request':
        return this.#fail('pg-cancel-unroutable', 'Postgres CancelRequest carries no SNI');
      case 'gssenc-request':
        // libpq tries GSSAPI encryption first; 'N' makes it fall back to SSLRequest on the same socket.
        this.#reply(REPLY_N);
        return this.#advance('pg', buf.subarray(8));
      case 'ssl-request':
        if (this.pgSsl) return this.#fail('malformed-hello', 'second Postgres SSLRequest');
        this.pgSsl = true;
        this.#reply(REPLY_S);
        return this.#advance('hello', buf.subarray(8));
    }
  }

  #helloPhase(chunk: Buffer): PreambleStatus {
    this.#reader ??= new ClientHelloReader(this.#opts.helloMaxBytes);
    if (chunk.length === 0) return 'need-more';
    const r = this.#reader.push(chunk);
    if (r.status === 'need-more') return 'need-more';
    if (r.status === 'error') return this.#reject(HELLO_REJECT[r.reason], r.detail);
    this.hello = r.hello;
    this.#phase = 'done';
    return 'done';
  }

  #append(chunk: Buffer): Buffer {
    if (this.#pending.length === 0) return chunk;
    const buf = Buffer.concat([this.#pending, chunk]);
    this.#pending = EMPTY;
    return buf;
  }

  #wait(buf: Buffer): null {
    this.#pending = buf;
    return null;
  }

  #advance(phase: Phase, rest: Buffer): Buffer {
    this.#phase = phase;
    if (phase === 'done') this.#pending = rest;
    return phase === 'done' ? EMPTY : rest;
  }

  #fail(reason: RejectReason, detail: string): null {
    this.#reject(reason, detail);
    return null;
  }

  #reject(reason: RejectReason, detail: string): 'reject' {
    this.rejectReason = reason;
    this.rejectDetail = detail;
    this.#phase = 'done';
    return 'reject';
  }
}
