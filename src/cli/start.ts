// `portpub start NAME...` and `portpub restart [-t N] NAME...`, as docker start and docker
// restart: a stopped `portpub run` service runs again from its record, in the background, with
// the same command, variables, links, ports and address; its log goes on in the same file.
import type { Command } from 'commander';
import { ERR_START, EXIT_RUNTIME, PortpubError, UsageError } from '../errors.js';
import {
  findContainer,
  isRunRecord,
  liveness,
  readRecord,
  thisProcess,
  updateState,
  type ContainerRecord,
} from '../registry/containers.js';
import { startAttached } from './attach.js';
import type { CliContext } from './context.js';
import { spawnBackground } from './detach.js';
import { seconds, stopContainer } from './stop.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_START };

/** registerStart adds `portpub start` and `portpub restart`. */
export function registerStart(program: Command, ctx: CliContext): void {
  program
    .command('start')
    .description('start stopped services again')
    .argument('<names...>', 'service names or ids')
    .option(
      '-a, --attach',
      "show the service's output and pass it the signals portpub gets, until it ends; exit " +
        'with its exit code',
      false,
    )
    .option(
      '-i, --interactive',
      "attach the service's stdin (not supported: see the README)",
      false,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  portpub run -d --name web -p 8080:80 -- python3 -m http.server 80\n' +
        '  portpub stop web && portpub start web\n' +
        '  portpub start -a web          # its output here; Ctrl-C stops it\n',
    )
    .action(async (names: string[], opts: { attach: boolean; interactive: boolean }) => {
      if (opts.interactive) {
        throw new UsageError(
          "-i: a service started again runs in the background, with no stdin to attach; run it in the foreground with 'portpub run -i'",
        );
      }
      if (opts.attach) {
        // docker start's words; the attached run's exit code is portpub's.
        if (names.length > 1) {
          throw new UsageError('you cannot start and attach multiple containers at once');
        }
        ctx.setExit(await startAttached(names[0]!, ctx));
        return;
      }
      for (const name of names) {
        await startContainer(findContainer(name), name, ctx);
        ctx.io.stdout.write(`${name}\n`);
      }
    });
  program
    .command('restart')
    .description('stop services, then start them again')
    .argument('<names...>', 'service names or ids')
    .option('-t, --time <seconds>', 'seconds to wait before killing it', seconds, 10)
    .action(async (names: string[], opts: { time: number }) => {
      for (const name of names) {
        const record = findContainer(name);
        // Refused before the stop, so that what cannot start again is left serving.
        refuseNonRun(record, name);
        // Kept through the stop even if run with --rm, as Docker's daemon keeps it.
        updateState(record.id, { keepOnStop: thisProcess() });
        try {
          await stopContainer(record, opts.time * 1000, ctx);
        } catch (err) {
          updateState(record.id, { keepOnStop: undefined });
          throw err;
        }
        const after = readRecord(record.id);
        if (after === undefined) throw new PortpubError(ERR_START, `No such container: ${name}`);
        await startContainer(after, name, ctx);
        ctx.io.stdout.write(`${name}\n`);
      }
    });
}

/** refuseNonRun throws for a record start cannot run again: a plain -d or up -d service. */
function refuseNonRun(record: ContainerRecord, name: string): void {
  if (isRunRecord(record)) return;
  throw new PortpubError(
    ERR_START,
    `${name} is a ${record.kind === 'up' ? 'portpub up -d' : 'portpub -d'} service: it serves ` +
      'its command line, which it read where it started; run that again',
    EXIT_RUNTIME,
  );
}

/**
 * startContainer runs a stopped `run` record again in the background (`run --from-record`, as
 * `run -d` does) and returns once it serves; a running one is left as it is, as docker start
 * leaves it. What a portpub that died without a word left behind is ended first (stop.ts).
 */
export async function startContainer(
  record: ContainerRecord,
  name: string,
  ctx: CliContext,
): Promise<void> {
  refuseNonRun(record, name);
  if (liveness(record) === 'running') return;
  if (record.state.status === 'running') await stopContainer(record, 0, ctx);
  const now = readRecord(record.id);
  if (now === undefined) {
    // Its portpub had died; marking it killed removed it (--rm).
    throw new PortpubError(ERR_START, `No such container: ${name}`, EXIT_RUNTIME);
  }
  // Last run's end and pids go; the next run writes its own.
  updateState(record.id, {
    status: 'created',
    exitCode: undefined,
    finishedAt: undefined,
    pid: undefined,
    procStart: undefined,
    commandPid: undefined,
    commandStart: undefined,
    keepOnStop: undefined,
    restarting: undefined,
    restartCount: undefined,
    bindings: [],
  });
  const started = await spawnBackground(record.id, ['run', '--from-record', record.id], ctx);
  if (!started.ok) {
    // The reason is already on stderr; a --rm record went with its log (spawnBackground).
    const more = record.autoRemove ? 'run with --rm, it was removed' : `see portpub logs ${name}`;
    throw new PortpubError(
      ERR_START,
      `failed to start ${name} (its portpub ended with ${started.code}; ${more})`,
      EXIT_RUNTIME,
    );
  }
}
