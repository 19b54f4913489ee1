/** The process logger: JSON lines by default (pino), or one readable line per record for a terminal. */
import fs from 'node:fs';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { LogSink } from './log-sink.ts';

export type LogFormat = 'json' | 'text';

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

export function createLogger(opts: {
  level?: string;
  format?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  const level = opts.level ?? process.env.SNIGATE_LOG_LEVEL ?? 'info';
  const format = (opts.format ?? process.env.SNIGATE_LOG_FORMAT ?? 'json') as LogFormat;
  const base = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format !== 'text') return jsonLogger(base);
  // Only here: making process.stdout turns a piped fd 1 non-blocking, as a side effect nothing should rely on.
  const out = opts.destination ?? process.stdout;
  // Readable form: `time LEVEL msg key=value ...`, written synchronously so nothing is lost on exit.
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const { time, level: lv, msg, pid: _pid, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const kv = Object.entries(rest)
            .filter(([, v]) => v !== null && v !== undefined)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          out.write(
            `${time} ${(LEVEL_NAMES[lv as number] ?? lv)?.toString().padEnd(5)} ${msg ?? ''}${kv ? ` ${kv}` : ''}\n`,
          );
        } catch {
          out.write(`${line}\n`);
        }
      }
      cb();
    },
  });
  return pino(base, stream);
}

/** Writes start once this many bytes are pending; below it, within FLUSH_MS (warn and above: at once). */
const BATCH_BYTES = 4096;
const FLUSH_MS = 250;

/**
 * JSON lines on stdout through a LogSink, batched (a write per line went through libuv's threadpool each time:
 * ~45 µs of CPU per proxied connection at info level): written off the event loop once 4 KiB are pending,
 * warn and above at once, the rest within FLUSH_MS, synchronously on exit. If nothing reads stdout, at most
 * 16 MiB wait and later lines are dropped and counted (pino's own destination kept every line, without bound).
 */
function jsonLogger(base: pino.LoggerOptions): Logger {
  const dest = new LogSink({ fd: stdoutForSink(), batchBytes: BATCH_BYTES });
  flushAtExit(dest);
  // Ticks left to flush: a flush while a write is in flight does nothing, so the tail gets a few tries; no
  // ticks are left once logging stops (an idle gateway makes no empty writes).
  let ticks = 0;
  const timer = setInterval(() => {
    if (ticks === 0) return;
    ticks--;
    dest.flush();
  }, FLUSH_MS);
  timer.unref();
  return pino(
    {
      ...base,
      hooks: {
        logMethod(args, method, level) {
          method.apply(this, args);
          ticks = 4;
          if (level >= 40) dest.flush();
        },
      },
    },
    dest,
  );
}

/**
 * The descriptor the sink writes stdout through. A pipe (a container runtime's FIFO) is reopened non-blocking:
 * a new file description, so Node's own writes to fd 1 keep their mode. A stuck reader then makes writes fail
 * with EAGAIN (lines wait, then are dropped and counted) instead of holding a threadpool thread in write(2),
 * which also hung the process at exit (libuv joins its threads). Anything else (file, terminal, socket) is fd 1.
 */
function stdoutForSink(): number {
  if (sinkFd !== undefined) return sinkFd;
  try {
    sinkFd = fs.fstatSync(1).isFIFO()
      ? fs.openSync('/proc/self/fd/1', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
      : 1;
  } catch {
    sinkFd = 1;
  }
  return sinkFd;
}

/** Made once per process: every JSON logger writes the same stdout (tests make many loggers). */
let sinkFd: number | undefined;

/** Every JSON logger's sink, flushed by one exit listener (each logger's flush timer keeps its sink alive anyway). */
const sinks = new Set<LogSink>();

function flushAtExit(sink: LogSink): void {
  if (sinks.size === 0) {
    process.on('exit', () => {
      for (const s of sinks) s.flushSync();
    });
  }
  sinks.add(sink);
}

/** Log lines dropped by every JSON logger of the process because stdout was not being read (a metric). */
export function logLinesDropped(): number {
  let n = 0;
  for (const s of sinks) n += s.droppedTotal;
  return n;
}
