// `portpub up`: publish the ports: of every service of a compose-style file in one process;
// SIGHUP (or `portpub reload`) re-reads the file and applies the difference.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_CONFIG_FILES } from '../docker/compose.js';
import {
  loadComposeProject,
  loadComposeProjectOffThread,
  projectRequests,
  type ComposeProject,
  type ProjectOptions,
} from '../publish/compose-load.js';
import { planSelfLoop } from '../publish/self-loop.js';
import { ipv6Listenable } from '../publish/host-ips.js';
import { checkNameFree } from '../docker/names.js';
import { ERR_NAME_IN_USE, EXIT_RUNTIME, PortpubError, UsageError } from '../errors.js';
import type { PublishRequest } from '../publish/publisher.js';
import { listContainers, liveness, readRecord, removeContainer } from '../registry/containers.js';
import { stateDir, type ServiceState } from '../registry/state.js';
import type { CliContext } from './context.js';
import { backgroundContext, startDetached } from './detach.js';
import { formatServicePlan } from './format.js';
import { addServeOptions, makeLogger, runNameHolders, type ServeOptions } from './options.js';
import { serve, warnSctp } from './serving.js';

const EXAMPLES = `
Examples:
  # serve the ports: of portpub.yaml (or portpub.yml, portpub.json) in this directory
  $ portpub up

  # publish an existing docker-compose.yml's ports, with the services running on this host
  $ portpub up -f docker-compose.yml --target-for web=127.0.0.1 --target-for db=10.0.0.5

  # after editing the file: apply it without dropping connections of unchanged mappings
  $ portpub reload          (or: kill -HUP <pid>)

  # in the background (listed by portpub ps), then stopped
  $ portpub up -d
  $ portpub down
`;

interface UpOptions extends ServeOptions {
  file?: string[];
  projectName?: string;
  profile?: string[];
  targetFor: Record<string, string>;
  dryRun: boolean;
  detach: boolean;
  fromRecord?: string;
}

/** registerUp adds `portpub up`. */
export function registerUp(program: Command, ctx: CliContext): void {
  const up = program
    .command('up')
    .description(
      'publish the ports: of every service in a compose-style file, in one process; SIGHUP reloads it',
    )
    .option(
      '-f, --file <file>',
      `config file, repeatable: later files merge over earlier ones as in compose (default: COMPOSE_FILE, else the first of ${DEFAULT_CONFIG_FILES.join(', ')} found here or above, with its compose.override.yaml)`,
      (value: string, prev: string[] | undefined) => [...(prev ?? []), value],
    )
    .option(
      '-p, --project-name <name>',
      'compose project name (default: COMPOSE_PROJECT_NAME, the name: in the file, else the directory name)',
    )
    .option(
      '--profile <name>',
      'activate a compose profile, repeatable (default: COMPOSE_PROFILES)',
      (value: string, prev: string[] | undefined) => [...(prev ?? []), value],
    )
    .option(
      '--target-for <service=host>',
      "target address of a service (repeatable); the default is the file's target, else 127.0.0.1",
      targetForArg,
      {} as Record<string, string>,
    )
    .option('--dry-run', 'read and check the file, print the plan, bind nothing', false)
    .option('-d, --detach', 'serve in the background (see portpub ps, portpub down)', false)
    .addOption(new Option('--from-record <id>').hideHelp())
    .addHelpText('after', EXAMPLES)
    .action(async (opts: UpOptions, cmd: Command) => {
      ctx.setExit(await runUp(opts, ctx, cmd));
    });
  addServeOptions(up);
}

function targetForArg(value: string, prev: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) {
    throw new InvalidArgumentError('expected SERVICE=HOST');
  }
  return { ...prev, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** runUp serves every service of a compose project; SIGHUP re-reads it off the event loop. */
async function runUp(opts: UpOptions, ctx: CliContext, cmd: Command): Promise<number> {
  const logger = makeLogger(opts, ctx.io);
  const projectOpts: ProjectOptions = {
    cwd: process.cwd(),
    ...(opts.file ? { files: opts.file } : {}),
    ...(opts.projectName !== undefined ? { projectName: opts.projectName } : {}),
    ...(opts.profile ? { profiles: opts.profile } : {}),
    targetFor: opts.targetFor,
  };
  const project = loadComposeProject(projectOpts);
  for (const w of project.warnings) logger.warn(w);
  const publish = projectRequests(project);
  if (publish.length === 0) throw nothingToPublish(project);
  if (opts.dryRun) {
    const v6 = await ipv6Listenable();
    ctx.io.stdout.write(formatServicePlan(publish, { ...opts, v6 }));
    warnSctp(
      publish.map((r) => r.mapping),
      logger,
    );
    // Serving this plan would be refused (exit 2): a dry run says why, and still shows the plan.
    const loop = planSelfLoop(publish, opts.defaultHostIp, v6);
    if (loop) logger.warn({ code: loop.code }, loop.message);
    return 0;
  }
  // The state file says which project, and each service's expose: ports and container_name:.
  const identity = {
    configFile: project.files[0]!,
    project: project.name,
    services: serviceStates(project),
  };
  const reload = async () => {
    const next = await loadComposeProjectOffThread(projectOpts);
    for (const w of next.warnings) logger.warn(w);
    identity.services = serviceStates(next);
    return projectRequests(next);
  };
  if (opts.fromRecord !== undefined) {
    // The background half of -d: the same command line, its start and end in the record.
    const record = readRecord(opts.fromRecord);
    if (!record) throw new UsageError(`no such service record: ${opts.fromRecord}`);
    const bg = backgroundContext(record, ctx);
    let code = 1;
    try {
      code = await serve(publish, opts, bg.ctx, logger, identity, reload);
    } finally {
      bg.finish(code);
    }
    return code;
  }
  if (opts.detach) return detachUp(project, publish, ctx, cmd);
  return serve(publish, opts, ctx, logger, identity, reload);
}

/**
 * detachUp is `portpub up -d`: one record named after the project (one portpub serves all its
 * services), served by a background portpub on this same command line. As `docker compose up -d`
 * it prints nothing on stdout and one line per service on stderr once every port is bound.
 */
async function detachUp(
  project: ComposeProject,
  publish: readonly PublishRequest[],
  ctx: CliContext,
  cmd: Command,
): Promise<number> {
  const dir = stateDir();
  for (const r of listContainers(dir)) {
    if (r.kind !== 'up' || r.project !== project.name) continue;
    if (liveness(r) === 'running') {
      throw new PortpubError(
        ERR_NAME_IN_USE,
        `project ${project.name} is already up (portpub pid ${r.state.pid}): ` +
          `portpub down -p ${project.name} stops it`,
        EXIT_RUNTIME,
      );
    }
    removeContainer(r, dir); // stopped earlier: `up -d` starts it afresh, as compose does
  }
  checkNameFree(project.name, runNameHolders());
  const services = [...new Set(publish.map((r) => r.name ?? ''))].filter((n) => n !== '');
  const started = await startDetached(
    {
      kind: 'up',
      project: project.name,
      services,
      name: project.name,
      publish: publish.map((r) => r.mapping),
    },
    cmd,
    ctx,
    dir,
  );
  if ('code' in started) return started.code;
  ctx.io.stderr.write(services.map((s) => ` Service ${s}  Started\n`).join(''));
  return 0;
}

/**
 * nothingToPublish is the start-up error for a project without one published port (exit 2):
 * serving nothing would only wait for a reload that may never come.
 */
function nothingToPublish(project: ComposeProject): UsageError {
  const files = project.files.join(', ');
  const names = project.services.map((s) => s.name);
  return new UsageError(
    `nothing to publish: no service in ${files} has ports: ` +
      (names.length === 0
        ? '(it defines no services)'
        : `(services: ${names.join(', ')}; expose: ports are not published)`),
  );
}

/** serviceStates is what the state file records of each service beside its bindings. */
function serviceStates(project: ComposeProject): ServiceState[] {
  return project.services.map((s) => ({
    name: s.name,
    targetHost: s.target,
    expose: s.expose,
    ...(s.containerName !== undefined ? { containerName: s.containerName } : {}),
  }));
}
