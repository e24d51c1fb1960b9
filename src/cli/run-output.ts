// A `portpub run` service's output on its way out: the command writes to pipes (as under `docker
// run` without -t), and each chunk goes on to portpub's own stdout or stderr and, in the
// foreground, to the end of the service's log file, so `portpub logs` has it as Docker keeps every
// container's, with portpub's own lines (logToFile). (A detached portpub's stdout and stderr are
// that file already.) Known noise of the tools around the command (see UNSHARE_NOISE) is dropped
// on the way.
import { closeSync, openSync, writeSync } from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import type { CliIo } from './context.js';

/** KeptOutput is the command's output on its way to the terminal and the log. */
export interface KeptOutput {
  /**
   * done waits until both streams have ended (the command and everything it started are gone),
   * or graceMs at the most, then lets go of the streams and closes the log file. Idempotent.
   */
  done(graceMs: number): Promise<void>;
}

/**
 * keepOutput relays stdout and stderr to io, appends both to the file at logPath when given, and
 * drops each of `noise` (whole lines) from stderr.
 */
export function keepOutput(
  streams: { stdout: Readable | null; stderr: Readable | null },
  io: CliIo,
  logPath: string | undefined,
  noise: readonly string[] = [],
): KeptOutput {
  let fd: number | undefined = logPath === undefined ? undefined : openSync(logPath, 'a', 0o600);
  const drop = noise.map((line) => Buffer.from(line));
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
    const quiet = sink === io.stderr ? drop : [];
    source.on('data', (data: Buffer) => {
      const chunk = quiet.reduce(without, data);
      if (chunk.length === 0) return;
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

/**
 * without removes one line from a chunk. A tool writes such a line with one write(2), so it
 * arrives whole in one chunk; only a line that starts the chunk or follows a newline counts.
 */
function without(chunk: Buffer, line: Buffer): Buffer {
  const at = chunk.indexOf(line);
  if (at < 0 || (at > 0 && chunk[at - 1] !== 0x0a)) return chunk;
  return Buffer.concat([chunk.subarray(0, at), chunk.subarray(at + line.length)]);
}

/** LoggedIo is io whose stderr also goes to a log file, until close(). */
export interface LoggedIo {
  io: CliIo;
  close(): void;
}

/**
 * logToFile gives portpub's own lines (its logger writes to io.stderr) to the service's log file
 * too, as a detached service's are, so `portpub logs` of a foreground one has them beside the
 * command's output. The terminal sees the same lines as before (a TTY still gets them pretty).
 */
export function logToFile(io: CliIo, logPath: string): LoggedIo {
  let fd: number | undefined = openSync(logPath, 'a', 0o600);
  const stderr = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (fd !== undefined) {
          try {
            writeSync(fd, chunk);
          } catch {
            // As for the command's output: the log is kept as well as it can be.
          }
        }
        io.stderr.write(chunk);
        done();
      },
    }),
    { isTTY: io.stderr.isTTY },
  );
  return {
    io: { stdout: io.stdout, stderr },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
