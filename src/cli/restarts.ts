// A --restart policy around a service's runs, as Docker's restart manager: when the command ends
// (not by a stop) and the policy says so, the same portpub waits 100 ms, 200 ms, ... (at most a
// minute) and runs it again. While it waits its record stays `running` with `restarting` set, and
// its state file stays, so that `stop` can prove and signal it; a stop then ends the wait.
import { Restarts, type RestartPolicy } from '../docker/restart.js';
import { removeIfAutoRemove, updateState } from '../registry/containers.js';
import { removeState, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

/**
 * RunOnce runs the service once and resolves its exit code. At the end of a run no stop asked
 * for, it calls `again(code)`: true means a restart follows, so the run leaves its record to
 * the wait (its state file too) instead of recording the end.
 */
export type RunOnce = (again: (code: number) => boolean) => Promise<number>;

/**
 * superviseRestarts runs `runOnce` until the policy keeps the service down or a stop ends a wait,
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
  for (;;) {
    const started = Date.now();
    let delay: number | undefined;
    const code = await runOnce((exitCode) => {
      delay = restarts.next(exitCode, Date.now() - started);
      if (delay !== undefined && id !== undefined) {
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
      return delay !== undefined;
    });
    if (delay === undefined) return code;
    if (await stoppedWhileWaiting(delay, ctx, dir)) {
      if (id !== undefined) {
        removeState(dir, process.pid);
        removeIfAutoRemove(updateState(id, { status: 'exited', restarting: undefined }, dir), dir);
      }
      return code;
    }
  }
}

/** stoppedWhileWaiting waits `ms`, or less if a stop signal comes (then resolves true). */
function stoppedWhileWaiting(ms: number, ctx: CliContext, dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const offExit = ctx.host.onExit(() => removeState(dir, process.pid));
    const done = (stopped: boolean) => {
      clearTimeout(timer);
      offStop();
      offExit();
      resolve(stopped);
    };
    const timer = setTimeout(() => done(false), ms);
    const offStop = ctx.host.onStop(() => done(true));
  });
}
