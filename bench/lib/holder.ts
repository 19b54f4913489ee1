/**
 * Child process that holds N idle TLS connections through a proxy (SNI routed, handshake complete).
 * Usage: node holder.ts PORT SNI COUNT CONCURRENCY. Prints one JSON line when all are open, then
 * answers stdin commands: `check` (one HTTP request on each, reports alive/dead/cut) and `exit`.
 * Bounded: each connect has a 10 s timeout, each check a 10 s deadline.
 */
import { createInterface } from 'node:readline';
import tls from 'node:tls';

const [portArg, sni, countArg, concArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const concurrency = Number(concArg ?? 64);

const conns: tls.TLSSocket[] = [];
let failed = 0;
let cut = 0;
let checking = false;

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: sni,
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    s.setTimeout(10_000, () => s.destroy(new Error('connect timeout')));
    s.once('secureConnect', () => {
      s.setTimeout(0);
      conns.push(s);
      s.once('close', () => {
        if (!checking) cut++;
      });
      resolve();
    });
    s.once('error', () => {
      failed++;
      resolve();
    });
    s.on('error', () => {});
  });
}

async function openAll(): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      await openOne();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

function checkOne(s: tls.TLSSocket): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(false);
    let buf = '';
    const timer = setTimeout(() => done(false), 10_000);
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n')) done(buf.startsWith('HTTP/1.1 200'));
    };
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.removeListener('data', onData);
      resolve(ok);
    };
    s.on('data', onData);
    s.write(`GET /small HTTP/1.1\r\nHost: ${sni}\r\n\r\n`);
  });
}

async function checkAll(): Promise<{ alive: number; dead: number; cut: number }> {
  let alive = 0;
  let dead = 0;
  const cutBefore = cut;
  for (let i = 0; i < conns.length; i += 256) {
    const oks = await Promise.all(conns.slice(i, i + 256).map(checkOne));
    for (const ok of oks) ok ? alive++ : dead++;
  }
  return { alive, dead, cut: cutBefore };
}

await openAll();
process.stdout.write(`${JSON.stringify({ open: conns.length, failed })}\n`);
const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (line === 'check') {
    const r = await checkAll();
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } else if (line === 'exit') {
    checking = true;
    for (const s of conns) s.destroy();
    process.exit(0);
  }
});
rl.on('close', () => process.exit(0));
