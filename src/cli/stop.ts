// `portpub stop [-t SECONDS] NAME...`: as docker stop, for every detached service (`run -d`,
// `portpub -d`, `up -d`). stop sends the service's portpub SIGTERM (a run service passes it to
// the command; every one drains its ports), then SIGKILL after the timeout: a run service's agent
// sees the IPC channel close and ends the namespace; a `run -d --network host` one's process group
// is killed. Only a pid proven to be that portpub (its state file's start time and command line,
// provePortpub) is ever signalled.
import { rmSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { controlPath } from '../observe/control.js';
import {
  findContainer,
  isRunRecord,
  liveness,
  markExited,
  processGone,
  readRecord,
  removeIfAutoRemove,
  type ContainerRecord,
} from '../registry/containers.js';
import { ERR_NOT_PORTPUB, EXIT_RUNTIME, PortpubError } from '../errors.js';
import { killExecs } from '../registry/execs.js';
import {
  processStartTime,
  provePortpub,
  readStates,
  removeState,
  stateDir,
} from '../registry/state.js';
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
  const pid = provenPid(record);
  if (pid === undefined) {
    killLeftBehind(record, ctx);
    markKilled(record);
    return;
  }
  const gone = () => processGone(pid);
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return gone();
  };
  if (timeoutMs <= 0) {
    // No time (stop -t 0, rm -f): killed at once, process group and all, as at the timeout.
    killHard(record, pid, ctx);
    await waitGone(10_000);
  } else {
    ctx.host.kill(pid, 'SIGTERM');
    if (!(await waitGone(timeoutMs))) {
      if (onOwnTerminal(record)) {
        // Its command is in script's session, out of the group killHard kills: a second signal
        // has the portpub SIGKILL it (run-with-env.ts), and the group goes after that.
        ctx.host.kill(pid, 'SIGTERM');
        await waitGone(SECOND_SIGNAL_MS);
      }
      if (!gone()) killHard(record, pid, ctx);
      await waitGone(10_000);
    }
  }
  markKilled(record);
}

/**
 * provenPid is the pid of the portpub serving `record`, undefined if none runs. A reused pid must
 * never get a signal: the record's start time (liveness) and the state file's command line must
 * both be that portpub's, or this throws ERR_NOT_PORTPUB.
 */
export function provenPid(record: ContainerRecord): number | undefined {
  const pid = record.state.pid;
  if (liveness(record) !== 'running' || pid === undefined) return undefined;
  const state = readStates(stateDir()).find((s) => s.pid === pid);
  if (!state) {
    throw new PortpubError(
      ERR_NOT_PORTPUB,
      `pid ${pid} of ${record.name} is not a portpub that can be proven: it left no state file; ` +
        'nothing was signalled',
      EXIT_RUNTIME,
    );
  }
  provePortpub(state);
  return pid;
}

/** SECOND_SIGNAL_MS is how long a portpub has to end once its second signal killed the command. */
const SECOND_SIGNAL_MS = 3_000;

/** onOwnTerminal says whether a record is a `run -t --network host` one (no namespace, script). */
function onOwnTerminal(record: ContainerRecord): boolean {
  return isHostRun(record) && record.tty === true;
}

function isHostRun(record: ContainerRecord): boolean {
  return record.network === 'host' && isRunRecord(record);
}

/**
 * killHard SIGKILLs the portpub. A `run -d --network host` command has no namespace to end with
 * it, so its whole process group goes: the background portpub leads one of its own (detached) and
 * the command is in it, as a container's processes all end with docker kill; so does what exec
 * started there (registry/execs.ts).
 */
function killHard(record: ContainerRecord, pid: number, ctx: CliContext): void {
  killCommand(record, ctx);
  let group = false;
  if (isHostRun(record)) {
    try {
      ctx.host.kill(-pid, 'SIGKILL');
      group = true;
    } catch {
      // Not a group leader after all: the portpub alone, below.
    }
  }
  if (!group) ctx.host.kill(pid, 'SIGKILL');
  // After the portpub: an exec recorded from now on finds its service gone and ends itself.
  if (isHostRun(record)) killExecs(record.id, stateDir(), (p, signal) => ctx.host.kill(p, signal));
}

/**
 * killLeftBehind ends what a `run -d --network host` portpub that died without a word (SIGKILLed
 * by hand, by the OOM killer) left running: its command, in the dead portpub's process group (or,
 * with -t, by its recorded pid), and what exec started there. The group is the dead portpub's
 * only while no process has its pid: Linux does not give out a number that still names a process
 * group.
 */
function killLeftBehind(record: ContainerRecord, ctx: CliContext): void {
  const pid = record.state.pid;
  if (!isHostRun(record) || record.state.status !== 'running' || pid === undefined) return;
  killCommand(record, ctx);
  killExecs(record.id, stateDir(), (p, signal) => ctx.host.kill(p, signal));
  if (!processGone(pid)) return; // the pid is another process's now: its group is not ours
  try {
    ctx.host.kill(-pid, 'SIGKILL');
  } catch {
    // no such group: nothing was left
  }
}

/**
 * killCommand SIGKILLs a `run -t --network host` command by the pid its portpub recorded: script's
 * session keeps it out of the group killHard kills, and one that ignores SIGHUP (the terminal's
 * end) would outlive its portpub. Only while the start time proves the pid is still that command.
 */
function killCommand(record: ContainerRecord, ctx: CliContext): void {
  const { commandPid, commandStart } = record.state;
  if (!onOwnTerminal(record) || commandPid === undefined || commandStart === undefined) return;
  if (processStartTime(commandPid) !== commandStart) return;
  try {
    ctx.host.kill(commandPid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}

/** markKilled records a service whose portpub is gone without recording its end: 137, SIGKILL. */
function markKilled(record: ContainerRecord): void {
  const now = readRecord(record.id);
  if (!now || now.state.status !== 'running') return;
  const pid = now.state.pid;
  if (pid !== undefined) {
    // By now the pid may be another portpub's (reused): its state file is that one's, kept.
    const holder = readStates(stateDir()).find((s) => s.pid === pid);
    const same = holder?.procStart === undefined || holder.procStart === now.state.procStart;
    if (same) removeState(stateDir(), pid);
    // A portpub killed outright left its control socket; the pid's, only if nothing has it now.
    if (processGone(pid)) rmSync(controlPath(stateDir(), pid), { force: true });
  }
  removeIfAutoRemove(markExited(record.id, 137));
}

/** seconds parses -t/--time (whole seconds), for stop and restart. */
export function seconds(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('--time takes whole seconds');
  return Number(value);
}
