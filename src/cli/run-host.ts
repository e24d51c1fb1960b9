// The background half of `portpub run -d --network host`: the command on the host's network with
// its link variables, as the foreground runs it, but recorded as a service (`ps`, `logs`, `stop`,
// `rm`, `--rm`). Its output is this portpub's, so the service's log file.
import type { ContainerRecord } from '../registry/containers.js';
import {
  markExited,
  markRunning,
  removeIfAutoRemove,
  updateState,
} from '../registry/containers.js';
import { linkedEnv } from '../registry/queries.js';
import {
  processStartTime,
  readStates,
  removeState,
  stateDir,
  writeState,
} from '../registry/state.js';
import { applyUserVariables } from '../netns/env.js';
import { killExecs } from '../registry/execs.js';
import type { CliContext } from './context.js';
import { requireTty, runWithEnv } from './run-with-env.js';

/** HostRunOptions are the --network host options the record keeps (in `serve`). */
export interface HostRunOptions {
  parent: string;
  published: boolean;
}

/**
 * hostRunEnv is the environment of a `--network host` command: the links' variables (as
 * `portpub env` gives them), then the user's -e/--env-file over them, where a bare KEY (not set
 * in portpub's own environment) unsets a link's variable, as Docker's daemon and serviceEnv do.
 * Throws for a bad link.
 */
export function hostRunEnv(
  links: readonly string[],
  user: readonly string[],
  opts: HostRunOptions,
  dir: string = stateDir(),
): Record<string, string> {
  const env = linkedEnv(readStates(dir), links, {
    parent: opts.parent,
    published: opts.published,
    dir,
  });
  return Object.fromEntries(applyUserVariables(new Map(Object.entries(env)), user));
}

/**
 * runHostRecord runs the record's command on the host until it ends; resolves its exit code. The
 * starter hears 'running' once the command runs, or 'failed' when it cannot start (127, 126).
 */
export async function runHostRecord(
  record: ContainerRecord,
  ctx: CliContext,
  again?: (code: number) => boolean,
  stopped?: () => boolean,
): Promise<number> {
  const dir = stateDir();
  const opts = record.serve as unknown as HostRunOptions;
  let offExit: (() => void) | undefined;
  // runWithEnv relays the stop to the command; this only notes that the end was asked for.
  let stopRequested = false;
  const offStop = ctx.host.onStop(() => {
    stopRequested = true;
  });
  const code = await (async () => {
    try {
      const env = hostRunEnv(record.links, record.userEnv, opts, dir);
      // Output inherited: the command writes straight to the log file, as portpub does.
      const tty = record.tty === true ? { tty: requireTty(false), stdin: false } : {};
      const cwd = record.workdir === undefined ? {} : { cwd: record.workdir };
      let command: number | undefined;
      let running = false;
      const recordCommand = () => {
        if (!running || command === undefined) return;
        const start = processStartTime(command);
        if (start !== undefined) {
          updateState(record.id, { commandPid: command, commandStart: start }, dir);
        }
      };
      return await runWithEnv(record.command, record.args, env, {
        interactive: false,
        ...tty,
        ...cwd,
        onCommandPid: (pid) => {
          command = pid;
          recordCommand();
        },
        onSpawn: () => {
          // A state file, so that `stop` can prove this pid is this portpub before signalling.
          const startedAt = new Date().toISOString();
          writeState(dir, { pid: process.pid, startedAt, name: record.name, bindings: [] });
          offExit = ctx.host.onExit(() => removeState(dir, process.pid));
          markRunning(record.id, [], dir, startedAt);
          updateState(
            record.id,
            { env: Object.entries(env), cwd: cwd.cwd ?? process.cwd(), restarting: undefined },
            dir,
          );
          running = true;
          recordCommand();
          tell({ t: 'running' });
          // A stop that came while this run was being set up: runWithEnv relays it now.
          if (stopped?.() === true) process.kill(process.pid, 'SIGTERM');
        },
      });
    } catch (err) {
      tell({ t: 'failed', code: 1, message: (err as Error).message });
      throw err;
    }
  })();
  offStop();
  // Never started (127, 126): the starter prints the `portpub:` line runWithEnv logged.
  if (offExit === undefined) tell({ t: 'failed', code });
  offExit?.();
  // The end is recorded first (a restart's wait, or exited), then what exec started in it ends
  // with it, as every process of a container ends with it: an exec recorded after the record
  // says so ends itself (exec.ts).
  const restart = offExit !== undefined && !stopRequested && again?.(code) === true;
  let done: ContainerRecord | undefined;
  if (!restart) {
    removeState(dir, process.pid);
    done = markExited(record.id, code, dir);
  }
  killExecs(record.id, dir);
  removeIfAutoRemove(done, dir);
  return code;
}

/** tell sends the starter (`run -d`) how the start went, over IPC when there is one. */
function tell(message: { t: 'running' } | { t: 'failed'; code: number; message?: string }): void {
  if (!process.send || !process.connected) return;
  process.send(message, undefined, {}, () => {
    if (message.t === 'running' && process.connected) process.disconnect();
  });
}
