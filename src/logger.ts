// pino factory: JSON lines for machines, readable lines on a terminal; always stderr, never stdout.
import { Writable } from 'node:stream';
import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export type LogFormat = 'json' | 'pretty';

export const LOG_LEVELS: readonly LevelWithSilent[] = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
];

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Defaults to `pretty` when the destination is a terminal, else `json`. */
  format?: LogFormat;
  /** Where lines go; defaults to process.stderr. */
  destination?: NodeJS.WritableStream & { isTTY?: boolean };
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

const BASE_KEYS = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** formatPretty turns one pino JSON line into `HH:MM:SS.mmm LEVEL msg key=value ...`. */
export function formatPretty(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 23) : '';
  const level = LEVEL_NAMES[rec.level as number] ?? String(rec.level);
  const fields = Object.entries(rec)
    .filter(([k]) => !BASE_KEYS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${time} ${level.padEnd(5)} ${typeof rec.msg === 'string' ? rec.msg : JSON.stringify(rec.msg ?? '')}${fields.length ? ' ' + fields.join(' ') : ''}\n`;
}

/** createLogger builds the process logger; library code only ever receives one. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const dest = options.destination ?? process.stderr;
  const format = options.format ?? (dest.isTTY ? 'pretty' : 'json');
  const base = { base: undefined, level: options.level ?? 'info' };
  if (format === 'json') {
    return dest === process.stderr
      ? pino(base, pino.destination({ fd: 2, sync: true }))
      : pino(base, dest);
  }
  const pretty = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l.length > 0)
        .map(formatPretty)
        .join('');
      dest.write(text);
      cb();
    },
  });
  return pino(base, pretty);
}

/** silentLogger is the default for library users who pass no logger. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
