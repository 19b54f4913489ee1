// Clients for tests: the conformance TCP echo dialogue, and the TLS "was I rejected, and how" probe.
import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { TcpEchoTest } from './echo-server.ts';

export interface ClientTlsOptions {
  /** SNI to send; omit to send none. */
  servername?: string;
  /** Trust anchors (PEM). Without it the server cert is not verified. */
  ca?: string | string[];
  cert?: string;
  key?: string;
  alpn?: string[];
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export interface EchoClientOptions {
  port: number;
  host?: string;
  /** TLS from the client (the gateway passes it through or terminates it); plain TCP if absent. */
  tls?: ClientTlsOptions;
  /** Bytes written before anything else (e.g. a PROXY header), on the raw TCP stream. */
  preamble?: Buffer;
  timeoutMs?: number;
}

export interface EchoClientResult {
  banner: string;
  pong: string;
  isTls: boolean;
  test: TcpEchoTest;
  /** When the client used TLS: what it saw of the server. */
  tls?: { authorized: boolean; peerSubjectCN?: string; protocol: string | null; alpn: string | false | null };
}

function tlsOptions(o: ClientTlsOptions): ConnectionOptions {
  return {
    ...(o.servername !== undefined ? { servername: o.servername } : {}),
    ...(o.ca !== undefined ? { ca: o.ca } : {}),
    ...(o.cert !== undefined ? { cert: o.cert } : {}),
    ...(o.key !== undefined ? { key: o.key } : {}),
    ...(o.alpn ? { ALPNProtocols: o.alpn } : {}),
    minVersion: o.minVersion ?? 'TLSv1.2',
    ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
    rejectUnauthorized: o.ca !== undefined,
    // Without SNI Node would check the cert against the socket's IP address; the chain check is what we want.
    ...(o.servername === undefined ? { checkServerIdentity: () => undefined } : {}),
  };
}

/** Connects plain TCP (optionally writing a preamble), then TLS on top if asked. Resolves once usable. */
export async function dial(
  opts: Omit<EchoClientOptions, 'timeoutMs'>,
  signal: AbortSignal,
): Promise<{ socket: Socket; tls?: TLSSocket }> {
  const host = opts.host ?? '127.0.0.1';
  const raw = netConnect({ port: opts.port, host });
  const abort = () => raw.destroy(new Error(`timed out talking to ${host}:${opts.port}`));
  signal.addEventListener('abort', abort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', resolve);
      raw.once('error', reject);
    });
    if (opts.preamble) raw.write(opts.preamble);
    if (!opts.tls) return { socket: raw };
    const t = tlsConnect({ socket: raw, ...tlsOptions(opts.tls) });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
      t.once('close', () => reject(new Error('socket closed during TLS handshake')));
    });
    return { socket: t, tls: t };
  } catch (err) {
    raw.destroy();
    throw err;
  } finally {
    signal.removeEventListener('abort', abort);
  }
}

/** Reads '\n'-terminated lines; rejects when the stream closes or errors first. */
export function lineReader(socket: Socket): () => Promise<string> {
  let buf = '';
  const waiters: Array<{ resolve: (l: string) => void; reject: (e: Error) => void }> = [];
  let failure: Error | undefined;
  const pump = () => {
    for (let nl = buf.indexOf('\n'); nl >= 0 && waiters.length > 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl + 1);
      buf = buf.slice(nl + 1);
      waiters.shift()!.resolve(line);
    }
    if (failure) for (const w of waiters.splice(0)) w.reject(failure);
  };
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => {
    buf += c;
    pump();
  });
  const fail = (e: Error) => {
    failure ??= e;
    pump();
  };
  socket.on('error', fail);
  socket.on('end', () => fail(new Error(`stream ended; unread: ${JSON.stringify(buf)}`)));
  socket.on('close', () => fail(new Error(`stream closed; unread: ${JSON.stringify(buf)}`)));
  return () =>
    new Promise<string>((resolve, reject) => {
      waiters.push({ resolve, reject });
      pump();
    });
}

/** The conformance TCP check: banner, PING, IS_TLS, TEST. Rejects on timeout or a short dialogue. */
export async function echoClient(opts: EchoClientOptions): Promise<EchoClientResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const signal = AbortSignal.timeout(timeoutMs);
  const { socket, tls } = await dial(opts, signal);
  const timer = setTimeout(
    () => socket.destroy(new Error(`echo dialogue timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    const next = lineReader(socket);
    const banner = await next();
    socket.write('PING\n');
    const pong = (await next()).trimEnd();
    socket.write('IS_TLS\n');
    const isTlsLine = (await next()).trimEnd();
    socket.write('TEST\n');
    const test = JSON.parse(await next()) as TcpEchoTest;
    const result: EchoClientResult = { banner, pong, isTls: isTlsLine === 'true', test };
    if (tls) {
      const cn = tls.getPeerCertificate().subject?.CN;
      result.tls = {
        authorized: tls.authorized,
        ...(cn ? { peerSubjectCN: Array.isArray(cn) ? cn.join('+') : cn } : {}),
        protocol: tls.getProtocol(),
        alpn: tls.alpnProtocol,
      };
    }
    return result;
  } finally {
    clearTimeout(timer);
    socket.end();
    socket.destroy();
  }
}

export type TlsOutcome =
  | { kind: 'handshake'; authorized: boolean; peerSubjectCN?: string }
  /** Closed with FIN before the handshake finished, no alert: what the conformance suite calls io.EOF. */
  | { kind: 'eof'; message: string }
  /** Closed with RST: ECONNRESET. */
  | { kind: 'reset'; message: string }
  /** The server sent a TLS alert (does NOT count as rejection in the conformance suite). */
  | { kind: 'alert'; message: string; code?: string }
  | { kind: 'refused'; message: string }
  | { kind: 'timeout'; message: string }
  | { kind: 'error'; message: string; code?: string };

/** Tries a TLS handshake and classifies the result the way the conformance rejection check needs. */
export async function tlsOutcome(
  opts: Omit<EchoClientOptions, 'tls'> & { tls: ClientTlsOptions },
): Promise<TlsOutcome> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const { socket, tls } = await dial(opts, signal);
    const cn = tls?.getPeerCertificate().subject?.CN;
    socket.destroy();
    return {
      kind: 'handshake',
      authorized: tls?.authorized ?? false,
      ...(cn ? { peerSubjectCN: Array.isArray(cn) ? cn.join('+') : cn } : {}),
    };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { reason?: string };
    const message = err.message ?? String(e);
    const code = err.code;
    if (signal.aborted) return { kind: 'timeout', message };
    if (code === 'ECONNREFUSED') return { kind: 'refused', message };
    if (/alert/i.test(message) || /ALERT/.test(code ?? ''))
      return { kind: 'alert', message, ...(code ? { code } : {}) };
    if (code === 'ECONNRESET' && err.syscall === 'read') return { kind: 'reset', message };
    if (code === 'ECONNRESET' || /socket (disconnected|closed|hang up)/i.test(message))
      return { kind: 'eof', message };
    return { kind: 'error', message, ...(code ? { code } : {}) };
  }
}
