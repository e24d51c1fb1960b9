// The commands that follow (`logs -f`, `stats`, `top`, `start -a`) end when whoever reads their
// stdout goes away: `portpub logs -f web | grep -m1 ready` returns once grep has its line and the
// next line finds the pipe closed. Docker's CLI ends there too, killed by SIGPIPE at that write;
// Node ignores SIGPIPE (main.ts swallows the write's EPIPE, so that a one-shot command still
// finishes), so these commands watch for it and end with the status a SIGPIPE gives.

/** EXIT_PIPE is 128 + SIGPIPE (13): the status of a Docker CLI whose reader went away. */
export const EXIT_PIPE = 141;

/** ReaderWatch says whether a stream's reader went away; off() stops watching. */
export interface ReaderWatch {
  /** Aborted once a write to the stream found its reader gone. */
  readonly signal: AbortSignal;
  off(): void;
}

/**
 * readerGoneError says whether a write failed for want of a reader. A pipe's reader gone is EPIPE;
 * a socket's (a Node parent's stdio is a socket pair) is EPIPE, or ECONNRESET when it closed with
 * what was written last still unread. A stream that an earlier write's EPIPE destroyed fails each
 * later write with ERR_STREAM_DESTROYED: its reader is as gone.
 */
export function readerGoneError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_STREAM_DESTROYED';
}

/** watchReader watches `out` for a write that finds its reader gone (EPIPE, ECONNRESET). */
export function watchReader(out: NodeJS.WritableStream): ReaderWatch {
  const gone = new AbortController();
  const listener = (err: NodeJS.ErrnoException): void => {
    if (readerGoneError(err)) gone.abort();
  };
  out.on('error', listener);
  return { signal: gone.signal, off: () => out.off('error', listener) };
}
