// `portpub top NAME`: the live TCP connections and UDP flows of one service (or run, or pid):
// client, host address reached, target-side address, age, idle time, bytes each way, state.
import type { Command } from 'commander';
import { Collector } from '../observe/collect.js';
import { stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';
import { addWatchOptions, watch, type WatchOptions } from './stats.js';

export function registerTop(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('top')
    .description(
      "live connections and UDP flows of a running service (NAME: a service, a run's --name or a pid)",
    )
    .argument('<name>', 'service, run name or pid');
  addWatchOptions(cmd).action(async (name: string, opts: WatchOptions) => {
    await watch(ctx, new Collector(stateDir(), [name]), opts, 'top');
  });
}
