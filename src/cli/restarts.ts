// A --restart policy around a service's runs, as Docker's restart manager: when the command ends
// (not by a stop) and the policy says so, the same portpub waits 100 ms, 200 ms, ... (at most a
// minute) and runs it again. While it waits its record stays `running` with `restarting` set, and
// its state file stays (without ports), so that `stop` can prove and signal it; a stop then ends
// the wait. From the first restart on, a stop that comes while no run listens for one (a run's
// teardown, the next one's setup) is noted here and honoured by the run or the loop.
import { Restarts, type RestartPolicy } from '../docker/restart.js';
import { PortpubError } from '../errors.js';
import { markExited, removeIfAutoRemove, updateState } from '../registry/containers.js';
import { removeState, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

/**
 * RunOnce runs the service once and resolves its exit code. At the end of a run no stop asked
 * for, it calls `again(code)`: true means a restart follows, so the run leaves its record to the
 * wait (its state file too) instead of recording the end. `stopped()` says whether a stop came
 * while no run listened for one (only from the first restart on).
 */
export type RunOnce = (again: (code: number) => boolean, stopped: () => boolean) => Promise<number>;

/**
 * superviseRestarts runs `runOnce` until the policy keeps the service down or a stop ends it,
 * and resolves the last run's exit code. `id` is the service's record (none for a foreground
 * `--network host` run, which has none).
 */
export async function superviseRestarts(
  policy: RestartPolicy | undefined,
  ctx: CliContext,
  runOnce: RunOnce,
  id?: string,
  dir: string = stateDir(),
): Promise<number> {
  const restarts = new Restarts(policy);
  let stopped = false;
  let wake: (() => void) | undefined;
  let offStop: (() => void) | undefined;
  const end = (code?: number) => {
    if (id === undefined) return;
    removeState(dir, process.pid);
    removeIfAutoRemove(markExited(id, code, dir), dir);
  };
  try {
    for (;;) {
      const started = Date.now();
      let delay: number | undefined;
      const again = (exitCode: number) => {
        delay = restarts.next(exitCode, Date.now() - started);
        if (delay === undefined) return false;
        offStop ??= ctx.host.onStop(() => {
          stopped = true;
          wake?.();
        });
        if (id !== undefined) {
          updateState(
            id,
            {
              status: 'running',
              restarting: true,
              restartCount: restarts.count,
              exitCode,
              finishedAt: new Date().toISOString(),
              bindings: [],
            },
            dir,
          );
        }
        return true;
      };
      let code: number;
      try {
        code = await runOnce(again, () => stopped);
      } catch (err) {
        // A run after a restart that could not start: the service is down, not waiting.
        if (restarts.count > 0) end(err instanceof PortpubError ? err.exitCode : 1);
        throw err;
      }
      if (delay === undefined) return code;
      if (!stopped) {
        const offExit = ctx.host.onExit(() => removeState(dir, process.pid));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        offExit();
      }
      if (stopped) {
        end();
        return code;
      }
    }
  } finally {
    offStop?.();
  }
}
