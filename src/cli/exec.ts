// `portpub exec [OPTIONS] NAME COMMAND [ARG...]`: a command in a running `portpub run` service, as
// docker exec runs one in a container: in the service's network (its own 127.0.0.1 and ports),
// mount (its /etc/hosts), UTS (its hostname) and PID namespaces (it ends when the service does),
// with the service's environment and working directory; -d, -e, --env-file, -i, -t and -w as
// docker exec has them. For a `run --network host` service the command runs on the host with the
// service's variables. Everything after COMMAND is the command's (passThroughOptions).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { Command } from 'commander';
import { ERR_EXEC, EXIT_RUNTIME, PortpubError, UsageError } from '../errors.js';
import { agentOf, enterArgs, requireTool } from '../netns/enter.js';
import { applyUserVariables, parseEnvFile, validateEnv } from '../netns/env.js';
import { findExecutable } from '../netns/tty.js';
import {
  findContainer,
  isRunRecord,
  liveness,
  readRecord,
  type ContainerRecord,
} from '../registry/containers.js';
import { killExecs, recordExec } from '../registry/execs.js';
import type { CliContext } from './context.js';
import { requireTty, runWithEnv } from './run-with-env.js';
import { checkWorkdir, collect, readBytes } from './run.js';

const EXAMPLES = `
Examples:
  # a shell in the service's network, hostname, /etc/hosts and variables
  $ portpub exec -it web bash

  # the service's own 127.0.0.1: a port it does not publish
  $ portpub exec web curl -s http://127.0.0.1:5000/

  # a variable of its own, and a command left running in the background
  $ portpub exec -e DEBUG=1 db env
  $ portpub exec -d db sh -c 'sleep 60'`;

interface ExecOptions {
  detach: boolean;
  env: string[];
  envFile: string[];
  interactive: boolean;
  tty: boolean;
  workdir?: string;
}

/** registerExec adds `portpub exec`. */
export function registerExec(program: Command, ctx: CliContext): void {
  program
    .command('exec')
    .description(
      'run a command in a running service, as docker exec does: in its network, with its ' +
        'hostname, /etc/hosts and variables',
    )
    .argument('<name>', 'the service (name or id)')
    .argument(
      '<command...>',
      "the program to run and its arguments (all after NAME are the command's)",
    )
    .option('-d, --detach', 'run it in the background (no terminal; its output is dropped)', false)
    .option('-e, --env <KEY=VALUE>', 'set a variable for the command (repeatable)', collect, [])
    .option('--env-file <file>', 'read variables from a file (repeatable)', collect, [])
    .option('-i, --interactive', 'keep stdin attached to the command', false)
    .option('-t, --tty', "run the command on a terminal of its own (util-linux's script)", false)
    .option('-w, --workdir <dir>', "the command's working directory (default: the service's)")
    .addHelpText('after', EXAMPLES)
    .passThroughOptions()
    .action(async (name: string, words: string[], opts: ExecOptions) => {
      // `exec NAME -- COMMAND`, as `run -- COMMAND` is written: no program is named `--`.
      const [command, ...args] = words[0] === '--' ? words.slice(1) : words;
      if (command === undefined) {
        throw new UsageError("'portpub exec' requires at least 2 arguments: NAME and COMMAND");
      }
      ctx.setExit(await execCommand(name, command, args, opts, ctx));
    });
}

async function execCommand(
  name: string,
  command: string,
  args: string[],
  opts: ExecOptions,
  ctx: CliContext,
): Promise<number> {
  // What is wrong with the request is said before the service is looked at, as docker exec does.
  if (opts.workdir !== undefined) checkWorkdir(opts.workdir);
  const script = opts.tty && !opts.detach ? requireTty(opts.interactive) : undefined;
  const hostEnv = process.env;
  const user = [
    ...opts.envFile.flatMap((f) => parseEnvFile(readBytes(f), f, hostEnv)),
    ...opts.env.map((e) => validateEnv(e, hostEnv)),
  ];
  const record = findContainer(name);
  const pid = runningPid(record);
  const vars = new Map(record.state.env ?? []);
  // -t: TERM=xterm under the user's -e, as the daemon sets it for docker exec -t.
  if (script !== undefined && !vars.has('TERM')) vars.set('TERM', 'xterm');
  applyUserVariables(vars, user);
  const env = Object.fromEntries(vars);
  // In a network of its own the default is nsenter's: the agent's directory, the service's.
  const workdir = opts.workdir ?? record.workdir ?? record.state.cwd;
  const within =
    record.network === 'host'
      ? undefined
      : {
          program: requireTool('nsenter', hostEnv.PATH),
          args: enterArgs(agentOf(pid, record.name), workdir),
          setsid: requireTool('setsid', hostEnv.PATH),
        };
  const cwd = within !== undefined || workdir === undefined ? {} : { cwd: workdir };
  const childEnv = within !== undefined ? env : { ...hostEnv, ...env };
  // Checked here, so that it fails as under run, before anything starts: 127 or 126 and portpub's
  // line, not nsenter's. The service sees the host's filesystem: this is the search it would make.
  const missing = cannotRun(command, childEnv.PATH);
  if (missing !== undefined) {
    ctx.io.stderr.write(`portpub: ${command}: ${missing.why}\n`);
    return missing.code;
  }
  // On the host's network nothing ties the command to the service: it is recorded, and the
  // service's end kills it (registry/execs.ts), as a PID namespace ends it in a network of its own.
  const note =
    within === undefined ? (started: number) => noteExec(record, started) : () => undefined;
  if (opts.detach) {
    const program = within?.program ?? command;
    const programArgs = within ? [...within.args, '--', command, ...args] : args;
    return detached(program, programArgs, childEnv, cwd.cwd, note);
  }
  const tty = script === undefined ? {} : { tty: script };
  return runWithEnv(command, args, env, {
    stderr: ctx.io.stderr,
    stdin: opts.interactive,
    ...tty,
    ...cwd,
    ...(within !== undefined ? { within } : {}),
    onSpawn: note,
    // On a terminal of its own the command is in script's session, out of script's group.
    onCommandPid: note,
  });
}

/**
 * noteExec records a process exec started in a --network host service. The service records its
 * run's end before it kills what exec started: if the record says the run exec joined has ended
 * (its portpub gone, or another run, or a restart's wait), what it recorded is killed now.
 */
function noteExec(record: ContainerRecord, started: number): void {
  recordExec(record.id, started);
  const now = readRecord(record.id);
  const same =
    now !== undefined &&
    liveness(now) === 'running' &&
    now.state.pid === record.state.pid &&
    now.state.startedAt === record.state.startedAt &&
    now.state.restarting !== true;
  if (!same) killExecs(record.id);
}

/** runningPid is the pid of the portpub serving a running `run` record, or throws ERR_EXEC. */
function runningPid(record: ContainerRecord): number {
  if (!isRunRecord(record)) {
    throw new PortpubError(
      ERR_EXEC,
      `${record.name} publishes ports only (portpub ${record.kind === 'up' ? 'up ' : ''}-d): ` +
        'it runs no command to join',
      EXIT_RUNTIME,
    );
  }
  const pid = record.state.pid;
  if (liveness(record) !== 'running' || pid === undefined) {
    throw new PortpubError(ERR_EXEC, `container ${record.id} is not running`, EXIT_RUNTIME);
  }
  if (record.state.restarting === true) {
    throw new PortpubError(
      ERR_EXEC,
      `Container ${record.id} is restarting, wait until the container is running`,
      EXIT_RUNTIME,
    );
  }
  return pid;
}

/** cannotRun says why COMMAND cannot be executed (a shell's 127 or 126), or undefined. */
function cannotRun(
  command: string,
  path: string | undefined,
): { code: number; why: string } | undefined {
  // ./x is the command's directory's (the service's, or -w), not portpub's: nsenter judges it.
  if (command.includes('/') && !isAbsolute(command)) return undefined;
  if (findExecutable(command, path) !== undefined) return undefined;
  // A file named with a slash that is there but cannot be executed (no x bit, a directory): 126.
  if (command.includes('/') && existsSync(command)) return { code: 126, why: 'permission denied' };
  return { code: 127, why: 'command not found' };
}

/** detached starts the command in the background, its output dropped, and resolves 0 once it runs. */
function detached(
  program: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string | undefined,
  onSpawn: (pid: number) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      env,
      ...(cwd !== undefined ? { cwd } : {}),
      detached: true,
      stdio: 'ignore',
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new PortpubError(ERR_EXEC, `${program}: ${err.code ?? err.message}`, EXIT_RUNTIME, {
          cause: err,
        }),
      );
    });
    child.once('spawn', () => {
      child.unref();
      onSpawn(child.pid!);
      resolve(0);
    });
  });
}
