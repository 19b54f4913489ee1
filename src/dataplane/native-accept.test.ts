/** Accepting in C (native/pump): out of file descriptors, the listener backs off instead of spinning, and recovers. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativePump } from './native-pump.ts';
import { captureHello, collect, rawConnect, sleep, startRawBackend } from './testkit.ts';

const child = fileURLToPath(new URL('../../test/support/plane-child.ts', import.meta.url));
const skip = nativePump === null ? 'native pump not built or SNIGATE_PUMP=js' : false;

/** utime + stime of a process, ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

test('EMFILE: accepting pauses (no busy loop), is logged once a second at most, and recovers', {
  skip,
  timeout: 60_000,
}, async () => {
  const hello = await captureHello('svc.example.com');
  // Held connections send nothing and stay accepted, one fd each, until the child is out of fds (with a
  // ClientHello each would also need a backend socket, and that socket() would hit EMFILE before accept
  // does); the last one is answered and closed.
  let recovering = false;
  const be = await startRawBackend((s: net.Socket) => {
    if (recovering) s.end('hi');
  });
  // 64 fds: node itself uses ~20, each passthrough connection 2.
  const p = spawn(
    'bash',
    ['-c', `ulimit -n 64 && exec "${process.execPath}" "${child}" ${be.port} svc.example.com 30000`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: p.stdout }).once('line', resolve);
      p.once('exit', (code) => reject(new Error(`child exited ${code}: ${stderr}`)));
    });
    const port = (JSON.parse(line) as { port: number }).port;
    const held: net.Socket[] = [];
    for (let i = 0; i < 60; i++) {
      const c = await rawConnect(port);
      c.on('error', () => {});
      held.push(c);
    }
    await sleep(500);
    // Saturated: the kernel still queues connections the child cannot accept; it must not spin on them.
    const c0 = cpuMs(p.pid!);
    await sleep(1500);
    const used = cpuMs(p.pid!) - c0;
    assert.ok(used < 400, `child used ${used} ms of CPU in 1.5 s while out of fds`);
    assert.match(stderr, /accept failed/);
    assert.match(stderr, /EMFILE/);
    const logged = stderr.split('\n').filter((l) => l.includes('accept failed')).length;
    assert.ok(logged <= 4, `accept failure logged ${logged} times in ~2 s`);
    for (const c of held) c.destroy();
    await sleep(500);
    recovering = true;
    // Recovered: a new connection is routed again.
    const c = await rawConnect(port);
    c.write(hello);
    const r = await collect(c, 3000);
    assert.equal(r.data.toString(), 'hi');
    c.destroy();
  } finally {
    p.kill('SIGKILL');
    await be.close();
  }
});
