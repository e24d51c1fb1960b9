// `portpub port [NAME [PORT]]`: where a running portpub published ports, as `docker port` says.
import type { Command } from 'commander';
import { portCommand } from '../registry/queries.js';
import { readStates, stateDir, type State } from '../registry/state.js';
import type { CliContext } from './context.js';

const EXAMPLES = `
Examples:
  $ portpub port              # every binding of every running portpub (labelled by process
                              # when several run: "web (pid 4242): 80/tcp -> ...")
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
      const states = readStates(dir);
      if (name === undefined && port === undefined && !opts.json && states.length > 1) {
        ctx.io.stdout.write(labelledListing(states, dir));
        return;
      }
      ctx.io.stdout.write(
        portCommand(states, {
          ...(name !== undefined ? { name } : {}),
          ...(port !== undefined ? { port } : {}),
          json: opts.json,
          dir,
        }),
      );
    });
}

/**
 * labelledListing is `portpub port` with several portpubs running: docker port's lines of each
 * process (and, for `up`, of each service), each prefixed with who serves them and its pid
 * (`web (pid 4242): 80/tcp -> 0.0.0.0:8080`, `pid 4243: 53/udp -> ...`), so lines of two
 * runs can be told apart. One process alone prints plain docker port lines.
 */
function labelledListing(states: readonly State[], dir: string): string {
  let out = '';
  for (const state of states) {
    const groups = new Map<string, State['bindings']>();
    for (const b of state.bindings) {
      const label = b.name ?? state.name;
      const key = label === undefined ? `pid ${state.pid}` : `${label} (pid ${state.pid})`;
      const group = groups.get(key);
      if (group) group.push(b);
      else groups.set(key, [b]);
    }
    for (const [label, bindings] of groups) {
      const text = portCommand([{ ...state, bindings }], { json: false, dir });
      out += text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => `${label}: ${l}\n`)
        .join('');
    }
  }
  return out;
}
