/** LogSink on real descriptors: a file (order, sizes), a FIFO nobody reads (drops, loop not blocked), /dev/full. */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogSink } from './log-sink.ts';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'snigate-logsink-'));
const flushed = (s: LogSink): Promise<void> => new Promise((r) => s.flush(() => r()));

test('every line reaches a file once, in order: small and non-ASCII lines, one larger than a buffer', async () => {
  const dir = tmp();
  const file = path.join(dir, 'log');
  const fd = fs.openSync(file, 'w');
  const sink = new LogSink({ fd, batchBytes: 4096 });
  const lines: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    const line =
      i === 7777
        ? `{"big":"${'x'.repeat(100_000)}"}\n`
        : `{"i":${i},"s":"${i % 3 === 0 ? 'é漢😀' : 'abc'}"}\n`;
    lines.push(line);
    sink.write(line);
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  await flushed(sink);
  fs.closeSync(fd);
  assert.equal(fs.readFileSync(file, 'utf8'), lines.join(''));
  fs.rmSync(dir, { recursive: true });
});

for (const nonBlocking of [false, true]) {
  // A blocking pipe holds the write in flight on a threadpool thread; a non-blocking one (how a container
  // runtime may hand over stdout) takes part of a write, then says EAGAIN.
  const kind = nonBlocking ? 'non-blocking' : 'blocking';
  test(`a stuck ${kind} reader: lines past the cap are dropped and counted, the loop runs, the rest arrives in order`, async () => {
    const dir = tmp();
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Read-write open: no reader is needed to open it, and nothing drains it until the test reads.
    const fd = fs.openSync(fifo, fs.constants.O_RDWR | (nonBlocking ? fs.constants.O_NONBLOCK : 0));
    const sink = new LogSink({ fd, batchBytes: 4096, maxPendingBytes: 256 * 1024 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const written: string[] = [];
    for (let i = 0; i < 40_000; i++) {
      const line = `{"i":${i},"pad":"${'p'.repeat(40)}"}\n`;
      sink.write(line);
      written.push(line);
      if (i % 2000 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(ticks > 5, `the event loop kept running (${ticks} timer ticks)`);
    clearInterval(timer);
    // Now drain the FIFO through a second descriptor until every line is accounted for: arrived, or counted
    // in a warning line (the pipe holds 64 KiB and the cap is 256 KiB: ~2 MB of lines cannot all be kept).
    const rd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    let got = '';
    const chunk = Buffer.alloc(65536);
    const deadline = Date.now() + 10_000;
    let kept: string[] = [];
    let dropped = 0;
    const account = (): number => {
      const out = got
        .slice(0, got.lastIndexOf('\n') + 1)
        .split('\n')
        .filter(Boolean);
      kept = out.filter((l) => !l.includes('log lines dropped'));
      dropped = out
        .filter((l) => l.includes('log lines dropped'))
        .reduce((n, l) => n + (JSON.parse(l) as { dropped: number }).dropped, 0);
      return kept.length + dropped;
    };
    while (account() < written.length && Date.now() < deadline) {
      sink.flush();
      try {
        const n = fs.readSync(rd, chunk);
        got += chunk.toString('utf8', 0, n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    assert.ok(dropped > 0, 'lines were dropped while the reader was stuck');
    assert.equal(sink.droppedTotal, dropped, 'the total for the metric matches the warning lines');
    assert.equal(kept.length + dropped, written.length, 'each line either arrived or was counted as dropped');
    // What arrived is a prefix of what was written (drops happen at the tail while the reader is stuck).
    assert.deepEqual(
      kept,
      written.slice(0, kept.length).map((l) => l.trimEnd()),
    );
    const warning = JSON.parse(got.split('\n').find((l) => l.includes('log lines dropped'))!) as {
      level: number;
    };
    assert.equal(warning.level, 40);
    fs.closeSync(rd);
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true });
  });
}

test('a descriptor that fails (/dev/full) never throws: the sink stops writing and says so once on stderr', async () => {
  const sink = fileURLToPath(new URL('./log-sink.ts', import.meta.url));
  const code =
    `import fs from 'node:fs'; import { LogSink } from ${JSON.stringify(sink)};` +
    `const s = new LogSink({ fd: fs.openSync('/dev/full', 'w'), batchBytes: 16 });` +
    `for (let i = 0; i < 100; i++) s.write('{"i":' + i + '}\\n');` +
    `s.flush(() => { s.write('{"after":1}\\n'); s.flushSync(); s.flush(() => process.stdout.write('done')); });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'done');
  assert.equal(r.stderr, 'snigate: writing JSON logs failed (ENOSPC); no more JSON log lines\n');
});

test('more pending buffers than IOV_MAX (1024) reach the file intact (libuv splits the writev)', async () => {
  const dir = tmp();
  const file = path.join(dir, 'log');
  const fd = fs.openSync(file, 'w');
  const sink = new LogSink({ fd, batchBytes: 64 * 1024, maxPendingBytes: 256 * 1024 * 1024 });
  // Lines too long for the shared buffer get a buffer each: 1500 of them are queued before any write.
  const lines = Array.from({ length: 1500 }, (_, i) => `{"i":${i},"pad":"${'q'.repeat(25_000)}"}\n`);
  for (const l of lines) sink.write(l);
  await flushed(sink);
  fs.closeSync(fd);
  assert.equal(fs.readFileSync(file, 'utf8'), lines.join(''));
  fs.rmSync(dir, { recursive: true });
});
