// The command line: the only module that reads argv, installs signal handlers, prints to stdout
// and picks exit codes (0 ok, 1 runtime failure, 2 bad input).
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_CONFIG_FILES, parseComposeText } from '../docker/compose.js';
import {
  envCommand,
  findReloadTarget,
  linkedEnv,
  portCommand,
  runWithEnv,
} from '../registry/queries.js';
import { parseCount, parseDuration } from '../duration.js';
import { EXIT_RUNTIME, EXIT_USAGE, PortpubError, UsageError } from '../errors.js';
import { createLogger, LOG_LEVELS, type LogFormat, type Logger } from '../logger.js';
import { formatPortLines, joinHostPort } from '../docker/report.js';
import {
  formatSpec,
  isIpLiteral,
  parsePublish,
  SHORT_SYNTAX,
  type PortMapping,
} from '../docker/spec.js';
import { readStates, removeState, stateDir, writeState } from '../registry/state.js';
import {
  startForwarding,
  type Binding,
  type Forwarding,
  type PublishRequest,
} from '../publish/supervisor.js';
import { TcpWorkers } from '../workers/pool.js';

/** CliIo is where the CLI writes; tests pass their own. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

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
`;

/** ServeOptions are the options of every command that serves ports. */
const UP_EXAMPLES = `
Examples:
  # serve the ports: of portpub.yaml (or portpub.yml, portpub.json) in this directory
  $ portpub up

  # publish an existing docker-compose.yml's ports, with the services running on this host
  $ portpub up -f docker-compose.yml --target-for web=127.0.0.1 --target-for db=10.0.0.5

  # after editing the file: apply it without dropping connections of unchanged mappings
  $ portpub reload          (or: kill -HUP <pid>)
`;

/** ServeOptions are the options of every command that serves ports. */
interface ServeOptions {
  defaultHostIp: string;
  json: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  logFormat?: LogFormat;
  drainTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  udpTimeout: number;
  maxUdpFlows: number;
  tcpWorkers: number;
}

interface RootOptions extends ServeOptions {
  publish: PortMapping[][];
  target: string;
  name?: string;
  dryRun: boolean;
}

interface UpOptions extends ServeOptions {
  file?: string;
  targetFor: Record<string, string>;
  dryRun: boolean;
}

/** main runs the CLI and resolves the process exit code. */
export async function main(
  argv: readonly string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every other commander error is a usage error.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (err instanceof PortpubError) {
      io.stderr.write(`portpub: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr.write(`portpub: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT_RUNTIME;
  }
  return exitCode;
}

function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('portpub')
    .description(
      `Publish ports like docker run -p, without Docker: bind host ports and relay TCP and UDP\n` +
        `to a target address. -p takes ${SHORT_SYNTAX} or docker run's long syntax.`,
    )
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError('(run portpub --help for usage)')
    .addHelpText('after', EXAMPLES)
    .option(
      '-p, --publish <spec>',
      `publish a target port on the host (repeatable): ${SHORT_SYNTAX}`,
      (value: string, prev: PortMapping[][]) => [...prev, parseSpecArg(value)],
      [] as PortMapping[][],
    )
    .option(
      '-t, --target <host>',
      `address the target ports live on (Docker's container IP); IP or hostname`,
      '127.0.0.1',
    )
    .option('--name <name>', 'a name for this run, for `portpub port NAME`')
    .option('--dry-run', 'parse and validate, print the plan, bind nothing', false)
    .action(async (opts: RootOptions) => {
      setExit(await runPublish(opts, io));
    });
  addServeOptions(program);
  program.enablePositionalOptions();

  const up = program
    .command('up')
    .description(
      'publish the ports: of every service in a compose-style file, in one process; SIGHUP reloads it',
    )
    .option('-f, --file <file>', `config file (default: ${DEFAULT_CONFIG_FILES.join(', ')})`)
    .option(
      '--target-for <service=host>',
      "target address of a service (repeatable); the default is the file's target, else 127.0.0.1",
      (value: string, prev: Record<string, string>) => {
        const eq = value.indexOf('=');
        if (eq <= 0 || eq === value.length - 1) {
          throw new InvalidArgumentError('expected SERVICE=HOST');
        }
        return { ...prev, [value.slice(0, eq)]: value.slice(eq + 1) };
      },
      {} as Record<string, string>,
    )
    .option('--dry-run', 'read and check the file, print the plan, bind nothing', false)
    .addHelpText('after', UP_EXAMPLES)
    .action(async (opts: UpOptions) => {
      setExit(await runUp(opts, io));
    });
  addServeOptions(up);

  program
    .command('port')
    .description(
      'print where a running portpub published ports, as docker port does: all of them, a ' +
        "service's (NAME: a service, a --name or a pid), or one target port's",
    )
    .argument('[name]', 'service name, run name (--name) or pid; default: every running portpub')
    .argument('[port]', 'target port, TARGETPORT[/PROTO] (protocol default tcp)')
    .option('--json', "print docker inspect's Ports shape instead", false)
    .addHelpText(
      'after',
      `
Examples:
  $ portpub port              # every binding of every running portpub
  $ portpub port web          # 80/tcp -> 0.0.0.0:49153 ...
  $ portpub port web 80       # 0.0.0.0:49153 and [::]:49153
  $ curl http://$(portpub port web 80 | head -1)/`,
    )
    .action((name: string | undefined, port: string | undefined, opts: { json: boolean }) => {
      const dir = stateDir();
      io.stdout.write(
        portCommand(readStates(dir), {
          ...(name !== undefined ? { name } : {}),
          ...(port !== undefined ? { port } : {}),
          json: opts.json,
          dir,
        }),
      );
    });

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
    .addHelpText(
      'after',
      `
Examples:
  $ eval "$(portpub env db)"          # DB_PORT=tcp://127.0.0.1:5432, DB_PORT_5432_TCP_ADDR=...
  $ portpub env db --alias pg --published --format dotenv > .env`,
    )
    .action(
      (
        service: string,
        opts: { alias?: string; parent: string; published: boolean; format: 'export' | 'dotenv' },
      ) => {
        const dir = stateDir();
        io.stdout.write(envCommand(readStates(dir), { service, ...opts, dir }));
      },
    );

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
        setExit(await runWithEnv(command, args, env, { stderr: io.stderr }));
      },
    );

  program
    .command('reload')
    .description('make a running portpub up re-read its config file (sends it SIGHUP)')
    .option('--pid <pid>', 'which portpub up, when several run', countArg('--pid', 1))
    .action((opts: { pid?: number }) => {
      const dir = stateDir();
      const target = findReloadTarget(readStates(dir), opts.pid, dir);
      process.kill(target.pid, 'SIGHUP');
      io.stdout.write(`sent SIGHUP to portpub pid ${target.pid} (${target.configFile ?? ''})\n`);
    });

  program.configureHelp({ sortOptions: false });
  up.configureHelp({ sortOptions: false });
  return program;
}

/** addServeOptions adds the options every serving command shares. */
function addServeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--default-host-ip <ip>',
      'host address for mappings that name none (like dockerd --ip); 0.0.0.0 also binds ::',
      ipArg('--default-host-ip'),
      '0.0.0.0',
    )
    .option('--json', 'print the mappings (or the --dry-run plan) as one JSON document', false)
    .addOption(
      new Option('--log-level <level>', 'log level on stderr')
        .choices(LOG_LEVELS as string[])
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'log format (default: pretty on a terminal, else json)',
      ).choices(['json', 'pretty']),
    )
    .option(
      '--drain-timeout <duration>',
      'on SIGINT/SIGTERM, how long open connections may finish before they are cut',
      durationArg('--drain-timeout'),
      10_000,
    )
    .option(
      '--connect-timeout <duration>',
      'TCP: how long to wait for the target to accept a connection',
      durationArg('--connect-timeout'),
      5_000,
    )
    .option(
      '--idle-timeout <duration>',
      'TCP: close connections idle this long in both directions (0 = never, like Docker)',
      durationArg('--idle-timeout'),
      0,
    )
    .option(
      '--max-connections <n>',
      'TCP: most open connections per binding; more are refused (0 = unlimited)',
      countArg('--max-connections'),
      0,
    )
    .option(
      '--udp-timeout <duration>',
      'UDP: a client flow ends this long after its last datagram to the target',
      durationArg('--udp-timeout', 1),
      90_000,
    )
    .option(
      '--max-udp-flows <n>',
      'UDP: most client flows per binding; the least recently used is evicted beyond it',
      countArg('--max-udp-flows', 1),
      4096,
    )
    .option(
      '--tcp-workers <n>',
      'TCP: accept and relay in n processes (this one and n-1 workers); UDP stays in this one',
      countArg('--tcp-workers', 1),
      1,
    );
}

/** runPublish is the main job: bind every -p, print the mappings, serve until a signal. */
async function runPublish(opts: RootOptions, io: CliIo): Promise<number> {
  const mappings = opts.publish.flat();
  if (mappings.length === 0) {
    io.stderr.write(
      `portpub: nothing to publish: give at least one -p ${SHORT_SYNTAX}\n` +
        `(run portpub --help for usage)\n`,
    );
    return EXIT_USAGE;
  }
  const logger = makeLogger(opts, io);
  if (opts.dryRun) {
    io.stdout.write(formatPlan(mappings, opts.target, opts));
    warnSctp(mappings, logger);
    return 0;
  }
  const publish = mappings.map((mapping) => ({ mapping, targetHost: opts.target }));
  return serve(publish, opts, io, logger, opts.name !== undefined ? { name: opts.name } : {});
}

/** runUp serves every service of a compose-style file; SIGHUP re-reads the file. */
async function runUp(opts: UpOptions, io: CliIo): Promise<number> {
  const logger = makeLogger(opts, io);
  const file = resolve(opts.file ?? findConfigFile());
  const load = (): PublishRequest[] => {
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
  };
  const publish = load();
  if (opts.dryRun) {
    const byService = new Map<string, PublishRequest[]>();
    for (const r of publish) byService.set(r.name!, [...(byService.get(r.name!) ?? []), r]);
    if (opts.json) {
      const mappings = publish.map((r) => ({
        name: r.name,
        hostIp: r.mapping.hostIp,
        hostPort: r.mapping.hostPort,
        targetHost: r.targetHost,
        targetPort: r.mapping.targetPort,
        protocol: r.mapping.protocol,
      }));
      io.stdout.write(JSON.stringify({ mappings }) + '\n');
    } else {
      for (const [name, reqs] of byService) {
        io.stdout.write(
          prefixLines(
            `${name}: `,
            formatPlan(
              reqs.map((r) => r.mapping),
              reqs[0]!.targetHost,
              opts,
            ),
          ),
        );
      }
    }
    warnSctp(
      publish.map((r) => r.mapping),
      logger,
    );
    return 0;
  }
  return serve(publish, opts, io, logger, { configFile: file }, load);
}

/**
 * serve binds everything (all or nothing), prints the bindings, publishes them in the state
 * directory for `portpub port`, and runs until SIGINT/SIGTERM. With `reload`, SIGHUP applies the
 * configuration it returns; a bad one is logged and the running one kept.
 */
async function serve(
  publish: PublishRequest[],
  opts: ServeOptions,
  io: CliIo,
  logger: Logger,
  identity: { name?: string; configFile?: string },
  reload?: () => PublishRequest[],
): Promise<number> {
  let forwarding: Forwarding;
  let workers: TcpWorkers | undefined;
  try {
    if (opts.tcpWorkers > 1) {
      workers = await TcpWorkers.start({
        count: opts.tcpWorkers - 1,
        logLevel: opts.logLevel,
        logFormat: opts.logFormat ?? (io.stderr.isTTY ? 'pretty' : 'json'),
        logger,
      });
    }
    forwarding = await startForwarding({
      publish,
      defaultHostIp: opts.defaultHostIp,
      tcp: {
        connectTimeoutMs: opts.connectTimeout,
        idleTimeoutMs: opts.idleTimeout,
        maxConnections: opts.maxConnections,
      },
      udp: { flowTimeoutMs: opts.udpTimeout, maxFlows: opts.maxUdpFlows },
      logger,
      ...(workers ? { tcpShare: workers } : {}),
    });
  } catch (err) {
    await workers?.destroy();
    if (err instanceof PortpubError) {
      logger.error({ code: err.code }, err.message);
      io.stderr.write(`portpub: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  // Signal handlers go in before anything is printed: a caller may signal as soon as it reads.
  const stopped = waitForStop(forwarding, workers, opts.drainTimeout, logger);

  const dir = stateDir();
  const startedAt = new Date().toISOString();
  const publishState = () => {
    try {
      writeState(dir, { pid: process.pid, startedAt, ...identity, bindings: forwarding.bindings });
    } catch (err) {
      logger.warn(
        { err, dir },
        'cannot write the state file: `portpub port` will not see this run',
      );
    }
  };
  const dropState = () => removeState(dir, process.pid);
  publishState();
  process.once('exit', dropState);

  const onHup = () => {
    if (!reload) {
      logger.info('SIGHUP ignored: nothing to reload (use portpub up -f FILE)');
      return;
    }
    logger.info('SIGHUP: reloading the configuration');
    let next: PublishRequest[];
    try {
      next = reload();
    } catch (err) {
      logger.error(
        { err: (err as Error).message },
        'reload failed: keeping the running configuration',
      );
      return;
    }
    forwarding.update(next).then(
      (r) => {
        logger.info(r, 'reloaded');
        publishState();
      },
      (err: unknown) => {
        logger.error(
          { err: err instanceof Error ? err.message : String(err) },
          'reload failed: keeping the running configuration',
        );
      },
    );
  };
  process.on('SIGHUP', onHup);
  io.stdout.write(
    formatBindings(forwarding.bindings, opts.json, identity.configFile !== undefined),
  );
  try {
    await stopped;
  } finally {
    process.off('SIGHUP', onHup);
    process.off('exit', dropState);
    dropState();
  }
  return 0;
}

function makeLogger(opts: ServeOptions, io: CliIo): Logger {
  return createLogger({
    level: opts.logLevel,
    ...(opts.logFormat ? { format: opts.logFormat } : {}),
    destination: io.stderr,
  });
}

function warnSctp(mappings: readonly PortMapping[], logger: Logger): void {
  for (const m of mappings) {
    if (m.protocol === 'sctp') {
      logger.warn({ mapping: formatSpec(m) }, 'sctp parses, but portpub cannot serve it');
    }
  }
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

function prefixLines(prefix: string, text: string): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? l : prefix + l))
    .join('\n');
}

/** waitForStop serves until SIGINT/SIGTERM, then drains; a second signal cuts at once. */
function waitForStop(
  forwarding: Forwarding,
  workers: TcpWorkers | undefined,
  drainTimeoutMs: number,
  logger: Logger,
): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: cutting open connections');
        forwarding.destroy();
        void workers?.destroy();
        return;
      }
      stopping = true;
      logger.info({ signal, drainTimeoutMs }, 'stopping: draining open connections');
      Promise.all([forwarding.close(drainTimeoutMs), workers?.close(drainTimeoutMs)]).then(
        () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          logger.info('stopped');
          resolve();
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          forwarding.destroy();
          void (workers?.destroy() ?? Promise.resolve()).finally(resolve);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

function formatBindings(bindings: readonly Binding[], json: boolean, byService: boolean): string {
  if (json) {
    const mappings = bindings.map((b) => ({
      ...(b.name !== undefined ? { name: b.name } : {}),
      hostIp: b.hostIp,
      hostPort: b.hostPort,
      targetHost: b.targetHost,
      targetPort: b.targetPort,
      protocol: b.protocol,
    }));
    return JSON.stringify({ mappings }) + '\n';
  }
  if (!byService)
    return formatPortLines(bindings)
      .map((l) => l + '\n')
      .join('');
  const names = [...new Set(bindings.map((b) => b.name ?? ''))];
  return names
    .flatMap((n) =>
      formatPortLines(bindings.filter((b) => (b.name ?? '') === n)).map((l) => `${n}: ${l}\n`),
    )
    .join('');
}

/** formatPlan describes what would be bound: Docker's stored fields, before any port is picked. */
function formatPlan(
  mappings: readonly PortMapping[],
  target: string,
  opts: { json: boolean; defaultHostIp: string },
): string {
  if (opts.json) {
    return (
      JSON.stringify({
        mappings: mappings.map((m) => ({
          hostIp: m.hostIp,
          hostPort: m.hostPort,
          targetPort: m.targetPort,
          protocol: m.protocol,
        })),
      }) + '\n'
    );
  }
  return mappings
    .map((m) => {
      const hosts =
        m.hostIp !== ''
          ? [m.hostIp]
          : opts.defaultHostIp === '0.0.0.0'
            ? ['0.0.0.0', '::']
            : [opts.defaultHostIp];
      const port =
        m.hostPort === '' || m.hostPort === '0' ? '(ephemeral)' : m.hostPort.replace('-', '..');
      return hosts
        .map(
          (h) =>
            `${m.targetPort}/${m.protocol} -> ${joinHostPort(h, port)} => ` +
            `${joinHostPort(target, m.targetPort)}\n`,
        )
        .join('');
    })
    .join('');
}

function parseSpecArg(value: string): PortMapping[] {
  try {
    return parsePublish(value);
  } catch (err) {
    if (err instanceof PortpubError) throw new InvalidArgumentError(err.message);
    throw err;
  }
}

function ipArg(flag: string) {
  return (value: string): string => {
    if (!isIpLiteral(value))
      throw new InvalidArgumentError(`${flag}: invalid IP address: ${value}`);
    return value;
  };
}

function durationArg(flag: string, min = 0) {
  return (value: string): number => {
    const ms = parseDuration(value);
    if (ms === undefined || ms < min) {
      throw new InvalidArgumentError(
        `${flag} takes a duration such as 500ms, 10s, 2m or 1h${min > 0 ? ' (more than 0)' : ''}`,
      );
    }
    return ms;
  };
}

function countArg(flag: string, min = 0) {
  return (value: string): number => {
    const n = parseCount(value);
    if (n === undefined || n < min) {
      throw new InvalidArgumentError(`${flag} takes a whole number >= ${min}`);
    }
    return n;
  };
}
