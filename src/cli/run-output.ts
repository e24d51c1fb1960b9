// A foreground `portpub run` keeps the command's output for `portpub logs`, as Docker keeps every
// container's: the command writes to pipes (as under `docker run` without -t), and each chunk goes
// on to portpub's own stdout or stderr and to the end of the service's log file. A detached
// service needs none of this: its whole output already goes to that file.
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { CliIo } from './context.js';

/** KeptOutput is the command's output on its way to the terminal and the log. */
export interface KeptOutput {
  /**
   * done waits until both streams have ended (the command and everything it started are gone),
   * or graceMs at the most, then lets go of the streams and closes the log file. Idempotent.
   */
  done(graceMs: number): Promise<void>;
}

/** keepOutput relays stdout and stderr to io and appends both to the file at logPath. */
export function keepOutput(
  streams: { stdout: Readable | null; stderr: Readable | null },
  io: CliIo,
  logPath: string,
): KeptOutput {
  let fd: number | undefined = openSync(logPath, 'a', 0o600);
  const sources: Readable[] = [];
  const ended: Promise<void>[] = [];
  const pairs: [Readable | null, NodeJS.WritableStream][] = [
    [streams.stdout, io.stdout],
    [streams.stderr, io.stderr],
  ];
  for (const [source, sink] of pairs) {
    if (source === null) continue;
    sources.push(source);
    ended.push(
      new Promise<void>((resolve) => {
        source.once('end', resolve);
        source.once('close', resolve);
        source.once('error', () => resolve());
      }),
    );
    source.on('data', (chunk: Buffer) => {
      if (fd !== undefined) {
        try {
          writeSync(fd, chunk);
        } catch {
          // The log is kept as well as it can be (a full disk); the terminal still gets it all.
        }
      }
      // The terminal's pace is the command's: a slow reader holds it up, as it would directly.
      if (!sink.write(chunk)) {
        source.pause();
        sink.once('drain', () => source.resume());
      }
    });
  }
  let finished: Promise<void> | undefined;
  return {
    done(graceMs: number): Promise<void> {
      finished ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all(ended),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
        ]);
        clearTimeout(timer);
        for (const source of sources) source.destroy();
        if (fd !== undefined) closeSync(fd);
        fd = undefined;
      })();
      return finished;
    },
  };
}
