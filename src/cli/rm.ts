// `portpub rm [-f] NAME...`: as docker rm, a stopped service's record and log are removed.
import type { Command } from 'commander';
import { findContainer, liveness, readRecord, removeContainer } from '../registry/containers.js';
import type { CliContext } from './context.js';
import { stopContainer } from './stop.js';

/** registerRm adds `portpub rm`. */
export function registerRm(program: Command, ctx: CliContext): void {
  program
    .command('rm')
    .description('remove stopped services (their record and log)')
    .argument('<names...>', 'service names or ids')
    .option('-f, --force', 'kill a running service first', false)
    .action(async (names: string[], opts: { force: boolean }) => {
      for (const name of names) {
        let record = findContainer(name);
        // -f kills a running service first. One whose portpub died without a word (SIGKILLed)
        // may have left its command running on the host's network: stop ends it (stop.ts).
        if (opts.force || liveness(record) !== 'running') {
          await stopContainer(record, 0, ctx);
          record = readRecord(record.id) ?? record;
        }
        // --rm services remove themselves once stopped.
        if (readRecord(record.id)) removeContainer(record);
        ctx.io.stdout.write(`${name}\n`);
      }
    });
}
