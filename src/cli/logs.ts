// `portpub logs [-f] [--tail N] NAME`: a service's output from its log file (the command's and
// portpub's own lines: a detached one's whole output, a foreground one's kept by
// src/cli/run-output.ts); -f follows it until the service ends, as docker logs -f does, or until
// its reader goes away (reader-gone.ts).
import { closeSync, openSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { containerPath, findContainer, liveness, readRecord } from '../registry/containers.js';
import type { CliContext } from './context.js';
import { EXIT_PIPE, watchReader } from './reader-gone.js';

/** registerLogs adds `portpub logs`. */
export function registerLogs(program: Command, ctx: CliContext): void {
  program
    .command('logs')
    .description('print the output of a service')
    .argument('<name>', 'service name or id')
    .option('-f, --follow', 'follow the output until the service ends', false)
    // Docker's default is 'all' (docker logs --help: `--tail string ... (default "all")`); the
    // value itself stays Infinity, commander shows the text given here.
    .addOption(
      new Option('-n, --tail <n>', "lines from the end to show ('all' or a number)")
        .argParser(tail)
        .default(Infinity, '"all"'),
    )
    .action(async (name: string, opts: { follow: boolean; tail: number }) => {
      const record = findContainer(name);
      const read = logReader(containerPath(record.id, 'log'));
      const reader = opts.follow ? watchReader(ctx.io.stdout) : undefined;
      try {
        const first = read();
        ctx.io.stdout.write(lastLines(first, opts.tail));
        if (reader === undefined) return;
        const going = () => {
          const r = readRecord(record.id);
          return r !== undefined && liveness(r) === 'running';
        };
        await followLog(record.id, read, ctx.io.stdout, going, reader.signal);
        if (reader.signal.aborted) ctx.setExit(EXIT_PIPE);
      } finally {
        reader?.off();
      }
    });
}

/**
 * logReader returns a function that reads what was added to the file at `path` since its last
 * call (from byte `offset` the first time); a file not there yet reads as nothing.
 */
export function logReader(path: string, offset = 0): () => string {
  return () => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return '';
    }
    try {
      const size = statSync(path).size;
      if (size <= offset) return '';
      const buf = Buffer.alloc(size - offset);
      const n = readSync(fd, buf, 0, buf.length, offset);
      offset += n;
      return buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
  };
}

/**
 * followLog writes what `read` gives to `out` while `going()` holds, and once more after: woken
 * by the service's log changing, and every 250 ms to ask `going()` again. It ends at once when
 * `gone` is aborted (the reader of the output went away: reader-gone.ts).
 */
export async function followLog(
  id: string,
  read: () => string,
  out: NodeJS.WritableStream,
  going: () => boolean,
  gone?: AbortSignal,
): Promise<void> {
  let wake: (() => void) | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(containerPath(id, 'log'), () => wake?.());
  } catch {
    // No log to watch (removed meanwhile): the 250 ms turns alone.
  }
  try {
    const onGone = () => wake?.();
    gone?.addEventListener('abort', onGone);
    try {
      while (gone?.aborted !== true) {
        const more = going();
        out.write(read());
        if (!more) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 250);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      gone?.removeEventListener('abort', onGone);
    }
  } finally {
    watcher?.close();
  }
}

function lastLines(text: string, n: number): string {
  if (n === Infinity) return text;
  const lines = text.split('\n');
  const complete = lines.at(-1) === '' ? lines.slice(0, -1) : lines;
  const kept = n === 0 ? [] : complete.slice(-n);
  return kept.map((l) => `${l}\n`).join('');
}

function tail(value: string): number {
  if (value === 'all') return Infinity;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("--tail takes a number or 'all'");
  return Number(value);
}
