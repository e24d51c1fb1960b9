// `portpub run [OPTIONS] COMMAND [ARG...]`: docker run without Docker. By default the command
// gets a network of its own (src/netns) whose ports -p publishes on the host; `--network host`
// (or `--published`) runs it on the host's network with the --link variables set, as before.
// Everything after COMMAND is the command's (passThroughOptions), as with docker run.
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { checkName, checkNameFree } from '../docker/names.js';
import type { PortMapping } from '../docker/spec.js';
import { parseRestartPolicy, type RestartPolicy } from '../docker/restart.js';
import { EXIT_USAGE, PortpubError, UsageError } from '../errors.js';
import { parseEnvFile, userVariables, validateEnv } from '../netns/env.js';
import { checkHostname, parseAddHost } from '../netns/hosts.js';
import { findInit, noInit } from '../netns/sandbox.js';
import {
  containerPath,
  createContainer,
  generateName,
  listContainers,
  newId,
  pickIp,
  readRecord,
  type ContainerConfig,
  type ExposedPort,
} from '../registry/containers.js';
import { requireTty, runWithEnv } from './run-with-env.js';
import { readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';
import { spawnBackground } from './detach.js';
import {
  addServeOptions,
  checkedArg,
  makeLogger,
  parseSpecArg,
  type ServeOptions,
} from './options.js';
import { hostRunEnv, runHostRecord, type HostRunOptions } from './run-host.js';
import { mentionsHostIp, warnHostIpIgnored } from './host-ip.js';
import { logToFile } from './run-output.js';
import { superviseRestarts } from './restarts.js';
import { runContainer } from './run-service.js';

const EXAMPLES = `
Examples:
  # a web server in a network of its own, published on the host's port 5000
  $ portpub run -d -p 5000:5000 --name web -- python3 -m http.server 5000

  # a service run again whenever it ends, until portpub stop
  $ portpub run -d --restart unless-stopped -p 8080:80 --name site -- python3 -m http.server 80

  # a shell on a terminal of its own, in a network of its own, removed when it exits
  $ portpub run -it --rm -- bash

  # a database only its linked peers reach, and one of them
  $ portpub run -d --name db --expose 5432 -e POSTGRES_DB=app -- postgres
  $ portpub run --link db -- sh -c 'env | grep ^DB_; getent hosts db'

  # the command on the host's network, with the link variables of a running service
  $ portpub run --network host --link db:pg -- sh -c 'psql -h $PG_PORT_5432_TCP_ADDR'`;

interface RunOptions extends ServeOptions {
  publish: PortMapping[][];
  expose: ExposedPort[][];
  publishAll: boolean;
  env: string[];
  envFile: string[];
  name?: string;
  link: string[];
  detach: boolean;
  rm: boolean;
  restart?: RestartPolicy;
  interactive: boolean;
  tty: boolean;
  init: boolean;
  hostname?: string;
  addHost: [string, string][];
  workdir?: string;
  network?: string;
  parent: string;
  published: boolean;
  fromRecord?: string;
}

export const collect = (v: string, prev: string[]) => [...prev, v];
const addHostArg = checkedArg(parseAddHost);

/** registerRun adds `portpub run`. */
export function registerRun(program: Command, ctx: CliContext): void {
  const run = program
    .command('run')
    .description(
      'run a command as docker run does: in a network of its own with -p published on the host, ' +
        'linked to other services with --link',
    )
    .argument('[command]', 'the program to run')
    .argument('[args...]', "its arguments: everything after COMMAND is the command's")
    .option(
      '-p, --publish <spec>',
      'publish a port of the service on the host (repeatable)',
      (value: string, prev: PortMapping[][]) => {
        if (mentionsHostIp(value)) hostIpIgnored.push(value);
        return [...prev, parseSpecArg(value)];
      },
      [] as PortMapping[][],
    )
    .option(
      '--expose <port[/proto]>',
      'a port the service listens on (ranges too), for --link and -P (repeatable)',
      (value: string, prev: ExposedPort[][]) => [...prev, parseExpose(value)],
      [] as ExposedPort[][],
    )
    .option('-P, --publish-all', 'publish every exposed port on an ephemeral host port', false)
    .option('-e, --env <KEY=VALUE>', 'set a variable in the service (repeatable)', collect, [])
    .option('--env-file <file>', 'read variables from a file (repeatable)', collect, [])
    .option('--name <name>', 'a name for the service (default: a generated one)')
    .option('--link <name[:alias]>', 'link a running service (repeatable)', collect, [])
    .option('-d, --detach', 'run in the background and print the service id', false)
    .option('--rm', 'remove the service when it exits', false)
    .option(
      '--restart <policy>',
      'run it again when its command ends: no, on-failure[:max-retries], always, unless-stopped',
      checkedArg(parseRestartPolicy),
    )
    .option('-i, --interactive', 'keep stdin attached to the command', false)
    .option('-t, --tty', "run the command on a terminal of its own (util-linux's script)", false)
    .option(
      '--init',
      'run an init (tini) as PID 1 inside, reaping the processes orphaned there, as docker run --init',
      false,
    )
    .option(
      '--hostname <name>',
      "the service's hostname (default: its short id)",
      checkedArg(checkHostname),
    )
    .option(
      '--add-host <host:ip>',
      "an entry of the service's /etc/hosts (repeatable)",
      (v: string, prev: [string, string][]) => [...prev, addHostArg(v)],
      [] as [string, string][],
    )
    .option('-w, --workdir <dir>', "the command's working directory (absolute; it must exist)")
    .option('--network <mode>', "'host' to share the host's network (default: one of its own)")
    .option('--parent <name>', '--network host: the <parent> of <ALIAS>_NAME', 'portpub')
    .option(
      '--published',
      '--network host: point the link variables at the published host address and ports',
      false,
    )
    .addOption(new Option('--from-record <id>').hideHelp())
    .addHelpText('after', EXAMPLES)
    .passThroughOptions()
    .action(async (command: string | undefined, args: string[], opts: RunOptions, cmd: Command) => {
      refuseServeOnly(cmd);
      ctx.setExit(await runCommand(command, args, opts, ctx, hostIpIgnored));
    });
  // -p values with host_ip= (long syntax): ignored as docker run ignores the key, with a warning.
  const hostIpIgnored: string[] = [];
  addServeOptions(run);
  for (const o of run.options) if (SERVE_ONLY[o.long ?? ''] !== undefined) o.hideHelp();
}

/**
 * SERVE_ONLY are the serving options run cannot honour, and why: every port of a run service is
 * dialed through its namespace agent, which only the TypeScript relay in this one process does.
 */
const SERVE_ONLY: Record<string, string> = {
  '--tcp-workers':
    "a run service's connections are dialed through its namespace agent, in one process",
  '--engine':
    "a run service's ports are relayed in TypeScript (each connection is dialed through its namespace agent)",
};

/** refuseServeOnly makes a given SERVE_ONLY option a usage error (exit 2), not a silent no-op. */
function refuseServeOnly(cmd: Command): void {
  for (const o of cmd.options) {
    const why = SERVE_ONLY[o.long ?? ''];
    if (why === undefined) continue;
    const source = cmd.getOptionValueSource(o.attributeName());
    if (source === 'cli' || source === 'env') {
      throw new UsageError(`${o.long} is not an option of portpub run: ${why}`);
    }
  }
}

async function runCommand(
  command: string | undefined,
  args: string[],
  opts: RunOptions,
  ctx: CliContext,
  hostIpIgnored: readonly string[],
): Promise<number> {
  const dir = stateDir();
  if (opts.fromRecord !== undefined) {
    // The background half of -d: the record says everything.
    const record = readRecord(opts.fromRecord, dir);
    if (!record) throw new UsageError(`no such service record: ${opts.fromRecord}`);
    if (record.network === 'host') {
      return superviseRestarts(
        record.restart,
        ctx,
        (again, stopped) => runHostRecord(record, ctx, again, stopped),
        record.id,
        dir,
      );
    }
    const serve = record.serve as unknown as ServeOptions;
    const logger = makeLogger(serve, ctx.io);
    return superviseRestarts(
      record.restart,
      ctx,
      (again, stopped) =>
        runContainer(record, serve, ctx, logger, { detached: true, again, stopped }),
      record.id,
      dir,
    );
  }
  if (command === undefined) {
    throw new UsageError("'portpub run' requires at least 1 argument: the command to run");
  }
  if (opts.workdir !== undefined) checkWorkdir(opts.workdir);
  if (opts.rm && opts.restart !== undefined && opts.restart.name !== 'no') {
    throw new UsageError('conflicting options: cannot specify both --restart and --rm');
  }
  // Checked before anything starts, as docker run checks it.
  const script = opts.tty ? requireTty(opts.interactive && !opts.detach) : undefined;
  const hostEnv = process.env;
  const user = [
    ...opts.envFile.flatMap((f) => parseEnvFile(readBytes(f), f, hostEnv)),
    ...opts.env.map((e) => validateEnv(e, hostEnv)),
  ];
  // Docker's name rule, one leading `/` trimmed (moby's reserveName); on the host network too.
  const name = opts.name === undefined ? undefined : checkName(opts.name);
  const host = opts.network === 'host' || opts.published;
  if (!host && opts.network !== undefined && !['bridge', 'default'].includes(opts.network)) {
    throw new UsageError(
      `--network: portpub offers 'host' or a network of its own, not ${opts.network}`,
    );
  }
  if (host) {
    // No namespace holds them here: the command has the host's hostname and /etc/hosts. (Docker
    // gives a host-network container a UTS namespace and a hosts file of its own.)
    if (opts.hostname !== undefined) {
      throw new UsageError(
        "--hostname needs a network of its own: on the host's network the command has the host's hostname",
      );
    }
    if (opts.addHost.length > 0) {
      throw new UsageError(
        "--add-host needs a network of its own: on the host's network the host's /etc/hosts is the command's",
      );
    }
    // Docker's own warning: on the host's network a port needs no publishing.
    if (opts.publish.length > 0 || opts.publishAll) {
      ctx.io.stderr.write('WARNING: Published ports are discarded when using host network mode\n');
    }
    if (opts.detach) return detachOnHost(command, args, { ...opts, name }, user, ctx);
    // In the foreground no record holds the name, but one in use is refused, as Docker would.
    if (name !== undefined) checkNameFree(name, nameHolders(dir));
    return superviseRestarts(opts.restart, ctx, async (again) => {
      let stopped = false;
      const off = ctx.host.onStop(() => {
        stopped = true;
      });
      let spawned = false;
      try {
        const code = await runOnHost(command, args, opts, user, ctx, script, () => {
          spawned = true;
        });
        // A command that never started (127, 126) is not run again, as Docker does not.
        if (!stopped && spawned) again(code);
        return code;
      } finally {
        off();
      }
    });
  }

  // Found before anything starts; on the host's network the host's own init reaps orphans.
  if (opts.init && findInit(process.env.PATH) === undefined) throw noInit();
  // tini hands the terminal to the agent's process group, away from portpub's: the terminal's
  // Ctrl-C would no longer reach portpub, and a Ctrl-Z would stop the service alone, leaving
  // the shell waiting on a portpub that still runs.
  if (opts.init && opts.interactive && !opts.detach && process.stdin.isTTY === true) {
    throw new UsageError(
      '--init cannot be used with -i on a terminal: tini would take the terminal from portpub; ' +
        'run without --init, or detached (-d)',
    );
  }
  const exposed = [...opts.expose.flat()];
  const publish = opts.publish.flat();
  for (const m of publish) {
    if (m.protocol === 'sctp') throw new UsageError('sctp cannot be published by portpub');
    exposed.push({ port: m.targetPort, protocol: m.protocol });
  }
  const exposedUnique = uniquePorts(exposed);
  if (opts.publishAll) {
    for (const p of exposedUnique) {
      if (p.protocol === 'sctp') continue;
      if (!publish.some((m) => m.targetPort === p.port && m.protocol === p.protocol)) {
        publish.push({ hostIp: '', hostPort: '', targetPort: p.port, protocol: p.protocol });
      }
    }
  }
  const id = newId();
  const taken = new Set(listContainers(dir).map((c) => c.name));
  const serve: ServeOptions = pickServeOptions(opts);
  const config: ContainerConfig = {
    id,
    name: name ?? generateName(taken),
    command,
    args,
    created: new Date().toISOString(),
    network: 'private',
    env: userVariables(user),
    userEnv: user,
    publish,
    exposed: exposedUnique,
    links: opts.link,
    ip: pickIp(id, dir),
    detach: opts.detach,
    autoRemove: opts.rm,
    ...(opts.restart !== undefined ? { restart: opts.restart } : {}),
    interactive: opts.interactive && !opts.detach,
    tty: opts.tty,
    ...(opts.init ? { init: true } : {}),
    ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
    addHosts: opts.addHost,
    ...(opts.workdir !== undefined ? { workdir: opts.workdir } : {}),
    serve: serve as unknown as Record<string, unknown>,
  };
  checkNameFree(config.name, nameHolders(dir));
  const record = createContainer(config, dir);
  if (!opts.detach) {
    const logged = logToFile(ctx.io, containerPath(record.id, 'log', dir));
    try {
      const logger = makeLogger(serve, logged.io);
      warnHostIpIgnored(hostIpIgnored, logger);
      return await superviseRestarts(
        record.restart,
        ctx,
        (again, stopped) =>
          runContainer(record, serve, ctx, logger, { detached: false, again, stopped }),
        record.id,
        dir,
      );
    } finally {
      logged.close();
    }
  }
  // Said here, where the user sees it: the background half reads the parsed record.
  warnHostIpIgnored(hostIpIgnored, makeLogger(serve, ctx.io));
  return detach(record.id, ctx, dir);
}

/** runOnHost is `--network host`: today's run, the command on the host with link variables. */
async function runOnHost(
  command: string,
  args: string[],
  opts: RunOptions,
  user: string[],
  ctx: CliContext,
  script: string | undefined,
  onSpawn?: () => void,
): Promise<number> {
  const env = hostRunEnv(opts.link, user, opts);
  // Without -t, stdin stays the command's as before; on a terminal of its own, only with -i.
  const tty = script === undefined ? {} : { tty: script, stdin: opts.interactive };
  const cwd = opts.workdir === undefined ? {} : { cwd: opts.workdir };
  const spawn = onSpawn === undefined ? {} : { onSpawn };
  return runWithEnv(command, args, env, { stderr: ctx.io.stderr, ...tty, ...cwd, ...spawn });
}

/**
 * detachOnHost is `run -d --network host`: a record of the command (no namespace, no address, no
 * ports) run in the background by runHostRecord, as `docker run -d --network host` runs one.
 */
async function detachOnHost(
  command: string,
  args: string[],
  opts: RunOptions,
  user: string[],
  ctx: CliContext,
): Promise<number> {
  const dir = stateDir();
  // The links resolve now, so a bad one fails here, as in the foreground.
  hostRunEnv(opts.link, user, opts, dir);
  const name = opts.name ?? generateName(new Set(listContainers(dir).map((c) => c.name)));
  checkNameFree(name, nameHolders(dir));
  const hostOptions: HostRunOptions = { parent: opts.parent, published: opts.published };
  const record = createContainer(
    {
      id: newId(),
      name,
      command,
      args,
      created: new Date().toISOString(),
      network: 'host',
      env: userVariables(user),
      userEnv: user,
      publish: [],
      exposed: [],
      links: opts.link,
      ip: '',
      detach: true,
      autoRemove: opts.rm,
      ...(opts.restart !== undefined ? { restart: opts.restart } : {}),
      interactive: false,
      tty: opts.tty,
      ...(opts.workdir !== undefined ? { workdir: opts.workdir } : {}),
      serve: hostOptions as unknown as Record<string, unknown>,
    },
    dir,
  );
  return detach(record.id, ctx, dir);
}

/** nameHolders are every holder of a name: records, and each running portpub's --name. */
function nameHolders(dir: string): { name: string | undefined; by: string }[] {
  // A plain `portpub --name` or a service of `portpub up` holds its name too (issue 13, #7);
  // records first, so a container holding it is the one named.
  return [
    ...listContainers(dir).map((c) => ({ name: c.name, by: `container "${c.id}"` })),
    ...readStates(dir).map((st) => ({ name: st.name, by: `portpub pid ${st.pid}` })),
  ];
}

/**
 * detach starts this same CLI in the background on the record (`run --from-record ID`, see
 * spawnBackground in detach.ts), prints the id once the service runs, and returns: the service is
 * then the background portpub's alone.
 */
async function detach(id: string, ctx: CliContext, dir: string): Promise<number> {
  const started = await spawnBackground(id, ['run', '--from-record', id], ctx, dir);
  if (!started.ok) return started.code;
  ctx.io.stdout.write(`${id}\n`);
  return 0;
}

/**
 * checkWorkdir refuses a -w that is relative (Docker's message) or names no directory: the
 * command runs in the host's filesystem, where portpub creates nothing (Docker creates it in the
 * container's).
 */
export function checkWorkdir(dir: string): void {
  if (!isAbsolute(dir)) {
    throw new UsageError(
      `the working directory '${dir}' is invalid, it needs to be an absolute path`,
    );
  }
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // missing or unreadable: said below
  }
  if (!isDir) {
    throw new UsageError(
      `-w ${dir}: no such directory (the command runs in the host's filesystem, where portpub creates none)`,
    );
  }
}

/** parseExpose reads an --expose value: PORT, PORT/PROTO, START-END[/PROTO] (Docker's rules). */
export function parseExpose(value: string): ExposedPort[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/([A-Za-z]+))?$/.exec(value);
  const bad = () => new InvalidArgumentError(`invalid range format for --expose: ${value}`);
  if (!m) throw bad();
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  const protocol = (m[3] ?? 'tcp').toLowerCase();
  if (start < 1 || end > 65535 || end < start) throw bad();
  if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') {
    throw new InvalidArgumentError(`invalid proto: ${m[3]}`);
  }
  const out: ExposedPort[] = [];
  for (let p = start; p <= end; p++) out.push({ port: p, protocol });
  return out;
}

function uniquePorts(ports: readonly ExposedPort[]): ExposedPort[] {
  const seen = new Map<string, ExposedPort>();
  for (const p of ports) seen.set(`${p.port}/${p.protocol}`, p);
  return [...seen.values()];
}

function pickServeOptions(opts: RunOptions): ServeOptions {
  const keys: (keyof ServeOptions)[] = [
    'defaultHostIp',
    'json',
    'logLevel',
    'logFormat',
    'drainTimeout',
    'connectTimeout',
    'idleTimeout',
    'maxConnections',
    'udpTimeout',
    'maxUdpFlows',
    'metrics',
    'ui',
  ];
  const out: Record<string, unknown> = {};
  for (const k of keys) if (opts[k] !== undefined) out[k] = opts[k];
  return out as unknown as ServeOptions;
}

export function readBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new PortpubError(
      'ERR_USAGE',
      `open ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`,
      EXIT_USAGE,
    );
  }
}
