// `portpub env SERVICE`: the variables `docker run --link` would set for a running service.
import { Option, type Command } from 'commander';
import { formatDotenv, formatExport } from '../docker/links.js';
import { containerLinkEnv, findRunning } from '../registry/containers.js';
import { envCommand } from '../registry/queries.js';
import { readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

const EXAMPLES = `
Examples:
  $ eval "$(portpub env db)"          # DB_PORT=tcp://127.0.0.1:5432, DB_PORT_5432_TCP_ADDR=...
  $ portpub env db --alias pg --published --format dotenv > .env`;

interface EnvOptions {
  alias?: string;
  parent: string;
  published: boolean;
  format: 'export' | 'dotenv';
}

/** registerEnv adds `portpub env`. */
export function registerEnv(program: Command, ctx: CliContext): void {
  program
    .command('env')
    .description('print the variables docker run --link would set for a running service')
    .argument('<service>', 'service (or run name, or pid) of a running portpub')
    .option('--alias <alias>', 'link alias: the variable prefix (default: the service name)')
    .option('--parent <name>', "the linking container's name, for <ALIAS>_NAME", 'portpub')
    .option('--published', 'point the values at the published host address and ports', false)
    .addOption(
      new Option('--format <format>', 'output format')
        .choices(['export', 'dotenv'])
        .default('export'),
    )
    .addHelpText('after', EXAMPLES)
    .action((service: string, opts: EnvOptions) => {
      const dir = stateDir();
      // A `portpub run` service: its exposed ports and -e variables, as a linked peer sees them.
      const record = opts.published ? undefined : findRunning(service, dir);
      if (record) {
        const vars = containerLinkEnv(record, opts.alias ?? service, opts.parent);
        ctx.io.stdout.write(opts.format === 'dotenv' ? formatDotenv(vars) : formatExport(vars));
        return;
      }
      ctx.io.stdout.write(envCommand(readStates(dir), { service, ...opts, dir }));
    });
}
