/** The process logger: JSON lines by default (pino), or one readable line per record for a terminal. */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

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
  const out = opts.destination ?? process.stdout;
  const base = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format !== 'text') return pino(base, pino.destination({ dest: 1, sync: false }));
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
