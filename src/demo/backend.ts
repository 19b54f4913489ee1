/** A demo TLS backend: answers HTTP requests (for curl) and anything else with a line saying who it is. */
import { createServer, type Server, type TLSSocket } from 'node:tls';

export interface DemoBackend {
  name: string;
  port: number;
  server: Server;
}

export function startDemoBackend(name: string, port: number, cert: string, key: string): Promise<DemoBackend> {
  const server = createServer({ cert, key, ALPNProtocols: ['http/1.1'] }, (sock: TLSSocket) => {
    sock.on('error', () => {});
    const who = `${name} (TLS terminated by the backend; SNI ${sock.servername || '-'})`;
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
        sock.end(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
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
