/** Batched log-line writer for a file descriptor: lines are encoded into 64 KiB buffers and written off the loop. */
import fs from 'node:fs';

const CHUNK = 64 * 1024;
/** How long an exit-time flush waits, in total, for a full non-blocking pipe before giving up. */
const EXIT_RETRY_MS = 1000;
/** Written-out 64 KiB buffers kept for reuse. */
const SPARE_BUFFERS = 4;
/** The stores made by newChunk: only these are reused (never a slice of Node's shared Buffer pool). */
const OWN_STORES = new WeakSet<ArrayBufferLike>();

function newChunk(): Buffer {
  const b = Buffer.allocUnsafeSlow(CHUNK);
  OWN_STORES.add(b.buffer);
  return b;
}

/** Never notified: Atomics.wait on it is a plain sleep between exit-time retries. */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

export interface LogSinkOptions {
  fd: number;
  /** A write starts once this many bytes are pending (flush() starts one sooner). */
  batchBytes?: number;
  /** Past this many bytes waiting (the reader of the fd is stuck), new lines are dropped and counted. */
  maxPendingBytes?: number;
}

/**
 * What pino writes JSON lines to. Each line is encoded once into the current buffer (no string joins, no
 * byte length of the pending batch per line, as sonic-boom does); full buffers go out together in one
 * asynchronous writev on libuv's threadpool, so a slow reader (a full pipe) never blocks the event loop.
 * Partial writes and EAGAIN (a non-blocking pipe) are retried; if the reader stays stuck, lines past
 * maxPendingBytes are dropped and a warning line with the count is written once writing resumes.
 * flushSync() (at exit) writes what is not in flight with blocking writes.
 */
export class LogSink {
  readonly #fd: number;
  readonly #batch: number;
  readonly #maxPending: number;
  #buf: Buffer = newChunk();
  #len = 0;
  /**
   * Written-out buffers kept for reuse: a new 64 KiB buffer every ~200 lines is external memory that V8
   * answers with major GCs (~13 µs of marking per connection at info level in a profile).
   */
  #spare: Buffer[] = [];
  /** Filled buffers not handed to a write yet, oldest first. */
  #queue: Buffer[] = [];
  #queued = 0;
  /** The buffers of the write in flight, and their bytes (counted against maxPendingBytes too). */
  #inFlight: Buffer[] | null = null;
  #inFlightBytes = 0;
  #retry: NodeJS.Timeout | null = null;
  #dropped = 0;
  #droppedTotal = 0;
  #failed = false;
  /** flush(cb) callers, told once nothing is pending or in flight. */
  #waiters: ((err?: Error) => void)[] = [];

  constructor(opts: LogSinkOptions) {
    this.#fd = opts.fd;
    this.#batch = Math.min(opts.batchBytes ?? 4096, CHUNK);
    this.#maxPending = opts.maxPendingBytes ?? 16 * 1024 * 1024;
  }

  /** Lines dropped since the last warning line because the fd's reader was stuck. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Lines dropped since the sink was made (the warning lines reset `dropped`, not this). */
  get droppedTotal(): number {
    return this.#droppedTotal;
  }

  /** One complete line (pino passes each with its newline). Never throws, never blocks. */
  write(line: string): boolean {
    if (this.#failed) return true;
    const worst = line.length * 3; // UTF-8 bytes per UTF-16 unit, at most
    if (this.#queued + this.#inFlightBytes + this.#len + worst > this.#maxPending) {
      this.#dropped++;
      this.#droppedTotal++;
      return true;
    }
    if (worst > CHUNK) {
      this.#rotate();
      this.#enqueue(Buffer.from(line, 'utf8'));
    } else {
      if (this.#len + worst > this.#buf.length) this.#rotate();
      this.#len += this.#buf.write(line, this.#len, 'utf8');
    }
    if (this.#len >= this.#batch && this.#inFlight === null) this.flush();
    return true;
  }

  /**
   * Starts writing whatever is pending (a write in flight continues by itself); `cb` once all is written.
   */
  flush(cb?: (err?: Error) => void): void {
    if (cb !== undefined) this.#waiters.push(cb);
    if (this.#inFlight !== null || this.#retry !== null) return;
    if (this.#failed) {
      this.#settle();
      return;
    }
    this.#rotate();
    if (this.#dropped > 0) this.#noteDropped();
    if (this.#queue.length === 0) {
      this.#settle();
      return;
    }
    const bufs = this.#queue;
    this.#inFlightBytes = this.#queued;
    this.#queue = [];
    this.#queued = 0;
    this.#inFlight = bufs;
    fs.writev(this.#fd, bufs, (err, written) => this.#written(bufs, err, written));
  }

  /** Writes everything not in flight with blocking writes (process exit). */
  flushSync(): void {
    if (this.#failed) return;
    this.#rotate();
    if (this.#dropped > 0) this.#noteDropped();
    const deadline = Date.now() + EXIT_RETRY_MS;
    while (this.#queue.length > 0) {
      const b = this.#queue[0]!;
      try {
        const n = fs.writeSync(this.#fd, b);
        if (n >= b.length) this.#queue.shift();
        else this.#queue[0] = b.subarray(n);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'EAGAIN' && code !== 'EBUSY') || Date.now() > deadline) return;
        Atomics.wait(PAUSE, 0, 0, 10);
      }
    }
  }

  #rotate(): void {
    if (this.#len === 0) return;
    this.#enqueue(this.#buf.subarray(0, this.#len));
    this.#buf = this.#spare.pop() ?? newChunk();
    this.#len = 0;
  }

  /** Takes back the shared buffers of a finished write (views of a CHUNK-sized store; not line-sized ones). */
  #recycle(bufs: Buffer[]): void {
    for (const b of bufs) {
      if (this.#spare.length >= SPARE_BUFFERS) return;
      if (OWN_STORES.has(b.buffer) && b.buffer !== this.#buf.buffer)
        this.#spare.push(Buffer.from(b.buffer, 0, CHUNK));
    }
  }

  #enqueue(b: Buffer): void {
    this.#queue.push(b);
    this.#queued += b.length;
  }

  #written(bufs: Buffer[], err: NodeJS.ErrnoException | null, written: number): void {
    this.#inFlight = null;
    this.#inFlightBytes = 0;
    // A write that took nothing is retried later like EAGAIN, never at once in a loop.
    if (err !== null || written === 0) {
      if (err === null || err.code === 'EAGAIN' || err.code === 'EBUSY') {
        this.#requeue(bufs, 0);
        this.#retry = setTimeout(() => {
          this.#retry = null;
          this.flush();
        }, 20);
        this.#retry.unref();
        return;
      }
      // EPIPE, EBADF, ENOSPC: keep the gateway running without its JSON logs, and say so once on stderr.
      this.#failed = true;
      try {
        fs.writeSync(
          2,
          `snigate: writing JSON logs failed (${err.code ?? err.message}); no more JSON log lines\n`,
        );
      } catch {
        // stderr is gone too.
      }
      this.#queue = [];
      this.#queued = 0;
      this.#settle();
      return;
    }
    const done = this.#requeue(bufs, written);
    this.#recycle(done);
    if (this.#queue.length > 0 || this.#len >= this.#batch || this.#waiters.length > 0) this.flush();
  }

  #settle(): void {
    if (this.#waiters.length === 0) return;
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }

  /** Puts back what a write did not take, ahead of anything queued since; returns the buffers fully written. */
  #requeue(bufs: Buffer[], written: number): Buffer[] {
    const rest: Buffer[] = [];
    const done: Buffer[] = [];
    let skip = written;
    for (const b of bufs) {
      if (skip >= b.length) {
        skip -= b.length;
        done.push(b);
        continue;
      }
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    if (rest.length > 0) {
      this.#queue = rest.concat(this.#queue);
      for (const b of rest) this.#queued += b.length;
    }
    return done;
  }

  /** One pino-shaped warning line saying how many lines were lost while the reader was stuck. */
  #noteDropped(): void {
    const n = this.#dropped;
    this.#dropped = 0;
    const line = `{"level":40,"time":"${new Date().toISOString()}","pid":${process.pid},"dropped":${n},"msg":"log lines dropped: the log output was not being read"}\n`;
    this.#enqueue(Buffer.from(line, 'utf8'));
  }
}
