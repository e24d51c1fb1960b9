// `portpub reload`: make a running `portpub up` re-read its config file (sends it SIGHUP), then
// wait for its state file to say how the reload went and report that (added/removed/kept, or
// the error that kept the running configuration).
import type { Command } from 'commander';
import {
  ERR_NO_RELOAD_TARGET,
  ERR_RELOAD_FAILED,
  ERR_RELOAD_TIMEOUT,
  EXIT_RUNTIME,
  PortpubError,
} from '../errors.js';
import { formatDuration } from '../duration.js';
import { findReloadTarget } from '../registry/queries.js';
import {
  provePortpub,
  readStates,
  stateDir,
  type ReloadReport,
  type State,
} from '../registry/state.js';
import type { CliContext } from './context.js';
import { countArg, durationOption } from './options.js';

/** POLL_MS is how often the state file is re-read while waiting for the reload's outcome. */
const POLL_MS = 50;

/** registerReload adds `portpub reload`. */
export function registerReload(program: Command, ctx: CliContext): void {
  program
    .command('reload')
    .description('make a running portpub up re-read its config file (sends it SIGHUP)')
    .option('--pid <pid>', 'which portpub up, when several run', countArg('--pid', 1))
    .addOption(
      durationOption('--timeout <duration>', 'how long to wait for the reload to finish', 30_000),
    )
    .action(async (opts: { pid?: number; timeout: number }) => {
      const dir = stateDir();
      const states = readStates(dir);
      if (opts.pid !== undefined) refuseStranger(opts.pid, states, dir, ctx);
      const target = findReloadTarget(states, opts.pid, dir);
      provePortpub(target); // a reused pid must never get the signal
      const before = target.lastReload?.seq ?? 0;
      ctx.host.kill(target.pid, 'SIGHUP');
      ctx.io.stdout.write(
        `sent SIGHUP to portpub pid ${target.pid} (${target.configFile ?? ''})\n`,
      );
      const report = await waitForReport(target.pid, before, dir, opts.timeout);
      ctx.io.stdout.write(`reloaded: ${describe(report)}\n`);
    });
}

/** refuseStranger: a live pid without a portpub state file is some other program. */
function refuseStranger(pid: number, states: readonly State[], dir: string, ctx: CliContext): void {
  if (states.some((s) => s.pid === pid) || !alive(pid, ctx)) return;
  throw new PortpubError(
    ERR_NO_RELOAD_TARGET,
    `pid ${pid} is not a portpub (it runs, but left no portpub state file in ${dir}); nothing was signalled`,
    EXIT_RUNTIME,
  );
}

function alive(pid: number, ctx: CliContext): boolean {
  try {
    ctx.host.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** waitForReport polls the state of `pid` until its reload count passes `before`. */
async function waitForReport(
  pid: number,
  before: number,
  dir: string,
  timeoutMs: number,
): Promise<ReloadReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = readStates(dir).find((s) => s.pid === pid);
    if (!state) {
      throw new PortpubError(
        ERR_RELOAD_FAILED,
        `portpub pid ${pid} exited while reloading`,
        EXIT_RUNTIME,
      );
    }
    const report = state.lastReload;
    if (report && report.seq > before) {
      if (report.ok) return report;
      throw new PortpubError(
        ERR_RELOAD_FAILED,
        `reload of portpub pid ${pid} failed, the running configuration is kept: ${report.error ?? 'unknown error'}`,
        EXIT_RUNTIME,
      );
    }
    if (Date.now() >= deadline) {
      throw new PortpubError(
        ERR_RELOAD_TIMEOUT,
        `portpub pid ${pid} got SIGHUP but reported no outcome within ${formatDuration(timeoutMs)} ` +
          `(see its log; --timeout waits longer)`,
        EXIT_RUNTIME,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function describe(r: ReloadReport): string {
  return `${r.added ?? 0} added, ${r.removed ?? 0} removed, ${r.kept ?? 0} kept`;
}
