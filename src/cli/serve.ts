// The root command, `portpub -p SPEC...`: Docker's -p on a bare host. It binds every mapping,
// prints them as docker port does, and relays to --target until SIGINT/SIGTERM.
import { mentionsHostIp, warnHostIpIgnored } from './host-ip.js';
import { Option, type Command } from 'commander';
import { checkNameFree } from '../docker/names.js';
import { SHORT_SYNTAX, type PortMapping } from '../docker/spec.js';
import { EXIT_USAGE, UsageError } from '../errors.js';
import { ipv6Listenable } from '../publish/host-ips.js';
import { planSelfLoop } from '../publish/self-loop.js';
import { generateName, listContainers, readRecord } from '../registry/containers.js';
import { stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';
import { backgroundContext, startDetached } from './detach.js';
import { formatPlan } from './format.js';
import { claimName } from './name-lock.js';
import {
  addServeOptions,
  makeLogger,
  nameArg,
  parseSpecArg,
  runNameHolders,
  targetArg,
  type ServeOptions,
} from './options.js';
import { serve, warnSctp } from './serving.js';

const EXAMPLES = `
Examples:
  # what docker run -p 127.0.0.1:8080:80 does, with the service on 127.0.0.1:80
  $ portpub -p 127.0.0.1:8080:80

  # forward to another host's port (Docker's "container IP")
  $ portpub -p 5432:5432 --target db.internal

  # ephemeral host port on loopback; prints "3000/tcp -> 127.0.0.1:<port>"
  $ portpub -p 127.0.0.1::3000

  # several mappings, TCP and UDP, a range and an IPv6 address
  $ portpub -p 8080:80 -p 5353:53/udp -p 9000-9002:9000-9002 -p [::1]:8443:443

  # long syntax, as docker run accepts it
  $ portpub -p published=8080,target=80,protocol=tcp

  # check specs without binding anything, as JSON
  $ portpub --dry-run --json -p 8000-8010:80 -p 127.0.0.1::53/udp

  # in the background: prints an id; then portpub ps, logs web, stop web
  $ portpub -d --name web -p 8080:80
`;

interface RootOptions extends ServeOptions {
  publish: PortMapping[][];
  target: string;
  name?: string;
  dryRun: boolean;
  detach: boolean;
  fromRecord?: string;
}

/** registerServe makes the program itself the `-p` runner (it has no subcommand name). */
export function registerServe(program: Command, ctx: CliContext): void {
  program
    .description(
      `Publish ports like docker run -p, without Docker: bind host ports and relay TCP and UDP ` +
        `to a target address. -p takes ${SHORT_SYNTAX} or docker run's long syntax.`,
    )
    .addHelpText('after', EXAMPLES)
    .option(
      '-p, --publish <spec>',
      `publish a target port on the host (repeatable): ${SHORT_SYNTAX}`,
      (value: string, prev: PortMapping[][]) => {
        if (mentionsHostIp(value)) hostIpIgnored.push(value);
        return [...prev, parseSpecArg(value)];
      },
      [] as PortMapping[][],
    )
    .option(
      '-t, --target <host>',
      `address the target ports live on (Docker's container IP); IP or hostname`,
      targetArg('--target'),
      '127.0.0.1',
    )
    .option(
      '--name <name>',
      'a name for this run, for `portpub port NAME` ([a-zA-Z0-9][a-zA-Z0-9_.-]+, unique)',
      nameArg('--name'),
    )
    .option('--dry-run', 'parse and validate, print the plan, bind nothing', false)
    .option(
      '-d, --detach',
      'serve in the background and print its id (see portpub ps, logs, stop)',
      false,
    )
    .addOption(new Option('--from-record <id>').hideHelp())
    .action(async (opts: RootOptions, cmd: Command) => {
      ctx.setExit(await runPublish(opts, ctx, hostIpIgnored, cmd));
    });
  // -p values with host_ip= (long syntax): docker run ignores the key, and so does portpub.
  const hostIpIgnored: string[] = [];
  addServeOptions(program);
}

/** runPublish is the main job: bind every -p, print the mappings, serve until a signal. */
async function runPublish(
  opts: RootOptions,
  ctx: CliContext,
  hostIpIgnored: readonly string[],
  cmd: Command,
): Promise<number> {
  const { io } = ctx;
  const mappings = opts.publish.flat();
  if (mappings.length === 0) {
    io.stderr.write(
      `portpub: nothing to publish: give at least one -p ${SHORT_SYNTAX}\n` +
        `(run portpub --help for usage)\n`,
    );
    return EXIT_USAGE;
  }
  const logger = makeLogger(opts, io);
  warnHostIpIgnored(hostIpIgnored, logger);
  if (opts.dryRun) {
    const v6 = await ipv6Listenable();
    io.stdout.write(formatPlan(mappings, opts.target, { ...opts, v6 }));
    warnSctp(mappings, logger);
    // Serving this plan would be refused (exit 2): a dry run says why, as `up --dry-run` does.
    const loop = planSelfLoop(
      mappings.map((mapping) => ({ mapping, targetHost: opts.target })),
      opts.defaultHostIp,
      v6,
    );
    if (loop) logger.warn({ code: loop.code }, loop.message);
    return 0;
  }
  const publish = mappings.map((mapping) => ({ mapping, targetHost: opts.target }));
  if (opts.fromRecord !== undefined) {
    // The background half of -d: the same command line, with the record's name.
    const record = readRecord(opts.fromRecord);
    if (!record) throw new UsageError(`no such service record: ${opts.fromRecord}`);
    const bg = backgroundContext(record, ctx);
    let code = 1;
    try {
      code = await serveNamed(record.name, bg.ctx, () =>
        serve(publish, opts, bg.ctx, logger, { name: record.name }),
      );
    } finally {
      bg.finish(code);
    }
    return code;
  }
  if (opts.detach) {
    if (opts.name !== undefined) checkNameFree(opts.name, runNameHolders());
    return detachPublish(mappings, opts, ctx, cmd);
  }
  if (opts.name === undefined) return serve(publish, opts, ctx, logger, {});
  const name = opts.name;
  return serveNamed(name, ctx, () => serve(publish, opts, ctx, logger, { name }));
}

/**
 * serveNamed runs `serving` holding `name`: claimed (name-lock.ts) before anything is bound, so
 * of two portpubs started together with one --name exactly one serves, and the other gets
 * Docker's conflict error; released when serving ends or the process exits.
 */
async function serveNamed(
  name: string,
  ctx: CliContext,
  serving: () => Promise<number>,
): Promise<number> {
  const claim = claimName(stateDir(), name);
  const offExit = ctx.host.onExit(() => claim.release());
  try {
    // A holder that claims no name: a `portpub run` service, or a portpub of an older version.
    checkNameFree(name, runNameHolders());
    return await serving();
  } finally {
    offExit();
    claim.release();
  }
}

/**
 * detachPublish is `portpub -d -p ...`: a record (named by --name, else generated, as docker run
 * names containers) served by a background portpub on this same command line; prints the id
 * once every port is bound, as `docker run -d` prints the container id.
 */
async function detachPublish(
  mappings: PortMapping[],
  opts: RootOptions,
  ctx: CliContext,
  cmd: Command,
): Promise<number> {
  const dir = stateDir();
  const name = opts.name ?? generateName(new Set(listContainers(dir).map((c) => c.name)));
  const started = await startDetached({ kind: 'serve', name, publish: mappings }, cmd, ctx, dir);
  if ('code' in started) return started.code;
  ctx.io.stdout.write(`${started.id}\n`);
  return 0;
}
