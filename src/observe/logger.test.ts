/** The JSON logger batches writes: a lone line still shows up promptly, and nothing buffered is lost on exit. */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const logger = fileURLToPath(new URL('./logger.ts', import.meta.url));

/** Runs `body` in a child with `log` = createLogger({ level: 'info' }); resolves with stdout lines as they come. */
function child(body: string): { lines: string[]; stamps: number[]; done: Promise<number | null> } {
  const code = `import { createLogger } from ${JSON.stringify(logger)}; const log = createLogger({ level: 'info' }); ${body}`;
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const stamps: number[] = [];
  let rest = '';
  p.stdout.on('data', (d: Buffer) => {
    rest += d.toString();
    const parts = rest.split('\n');
    rest = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      stamps.push(Date.now());
    }
  });
  return { lines, stamps, done: new Promise((r) => p.on('close', r)) };
}

test('a single info line is written promptly, while the process keeps running', async () => {
  const started = Date.now();
  const c = child(`log.info({ n: 1 }, 'lone'); setTimeout(() => {}, 3000);`);
  while (c.lines.length === 0 && Date.now() - started < 2500) await new Promise((r) => setTimeout(r, 20));
  assert.equal(c.lines.length, 1, 'the line did not come out while the process ran');
  assert.match(c.lines[0]!, /"msg":"lone"/);
  assert.ok(c.stamps[0]! - started < 2000, `${c.stamps[0]! - started} ms`);
  await c.done;
});

test('lines still buffered are written when the process exits', async () => {
  const c = child(`for (let i = 0; i < 50; i++) log.info({ i }, 'line'); process.exit(0);`);
  assert.equal(await c.done, 0);
  assert.equal(c.lines.length, 50);
  assert.deepEqual(
    c.lines.map((l) => (JSON.parse(l) as { i: number }).i),
    Array.from({ length: 50 }, (_, i) => i),
  );
});

test('lines dropped because nothing reads stdout are counted in snigate_log_lines_dropped_total', async () => {
  const metrics = fileURLToPath(new URL('./metrics.ts', import.meta.url));
  // The parent reads nothing from the child's stdout until the child has reported the counter on stderr.
  const code =
    `import { createLogger } from ${JSON.stringify(logger)}; import { Metrics } from ${JSON.stringify(metrics)};` +
    `const log = createLogger({ level: 'info' }); const m = new Metrics({ defaultMetrics: false });` +
    `for (let i = 0; i < 400000; i++) log.info({ i, pad: 'x'.repeat(40) }, 'line');` +
    `setTimeout(async () => { const { body } = await m.scrape(); process.stderr.write(body.split('\\n').find((l) => l.startsWith('snigate_log_lines_dropped_total')) + '\\n'); }, 200);`;
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.stdout.pause();
  let err = '';
  const line = await new Promise<string>((resolve) => {
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('\n')) resolve(err.split('\n')[0]!);
    });
  });
  p.stdout.resume();
  p.stdout.on('data', () => {});
  await new Promise((r) => p.on('close', r));
  const dropped = Number(line.split(' ')[1]);
  assert.ok(dropped > 0 && dropped < 400000, line);
});

test('a process whose stdout pipe nobody reads still exits (the sink writes it non-blocking)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'snigate-logger-'));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // Held open read-write by the test and never read: the child's stdout fills up and stays full.
  const fd = openSync(fifo, 'r+');
  const code =
    `import { createLogger } from ${JSON.stringify(logger)}; const log = createLogger({ level: 'info' });` +
    `for (let i = 0; i < 100000; i++) log.info({ i, pad: 'x'.repeat(40) }, 'line');` +
    `setTimeout(() => process.exit(0), 1000);`;
  const started = Date.now();
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', fd, 'inherit'],
  });
  const killer = setTimeout(() => p.kill('SIGKILL'), 15_000);
  const status = await new Promise<number | null>((r) => p.on('close', (c) => r(c)));
  clearTimeout(killer);
  closeSync(fd);
  rmSync(dir, { recursive: true });
  assert.equal(status, 0, 'killed: the exit hung on the full pipe');
  assert.ok(Date.now() - started < 10_000, `${Date.now() - started} ms`);
});
