// `portpub up`: publish the ports: of every service of a compose-style file in one process;
// SIGHUP (or `portpub reload`) re-reads the file and applies the difference.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_CONFIG_FILES, parseComposeText } from '../docker/compose.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { PublishRequest } from '../publish/supervisor.js';
import type { CliContext } from './context.js';
import { formatServicePlan } from './format.js';
import { addServeOptions, makeLogger, type ServeOptions } from './options.js';
import { serve, warnSctp } from './serving.js';

const EXAMPLES = `
Examples:
  # serve the ports: of portpub.yaml (or portpub.yml, portpub.json) in this directory
  $ portpub up

  # publish an existing docker-compose.yml's ports, with the services running on this host
  $ portpub up -f docker-compose.yml --target-for web=127.0.0.1 --target-for db=10.0.0.5

  # after editing the file: apply it without dropping connections of unchanged mappings
  $ portpub reload          (or: kill -HUP <pid>)
`;

interface UpOptions extends ServeOptions {
  file?: string;
  targetFor: Record<string, string>;
  dryRun: boolean;
}

/** registerUp adds `portpub up`. */
export function registerUp(program: Command, ctx: CliContext): void {
  const up = program
    .command('up')
    .description(
      'publish the ports: of every service in a compose-style file, in one process; SIGHUP reloads it',
    )
    .option('-f, --file <file>', `config file (default: ${DEFAULT_CONFIG_FILES.join(', ')})`)
    .option(
      '--target-for <service=host>',
      "target address of a service (repeatable); the default is the file's target, else 127.0.0.1",
      targetForArg,
      {} as Record<string, string>,
    )
    .option('--dry-run', 'read and check the file, print the plan, bind nothing', false)
    .addHelpText('after', EXAMPLES)
    .action(async (opts: UpOptions) => {
      ctx.setExit(await runUp(opts, ctx));
    });
  addServeOptions(up);
  up.configureHelp({ sortOptions: false });
}

function targetForArg(value: string, prev: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) {
    throw new InvalidArgumentError('expected SERVICE=HOST');
  }
  return { ...prev, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** runUp serves every service of a compose-style file; SIGHUP re-reads the file. */
async function runUp(opts: UpOptions, ctx: CliContext): Promise<number> {
  const logger = makeLogger(opts, ctx.io);
  const file = resolve(opts.file ?? findConfigFile());
  const load = () => loadFile(file, opts, logger);
  const publish = load();
  if (opts.dryRun) {
    ctx.io.stdout.write(formatServicePlan(publish, opts));
    warnSctp(
      publish.map((r) => r.mapping),
      logger,
    );
    return 0;
  }
  return serve(publish, opts, ctx, logger, { configFile: file }, load);
}

/** loadFile reads and parses the config file into one request per mapping. */
function loadFile(file: string, opts: UpOptions, logger: Logger): PublishRequest[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const parsed = parseComposeText(text, opts.file ?? file, { targetFor: opts.targetFor });
  for (const w of parsed.warnings) logger.warn(w);
  return parsed.services.flatMap((s) =>
    s.mappings.map(({ portName: _n, ...mapping }) => ({
      mapping,
      targetHost: s.target,
      name: s.name,
    })),
  );
}

function findConfigFile(): string {
  const found = DEFAULT_CONFIG_FILES.find((f) => existsSync(f));
  if (!found) {
    throw new UsageError(
      `no config file: none of ${DEFAULT_CONFIG_FILES.join(', ')} in ${process.cwd()}; give -f FILE`,
    );
  }
  return found;
}
