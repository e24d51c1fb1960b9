// Running a command on the host with link variables (`portpub run --network host`): the child's
// exit code as a shell gives it, and the signals portpub receives relayed to it while it runs.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { ERR_TTY, PortpubError } from '../errors.js';
import { descendantSignals } from '../netns/enter.js';
import { findExecutable, SCRIPT, signalsFor, ttyCommand } from '../netns/tty.js';

/** RunIo redirects a child's output (tests); absent streams are inherited. */
export interface RunIo {
  stdout?: NodeJS.WritableStream;
  /** Also receives portpub's own `command not found` message (process.stderr when absent). */
  stderr?: NodeJS.WritableStream;
  /**
   * Whether a terminal's Ctrl-C reaches the child by itself (see runWithEnv); defaults to
   * inTerminalForeground().
   */
  interactive?: boolean;
  /** Called with the child's pid once it runs (not for a command that cannot start). */
  onSpawn?: (pid: number) => void;
  /**
   * On its own terminal (-t, not past nsenter): called with the command's pid under script once
   * it is known. script gives the command a session of its own, out of portpub's process group.
   */
  onCommandPid?: (pid: number) => void;
  /** run -t: script(1)'s path, to run the command on a terminal of its own (netns/tty.ts). */
  tty?: string;
  /** Whether the child reads portpub's stdin (default); else /dev/null (-t without -i). */
  stdin?: boolean;
  /** run -w: the child's working directory (default portpub's). */
  cwd?: string;
  /**
   * exec: the command runs through `program ARGS --` (nsenter, netns/enter.ts), with `env` alone
   * as its environment, in a session of its own unless it reads its own terminal (-it); every
   * signal is relayed to it past nsenter (and script), as the terminal no longer reaches it.
   */
  within?: { program: string; args: string[]; setsid: string };
}

/**
 * requireTty checks what `run -t` needs before anything starts, and returns script(1)'s path. With
 * -i in the foreground, stdin must be a terminal, as docker run checks it (`the input device is not
 * a TTY`): the command's terminal relays it.
 */
export function requireTty(interactiveForeground: boolean): string {
  if (interactiveForeground && process.stdin.isTTY !== true) {
    throw new PortpubError(
      ERR_TTY,
      'the input device is not a TTY (-t with -i reads a terminal on stdin; leave out -t to pipe input)',
    );
  }
  const script = findExecutable(SCRIPT, process.env.PATH);
  if (script === undefined) {
    throw new PortpubError(
      ERR_TTY,
      `-t: ${SCRIPT} was not found on PATH; it allocates the command's terminal (install util-linux, Debian's bsdutils)`,
    );
  }
  return script;
}

/**
 * inTerminalForeground says whether this process's group is its terminal's foreground group, so a
 * Ctrl-C there reaches the child (in the same group) by itself: /proc/self/stat's tpgid is its
 * pgrp. Whatever stdin is (`portpub run ... </dev/null` on a terminal still gets the Ctrl-C).
 * Without /proc: stdin is a terminal.
 */
export function inTerminalForeground(): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // After `pid (comm) `: state ppid pgrp session tty_nr tpgid ...
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[4]) !== 0 && f[5] === f[2];
  } catch {
    return process.stdin.isTTY === true;
  }
}

/** FORWARDED are the signals runWithEnv relays to the child while it runs. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * runWithEnv runs COMMAND with process.env plus `env`, stdin inherited, and resolves its exit code:
 * the child's own, 128 + the signal number if a signal killed it, 127 (with a message) if the
 * command is not found and 126 if it cannot be executed, as a shell would.
 *
 * While it runs, SIGINT, SIGTERM and SIGHUP sent to portpub are relayed to the child and do not
 * stop portpub, which exits when the child does. The child shares portpub's process group (it must,
 * to keep reading the terminal), so a terminal's Ctrl-C reaches it directly; when `interactive` (in
 * the terminal's foreground group), the first SIGINT is therefore not relayed (a second one is), or a program that treats a second
 * Ctrl-C as "quit now" would skip its graceful shutdown. This is `uv run`'s rule (astral-sh/uv#11009).
 * On a terminal of its own (`io.tty`), or past nsenter (`io.within`), the second signal is SIGKILL.
 */
export function runWithEnv(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  io: RunIo = {},
): Promise<number> {
  const within = io.within;
  const childEnv = within ? { ...env } : { ...process.env, ...env };
  const run = ttyCommand(io.tty, command, args, childEnv.PATH);
  const onTty = run.tty;
  const foreground = within ? false : (io.interactive ?? inTerminalForeground());
  // On its own terminal the command hears no Ctrl-C of portpub's: script puts a terminal it reads
  // in raw mode (Ctrl-C is a byte for the command's terminal), and one it does not read (no -i)
  // is kept from it in a session of its own. So every SIGINT portpub gets is relayed. Only there:
  // a background portpub's stop kills its process group, which must hold script too.
  const interactive = onTty ? false : foreground;
  const ownSession = within
    ? !(onTty && io.stdin !== false)
    : onTty && io.stdin === false && foreground;
  const program = within ? within.program : run.command;
  // Past nsenter, a command not on a terminal of its own (script gives it a session) leads a
  // process group of its own (setsid), which the signals go to.
  const programArgs = within
    ? [...within.args, '--', ...(onTty ? [] : [within.setsid]), run.command, ...run.args]
    : run.args;
  return new Promise((resolve, reject) => {
    const child = spawn(program, programArgs, {
      env: childEnv,
      ...(io.cwd !== undefined ? { cwd: io.cwd } : {}),
      detached: ownSession,
      stdio: [
        // On a terminal without -i: a pipe nobody writes, for the agent's reason (agent.ts).
        io.stdin === false ? (onTty ? 'pipe' : 'ignore') : 'inherit',
        io.stdout ? 'pipe' : 'inherit',
        io.stderr ? 'pipe' : 'inherit',
        ...(onTty ? ['pipe' as const] : []),
      ],
    });
    // Past nsenter, script's fd 3 says the command's pid in its PID namespace: of no use here.
    if (within) (child.stdio[3] as NodeJS.ReadableStream | null)?.resume();
    const killCommand = !within
      ? signalsFor(child, onTty, io.onCommandPid)
      : child.pid === undefined
        ? () => undefined
        : descendantSignals(
            child.pid,
            onTty ? 2 : 1,
            () => child.exitCode === null && child.signalCode === null,
          );
    if (io.stdout) child.stdout?.pipe(io.stdout, { end: false });
    if (io.stderr) child.stderr?.pipe(io.stderr, { end: false });

    let interrupts = 0;
    let signals = 0;
    const relay = (signal: NodeJS.Signals) => {
      if (signal === 'SIGINT' && interactive && ++interrupts === 1) return;
      // On its own terminal (or past nsenter) a second signal kills the command, as a second one
      // ends a service in a network of its own: a shell there ignores SIGINT and SIGTERM.
      killCommand((onTty || within) && ++signals > 1 ? 'SIGKILL' : signal);
    };
    for (const signal of FORWARDED) process.on(signal, relay);

    let spawned = false;
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      for (const signal of FORWARDED) process.off(signal, relay);
      fn();
    };
    child.once('spawn', () => {
      spawned = true;
      try {
        io.onSpawn?.(child.pid!);
      } catch (err) {
        // What the caller does once the command runs failed (a state file it could not write):
        // the command must not run on unrecorded.
        child.kill('SIGKILL');
        settle(() => reject(err instanceof Error ? err : new Error(String(err))));
      }
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      // Once running, an error is a failed kill(); 'close' still reports how the child ended.
      if (spawned) return;
      const code = err.code === 'ENOENT' ? 127 : err.code === 'EACCES' ? 126 : undefined;
      if (code === undefined) {
        settle(() => reject(err));
        return;
      }
      const why = code === 127 ? 'command not found' : 'permission denied';
      (io.stderr ?? process.stderr).write(`portpub: ${command}: ${why}\n`);
      settle(() => resolve(code));
    });
    // 'close' rather than 'exit': piped output has been delivered by then.
    child.on('close', (code, signal) => {
      settle(() => resolve(signal ? 128 + (osConstants.signals[signal] ?? 0) : (code ?? 1)));
    });
  });
}
