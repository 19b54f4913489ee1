/** A demo TLS backend: answers HTTP requests (for curl) and anything else with a line saying who it is. */
import { createServer, type Server, type TLSSocket } from 'node:tls';

export interface DemoBackend {
  name: string;
  port: number;
  server: Server;
}

/** `clientCa`: require a client certificate signed by it (the backend does mTLS itself, as in seed 001). */
export function startDemoBackend(
  name: string,
  port: number,
  cert: string,
  key: string,
  clientCa?: string,
): Promise<DemoBackend> {
  const mtls = clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: true } : {};
  const server = createServer({ cert, key, ALPNProtocols: ['http/1.1'], ...mtls }, (sock: TLSSocket) => {
    sock.on('error', () => {});
    const peer = sock.getPeerCertificate();
    const client = peer?.subject?.CN ? `; client certificate ${peer.subject.CN}` : '';
    const who = `${name} (TLS terminated by the backend; SNI ${sock.servername || '-'}${client})`;
    let greeted = false;
    // Protocols where the server speaks first still get an answer.
    const timer = setTimeout(() => {
      if (!greeted) sock.write(`hello from ${who}\n`);
      greeted = true;
    }, 300);
    sock.once('data', (d: Buffer) => {
      clearTimeout(timer);
      if (/^(GET|HEAD|POST|PUT|DELETE|OPTIONS) /.test(d.toString('latin1', 0, 8))) {
        const body = `hello from ${who}\n`;
        sock.end(
          `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      } else {
        if (!greeted) sock.write(`hello from ${who}\n`);
        greeted = true;
        sock.pipe(sock);
        sock.write(d);
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ name, port, server }));
  });
}

/** A plain-HTTP backend, for routes the gateway terminates (the gateway speaks HTTP to it). */
export function startHttpDemoBackend(
  name: string,
  port: number,
): Promise<{ name: string; port: number; server: import('node:http').Server }> {
  return import('node:http').then(
    ({ createServer: createHttp }) =>
      new Promise((resolve, reject) => {
        const server = createHttp((req, res) => {
          const body = `hello from ${name} over plain HTTP: ${req.method} ${req.url} (X-Forwarded-Proto ${req.headers['x-forwarded-proto'] ?? '-'}, X-Forwarded-For ${req.headers['x-forwarded-for'] ?? '-'})\n`;
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(body);
        });
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve({ name, port, server }));
      }),
  );
}
