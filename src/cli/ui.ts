// `portpub ui [NAME...]`: the live page of --ui for portpubs already running, read from their
// control sockets; serves until SIGINT/SIGTERM.
import type { Command } from 'commander';
import { Collector } from '../observe/collect.js';
import { endpoint } from '../observe/start.js';
import { uiHandler } from '../observe/ui.js';
import { stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';
import { addrArg } from './options.js';

export function registerUi(program: Command, ctx: CliContext): void {
  program
    .command('ui')
    .description('serve the live page (as --ui does) for running portpubs: every one, or NAMEs')
    .argument('[names...]', 'services, run names or pids; default: every running portpub')
    .option(
      '--listen <addr>',
      'HOST:PORT to serve the page on',
      addrArg('--listen'),
      '127.0.0.1:8999',
    )
    .action(async (names: string[], opts: { listen: string }) => {
      const collector = new Collector(stateDir(), names);
      const ep = await endpoint(
        '--listen',
        opts.listen,
        uiHandler({ snapshots: () => collector.collect(true) }),
      );
      // The stop listener goes in before the address is printed: a caller may signal at once.
      const stopped = new Promise<void>((resolve) => {
        const off = ctx.host.onStop(() => {
          off();
          resolve();
        });
      });
      ctx.io.stdout.write(`${ep.url}/\n`);
      await stopped;
      collector.close();
      await ep.close();
    });
}
