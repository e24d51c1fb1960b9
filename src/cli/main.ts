// The command line's edge: the only module that reads argv, installs signal handlers, touches
// process.stdout/stderr and picks exit codes (0 ok, 1 runtime failure, 2 bad input).
import { CommanderError } from 'commander';
import { EXIT_RUNTIME, EXIT_USAGE, PortpubError } from '../errors.js';
import type { CliContext, CliHost, CliIo, StopSignal } from './context.js';
import { buildProgram } from './program.js';

export type { CliIo, CliHost } from './context.js';

/** processHost is the real process: its signals, its exit hook, process.kill. */
export function processHost(): CliHost {
  const listen = (events: readonly string[], fn: (event: string) => void) => {
    for (const e of events) process.on(e, fn);
    return () => {
      for (const e of events) process.off(e, fn);
    };
  };
  return {
    onStop: (fn) => listen(['SIGINT', 'SIGTERM'], (signal) => fn(signal as StopSignal)),
    onReload: (fn) => listen(['SIGHUP'], () => fn()),
    onExit: (fn) => listen(['exit'], () => fn()),
    kill: (pid, signal) => void process.kill(pid, signal),
  };
}

/** main runs the CLI and resolves the process exit code. argv is process.argv-shaped. */
export async function main(
  argv: readonly string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
  host: CliHost = processHost(),
): Promise<number> {
  let exitCode = 0;
  const ctx: CliContext = { io, host, setExit: (code) => (exitCode = code) };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    return exitCodeOf(err, io);
  }
  return exitCode;
}

/**
 * run is all bin/portpub.js does: main(), then exit once everything written to stdout and stderr
 * has reached the pipe, file or terminal. Exiting explicitly means nothing left behind keeps the
 * process alive; waiting first means a pipe to a slow reader still gets every byte (process.exit
 * drops what a pipe has not yet taken).
 */
export async function run(argv: readonly string[] = process.argv): Promise<never> {
  // A reader that went away (`portpub port | head -1`) is not an error of ours.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  const code = await main(argv);
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

/** flushed resolves once every write queued on stream so far has completed (or failed). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) {
      resolve();
      return;
    }
    // Writes complete in order: the callback of an empty one runs after all earlier ones.
    stream.write('', () => resolve());
  });
}

/** exitCodeOf prints a failure once and maps it to its exit code. */
function exitCodeOf(err: unknown, io: CliIo): number {
  if (err instanceof CommanderError) {
    // Help and version exit 0; every other commander error is a usage error (already printed).
    return err.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  if (err instanceof PortpubError) {
    io.stderr.write(`portpub: ${err.message}\n`);
    return err.exitCode;
  }
  io.stderr.write(`portpub: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT_RUNTIME;
}
