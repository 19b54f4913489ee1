/**
 * The Node floor of the TLS termination bench: a bare https server proxying GET /small to the plain-HTTP origin,
 * with one upstream client per KIND, to tell Node's and the client library's per-request cost from snigate's.
 * Not part of `main.ts`; it does no routing, header rewriting, logging or metrics, and handles no request bodies.
 *
 *   node bench/term-floor.ts PEM PORT ORIGIN_PORT [KIND]
 *
 * PEM holds the certificate and key (the bench's `haproxy-term.pem`, kept with `--keep`); load it as the bench
 * does (wrk -t2 -c64 GET /small with the bench's Lua script) and read this process's CPU from /proc.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Client, type Dispatcher, Pool } from 'undici';

type Forward = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const [pem, port, originPort, kind = 'undici-dispatch'] = process.argv.slice(2);
const origin = `http://127.0.0.1:${originPort}`;

/** undici's dispatch API: a handler object, no promise and no response stream (what snigate uses). */
function dispatchVia(pick: () => Dispatcher, done: (d: Dispatcher) => void = () => {}): Forward {
  return (req, res) => {
    const d = pick();
    d.dispatch(
      { method: req.method as 'GET', path: req.url ?? '/', headers: req.headers },
      {
        onRequestStart: () => {},
        onResponseStart: (_c, status, headers) => res.writeHead(status, headers as http.OutgoingHttpHeaders),
        onResponseData: (_c, chunk) => void res.write(chunk),
        onResponseEnd: () => {
          done(d);
          res.end();
        },
        onResponseError: () => res.destroy(),
      },
    );
  };
}

const pool = new Pool(origin);
const idleClients: Client[] = [];
const idleSockets: net.Socket[] = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const kinds: Record<string, Forward> = {
  /** No upstream at all: Node's https server answering itself. */
  none: (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  },
  /** undici Pool, request() API: promise + response stream per request (what snigate used before). */
  'undici-pool': (req, res) => {
    pool.request({ method: req.method as 'GET', path: req.url ?? '/', headers: req.headers }).then(
      (r) => {
        res.writeHead(r.statusCode, r.headers as http.OutgoingHttpHeaders);
        r.body.on('data', (c: Buffer) => res.write(c));
        r.body.on('end', () => res.end());
      },
      () => res.destroy(),
    );
  },
  'undici-dispatch': dispatchVia(() => pool),
  /** One undici Client per upstream connection, idle ones on a stack instead of Pool's bookkeeping. */
  'undici-clients': dispatchVia(
    () => idleClients.pop() ?? new Client(origin),
    (c) => idleClients.push(c as Client),
  ),
  /** HTTP/1.1 pipelining, 8 connections × 8 requests. */
  'undici-pipelined': dispatchVia(
    (() => {
      const p = new Pool(origin, { connections: 8, pipelining: 8 });
      return () => p;
    })(),
  ),
  /** node:http client with a keep-alive Agent. */
  'node-agent': (req, res) => {
    const up = http.request(
      {
        host: '127.0.0.1',
        port: Number(originPort),
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  },
  /**
   * The least any client can do, an estimate and not a client: idle sockets on a stack, the head written as one
   * string, a response parsed by hand assuming Content-Length and one read. Anything else breaks it.
   */
  raw: (req, res) => {
    const sock = idleSockets.pop() ?? net.connect(Number(originPort), '127.0.0.1');
    let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      head += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    sock.write(`${head}\r\n`, 'latin1');
    const onData = (buf: Buffer): void => {
      const end = buf.indexOf('\r\n\r\n');
      const lines = buf.toString('latin1', 0, end).split('\r\n');
      const headers: string[] = [];
      let length = 0;
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        const name = l.slice(0, c).toLowerCase();
        const value = l.slice(c + 1).trim();
        if (name === 'content-length') length = Number(value);
        if (name !== 'connection' && name !== 'keep-alive') headers.push(name, value);
      }
      sock.off('data', onData);
      idleSockets.push(sock);
      res.writeHead(Number(lines[0]!.slice(9, 12)), headers);
      res.end(buf.subarray(end + 4, end + 4 + length));
    };
    sock.on('data', onData);
  },
};

const forward = kinds[kind];
if (pem === undefined || port === undefined || originPort === undefined || forward === undefined) {
  console.error(`usage: node bench/term-floor.ts PEM PORT ORIGIN_PORT [${Object.keys(kinds).join('|')}]`);
  process.exit(2);
}
const both = readFileSync(pem, 'utf8');
https
  .createServer({ cert: both, key: both, ALPNProtocols: ['http/1.1'] }, forward)
  .listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
