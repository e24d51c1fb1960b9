// `portpub port [NAME [PORT]]`: where a running portpub published ports, as `docker port` says.
import type { Command } from 'commander';
import { portCommand } from '../registry/queries.js';
import { readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

const EXAMPLES = `
Examples:
  $ portpub port              # every binding of every running portpub
  $ portpub port web          # 80/tcp -> 0.0.0.0:49153 ...
  $ portpub port web 80       # 0.0.0.0:49153 and [::]:49153
  $ curl http://$(portpub port web 80 | head -1)/`;

/** registerPort adds `portpub port`. */
export function registerPort(program: Command, ctx: CliContext): void {
  program
    .command('port')
    .description(
      'print where a running portpub published ports, as docker port does: all of them, a ' +
        "service's (NAME: a service, a --name or a pid), or one target port's",
    )
    .argument('[name]', 'service name, run name (--name) or pid; default: every running portpub')
    .argument('[port]', 'target port, TARGETPORT[/PROTO] (protocol default tcp)')
    .option('--json', "print docker inspect's Ports shape instead", false)
    .addHelpText('after', EXAMPLES)
    .action((name: string | undefined, port: string | undefined, opts: { json: boolean }) => {
      const dir = stateDir();
      ctx.io.stdout.write(
        portCommand(readStates(dir), {
          ...(name !== undefined ? { name } : {}),
          ...(port !== undefined ? { port } : {}),
          json: opts.json,
          dir,
        }),
      );
    });
}
