// `portpub stop [-t SECONDS] NAME...`: as docker stop.
// stop sends the service's portpub SIGTERM (it passes it to the command and drains), then
// SIGKILL after the timeout: its agent sees the IPC channel close and ends the namespace.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import {
  findContainer,
  liveness,
  processGone,
  readRecord,
  removeContainer,
  updateState,
  type ContainerRecord,
} from '../registry/containers.js';
import { removeState, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

/** registerStop adds `portpub stop`. */
export function registerStop(program: Command, ctx: CliContext): void {
  program
    .command('stop')
    .description('stop running services: SIGTERM, then SIGKILL after the timeout')
    .argument('<names...>', 'service names or ids')
    .option('-t, --time <seconds>', 'seconds to wait before killing it', seconds, 10)
    .action(async (names: string[], opts: { time: number }) => {
      for (const name of names) {
        await stopContainer(findContainer(name), opts.time * 1000, ctx);
        ctx.io.stdout.write(`${name}\n`);
      }
    });
}

/**
 * stopContainer signals the portpub serving `record` and waits for it to end: SIGTERM, then
 * SIGKILL once `timeoutMs` has passed. A portpub that died without a word is recorded as killed.
 */
export async function stopContainer(
  record: ContainerRecord,
  timeoutMs: number,
  ctx: CliContext,
): Promise<void> {
  const pid = record.state.pid;
  if (liveness(record) !== 'running' || pid === undefined) {
    markKilled(record);
    return;
  }
  const gone = () => processGone(pid);
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return gone();
  };
  ctx.host.kill(pid, timeoutMs > 0 ? 'SIGTERM' : 'SIGKILL');
  if (!(await waitGone(timeoutMs))) {
    ctx.host.kill(pid, 'SIGKILL');
    await waitGone(10_000);
  }
  markKilled(record);
}

/** markKilled records a service whose portpub is gone without recording its end: 137, SIGKILL. */
function markKilled(record: ContainerRecord): void {
  const now = readRecord(record.id);
  if (!now || now.state.status !== 'running') return;
  if (now.state.pid !== undefined) removeState(stateDir(), now.state.pid);
  const done = updateState(record.id, {
    status: 'exited',
    exitCode: 137,
    finishedAt: new Date().toISOString(),
    bindings: [],
  });
  if (done?.autoRemove) removeContainer(done);
}

function seconds(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('--time takes whole seconds');
  return Number(value);
}
