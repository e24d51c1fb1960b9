// `portpub run CMD [ARGS...]`: run a program with the --link variables of running services set.
// (Moved from main.ts unchanged; the `run` helper owns its rewrite.)
import type { Command } from 'commander';
import { linkedEnv, runWithEnv } from '../registry/queries.js';
import { readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

/** registerRun adds `portpub run`. */
export function registerRun(program: Command, ctx: CliContext): void {
  program
    .command('run')
    .description('run a program with the --link variables of running services set')
    .option(
      '--link <service[:alias]>',
      'link a service (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--parent <name>', "the linking container's name, for <ALIAS>_NAME", 'portpub')
    .option('--published', 'point the values at the published host address and ports', false)
    .argument('<command>', 'the program to run')
    .argument('[args...]', 'its arguments (put -- before them)')
    .addHelpText(
      'after',
      `
Example:
  $ portpub run --link db:pg -- sh -c 'psql -h $PG_PORT_5432_TCP_ADDR -p $PG_PORT_5432_TCP_PORT'`,
    )
    .action(
      async (
        command: string,
        args: string[],
        opts: { link: string[]; parent: string; published: boolean },
      ) => {
        const dir = stateDir();
        const env = linkedEnv(readStates(dir), opts.link, {
          parent: opts.parent,
          published: opts.published,
          dir,
        });
        ctx.setExit(await runWithEnv(command, args, env, { stderr: ctx.io.stderr }));
      },
    );
}
