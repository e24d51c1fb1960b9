// What a command may touch of the outside world. main.ts builds the real one from `process`;
// tests build their own, so commands run in-process without argv, signals or exit codes.

/** CliIo is where the CLI writes; tests pass their own. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** StopSignal ends a serving command (a first one drains, a second one cuts). */
export type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * CliHost is the process seen from a command: the signals it may listen to, the exit hook, and
 * the signals it may send. Only main.ts creates one from `process`; each `on...` returns the
 * function that removes the listener.
 */
export interface CliHost {
  onStop(listener: (signal: StopSignal) => void): () => void;
  onReload(listener: () => void): () => void;
  /** onExit runs synchronously as the process exits (last chance to remove a state file). */
  onExit(listener: () => void): () => void;
  /** kill sends a signal to another process, as process.kill does. */
  kill(pid: number, signal: NodeJS.Signals | 0): void;
}

/** CliContext is what every command gets at registration. */
export interface CliContext {
  io: CliIo;
  host: CliHost;
  /** setExit records the exit code main() returns once the command's action has finished. */
  setExit(code: number): void;
}
