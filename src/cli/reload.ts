// `portpub reload`: make a running `portpub up` re-read its config file (sends it SIGHUP).
import type { Command } from 'commander';
import { findReloadTarget } from '../registry/queries.js';
import { provePortpub, readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';
import { countArg } from './options.js';

/** registerReload adds `portpub reload`. */
export function registerReload(program: Command, ctx: CliContext): void {
  program
    .command('reload')
    .description('make a running portpub up re-read its config file (sends it SIGHUP)')
    .option('--pid <pid>', 'which portpub up, when several run', countArg('--pid', 1))
    .action((opts: { pid?: number }) => {
      const dir = stateDir();
      const target = findReloadTarget(readStates(dir), opts.pid, dir);
      provePortpub(target); // a reused pid must never get the signal
      ctx.host.kill(target.pid, 'SIGHUP');
      ctx.io.stdout.write(
        `sent SIGHUP to portpub pid ${target.pid} (${target.configFile ?? ''})\n`,
      );
    });
}
