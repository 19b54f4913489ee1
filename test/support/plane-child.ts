/**
 * A data plane in a child process, for tests that need their own process limits (a low fd limit):
 * node plane-child.ts BACKEND_PORT SNI [HELLO_TIMEOUT_MS]; prints {"port":N} once listening, logs JSON lines
 * to stderr.
 */
import pino from 'pino';
import { DataPlane } from '../../src/dataplane/server.ts';
import { backend, bind, ep, listener, route } from '../../src/dataplane/testkit.ts';

const [backendPort, sni, helloTimeoutMs] = process.argv.slice(2);
const dp = new DataPlane({
  defaultAddresses: ['127.0.0.1'],
  logger: pino({ level: 'warn' }, pino.destination(2)),
});
const res = await dp.apply({
  binds: [
    bind(
      [
        listener('l', null, [
          route(sni ?? 'svc.example.com', 'svc', [backend('b', [ep(Number(backendPort))])]),
        ]),
      ],
      helloTimeoutMs === undefined ? {} : { client: { helloTimeoutMs: Number(helloTimeoutMs) } },
    ),
  ],
});
if (res.binds.some((b) => !b.ok)) {
  process.stderr.write(`bind failed: ${JSON.stringify(res.binds)}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ port: dp.listening()[0]?.port })}\n`);
process.on('SIGTERM', () => void dp.shutdown(0).then(() => process.exit(0)));
