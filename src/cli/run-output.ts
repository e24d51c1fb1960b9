// A `portpub run` service's output on its way out: the command writes to pipes (as under `docker
// run` without -t), and each chunk goes on to portpub's own stdout or stderr and, in the
// foreground, to the end of the service's log file, so `portpub logs` has it as Docker keeps every
// container's, with portpub's own lines (logToFile). (A detached portpub's stdout and stderr are
// that file already.) Known noise of the tools around the command (see UNSHARE_NOISE) is dropped
// on the way.
import { closeSync, openSync, writeSync } from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import type { CliIo } from './context.js';
import { readerGoneError } from './reader-gone.js';

/** KeptOutput is the command's output on its way to the terminal and the log. */
export interface KeptOutput {
  /**
   * done waits until both streams have ended (the command and everything it started are gone),
   * or graceMs at the most, then lets go of the streams and closes the log file. Idempotent.
   */
  done(graceMs: number): Promise<void>;
  /** Whether a write of the command's output found its reader gone (readerGone was called). */
  readonly readerGone: boolean;
}

/**
 * keepOutput relays stdout and stderr to io, appends both to the file at logPath when given, and
 * drops each of `noise` (whole lines) from stderr. When a write of the command's output finds its
 * reader gone (`portpub run -- yes | head -1`), `readerGone` is called once: the command should
 * get the SIGPIPE its own write to that reader would have got; it resolves once the command has
 * had it. Only the command's own writes count: portpub's log line meeting a closed stderr says
 * nothing of a command that never writes there.
 */
export function keepOutput(
  streams: { stdout: Readable | null; stderr: Readable | null },
  io: CliIo,
  logPath: string | undefined,
  noise: readonly string[] = [],
  readerGone: () => Promise<void> = () => Promise.resolve(),
): KeptOutput {
  let told: Promise<void> | undefined;
  let fd: number | undefined = logPath === undefined ? undefined : openSync(logPath, 'a', 0o600);
  const sources: Readable[] = [];
  const ended: Promise<void>[] = [];
  const pairs: [Readable | null, NodeJS.WritableStream][] = [
    [streams.stdout, io.stdout],
    [streams.stderr, io.stderr],
  ];
  for (const [source, sink] of pairs) {
    if (source === null) continue;
    sources.push(source);
    const filter = new LineFilter(sink === io.stderr ? noise : []);
    // Its reader gone, the command's write would have met SIGPIPE had it written there itself
    // (as under --network host, where it has portpub's stdout): it is sent one (readerGone), and
    // its output is still read meanwhile (for the log), so that it is not held up, or told
    // otherwise, by its pipe to portpub: a socket pair, whose write fails with ECONNRESET once
    // closed unread. Output that comes after it had the signal is from a command that ignores
    // SIGPIPE: the pipe is closed then, and its next write fails. Relayed on, it would wait for a
    // drain that never comes, and the pipeline with it.
    let gone = false;
    let signalled = false;
    const resume = () => source.resume();
    const wrote = (err?: Error | null) => {
      if (gone || err === undefined || err === null || !readerGoneError(err)) return;
      gone = true;
      sink.off('drain', resume); // it never comes: the stream is done
      told ??= readerGone();
      void told.then(() => (signalled = true));
      source.resume();
    };
    const pass = (chunk: Buffer) => {
      if (chunk.length === 0) return;
      if (fd !== undefined) {
        try {
          writeSync(fd, chunk);
        } catch {
          // The log is kept as well as it can be (a full disk); the terminal still gets it all.
        }
      }
      if (gone) {
        if (signalled) source.destroy();
        return;
      }
      // The terminal's pace is the command's: a slow reader holds it up, as it would directly.
      if (!sink.write(chunk, wrote) && !gone) {
        source.pause();
        sink.once('drain', resume);
      }
    };
    ended.push(
      new Promise<void>((resolve) => {
        const end = () => {
          pass(filter.flush());
          sink.off('drain', resume);
          resolve();
        };
        source.once('end', end);
        source.once('close', end);
        source.once('error', end);
      }),
    );
    source.on('data', (data: Buffer) => pass(filter.push(data)));
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
    get readerGone() {
      return told !== undefined;
    },
  };
}

/**
 * LineFilter drops whole lines from a stream. A tool may write such a line in several write(2)s
 * (util-linux's err() does: name, message, reason), so a line start that could still become one
 * is held back until the next chunk says, or the stream ends.
 */
class LineFilter {
  private readonly lines: Buffer[];
  private held = Buffer.alloc(0);
  /** Whether what was passed on so far ends a line (or nothing was). */
  private atLineStart = true;

  constructor(lines: readonly string[]) {
    this.lines = lines.map((l) => Buffer.from(l));
  }

  /** push takes a chunk and returns what may go on now. */
  push(data: Buffer): Buffer {
    if (this.lines.length === 0) return data;
    let buf = this.held.length > 0 ? Buffer.concat([this.held, data]) : data;
    const startsLine = this.atLineStart;
    this.held = Buffer.alloc(0);
    for (const line of this.lines) buf = without(buf, line, startsLine);
    // The last line so far, if it is the start of a dropped one, waits for more.
    const cut = buf.lastIndexOf(0x0a) + 1;
    const tail = buf.subarray(cut);
    if ((cut > 0 || startsLine) && tail.length > 0 && this.lines.some((l) => isPrefix(tail, l))) {
      this.held = Buffer.from(tail);
      buf = buf.subarray(0, cut);
    }
    if (buf.length > 0) this.atLineStart = buf[buf.length - 1] === 0x0a;
    return buf;
  }

  /** flush returns what was held back (the stream ended: it never became a dropped line). */
  flush(): Buffer {
    const out = this.held;
    this.held = Buffer.alloc(0);
    return out;
  }
}

function isPrefix(tail: Buffer, line: Buffer): boolean {
  return tail.length < line.length && line.subarray(0, tail.length).equals(tail);
}

/** without removes every whole `line` from buf: where it starts buf (if that is a line start) or follows a newline. */
function without(buf: Buffer, line: Buffer, startsLine: boolean): Buffer {
  let from = 0;
  for (;;) {
    const at = buf.indexOf(line, from);
    if (at < 0) return buf;
    if ((at === 0 && startsLine) || (at > 0 && buf[at - 1] === 0x0a)) {
      buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + line.length)]);
      from = at;
    } else {
      from = at + 1;
    }
  }
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
