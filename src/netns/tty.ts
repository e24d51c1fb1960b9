// `portpub run -t`: the command on a pseudo-terminal of its own, as `docker run -t` gives one.
// Node cannot open a pseudo-terminal without native code, so util-linux's script(1) (package
// bsdutils on Debian, essential there) allocates it: `script -qec LINE /dev/null` runs LINE with
// $SHELL -c (/bin/sh when SHELL is unset), relays the terminal to its own stdin and stdout, and
// exits as the command did (128 + N for signal N). LINE ends in `exec 'COMMAND' 'ARG'...`, so the
// command itself is script's only child. A leaf module: the namespace agent imports it.
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { shellQuote } from '../shell.js';

/** SCRIPT is the program that allocates the terminal. */
export const SCRIPT = 'script';

/** DEFAULT_PATH is execvp's search path when PATH is unset (glibc's confstr(_CS_PATH)). */
const DEFAULT_PATH = '/bin:/usr/bin';

/**
 * findExecutable resolves `name` as execvp does: a name with a slash as it is, else the first
 * executable regular file of that name in `path`. Undefined when there is none.
 */
export function findExecutable(name: string, path: string | undefined): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (path ?? DEFAULT_PATH).split(delimiter).map((dir) => join(dir === '' ? '.' : dir, name));
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not there, or not executable: the next one
    }
  }
  return undefined;
}

/**
 * ttyCommand is what to spawn to run COMMAND ARGS on a new terminal with script at `script` (`tty`
 * true: its stdio[3] must be a pipe, for signalsFor). Without a script (no -t), or for a command
 * that cannot run (not found, not executable, judged with the command's own PATH), it is the
 * command as it is, so that one fails exactly as it would without -t: 127 or 126, with portpub's
 * message.
 */
export function ttyCommand(
  script: string | undefined,
  command: string,
  args: readonly string[],
  path: string | undefined,
): { command: string; args: string[]; tty: boolean } {
  if (script === undefined || findExecutable(command, path) === undefined) {
    return { command, args: [...args], tty: false };
  }
  // The shell says its pid, which exec keeps for the command, on fd 3, closes it, and execs.
  const line = ['echo $$ >&3; exec 3>&-; exec', ...[command, ...args].map(shellQuote)].join(' ');
  return { command: script, args: ['-q', '-e', '-c', line, '/dev/null'], tty: true };
}

/**
 * TtySignals sends signals to the command under script: script would answer SIGTERM by killing
 * the command itself and exiting 0, and the command's own exit status would be lost. The pid comes
 * over script's stdio[3] (see ttyCommand), in the numbering of the command's own PID namespace,
 * which is the one of whoever spawned script; a signal sent before it came waits for it.
 */
export class TtySignals {
  private pid?: number;
  private readonly waiting: NodeJS.Signals[] = [];

  /** onPid hears the command's pid once it came. */
  constructor(pidPipe: NodeJS.ReadableStream | null | undefined, onPid?: (pid: number) => void) {
    let text = '';
    pidPipe?.setEncoding('utf8');
    pidPipe?.on('data', (chunk: string) => {
      text += chunk;
      const pid = Number(text.trim());
      if (!text.includes('\n') || !Number.isInteger(pid) || pid <= 0) return;
      if (this.pid !== undefined) return;
      this.pid = pid;
      onPid?.(pid);
      for (const signal of this.waiting.splice(0)) this.kill(signal);
    });
    pidPipe?.on('error', () => undefined);
  }

  /** kill signals the command (or, until its pid is known, remembers the signal). */
  kill(signal: NodeJS.Signals): void {
    if (this.pid === undefined) {
      this.waiting.push(signal);
      return;
    }
    try {
      process.kill(this.pid, signal);
    } catch {
      // gone already: its exit reports how it ended
    }
  }
}

/**
 * signalsFor is how to signal the command `child` runs: past script under -t (TtySignals, reading
 * the child's stdio[3]; onPid hears its pid), else the child itself. Called right after the
 * spawn.
 */
export function signalsFor(
  child: ChildProcess,
  tty: boolean,
  onPid?: (pid: number) => void,
): (signal: NodeJS.Signals) => void {
  if (!tty) return (signal) => child.kill(signal);
  const signals = new TtySignals(child.stdio[3] as NodeJS.ReadableStream | null, onPid);
  return (signal) => signals.kill(signal);
}
