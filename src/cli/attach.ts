// `portpub start -a NAME`, as docker start -a: the service starts (or, running already, is joined),
// its output from then on is copied to stdout (its log holds the command's stdout and stderr, in
// one stream, as a non-tty container's output is in one log), the signals portpub gets are passed
// to it, and portpub exits with its exit code once it ends, as docker start -a returns at the
// container's next exit.
import { statSync } from 'node:fs';
import { Writable } from 'node:stream';
import { ERR_START, EXIT_RUNTIME, PortpubError } from '../errors.js';
import {
  attach,
  containerPath,
  findContainer,
  liveness,
  readRecord,
  removeIfAutoRemove,
} from '../registry/containers.js';
import type { CliContext } from './context.js';
import { followLog, logReader } from './logs.js';
import { EXIT_PIPE, watchReader } from './reader-gone.js';
import { startContainer } from './start.js';
import { provenPid } from './stop.js';

/** startAttached runs `start -a NAME` and resolves the exit code. */
export async function startAttached(name: string, ctx: CliContext): Promise<number> {
  const record = findContainer(name);
  // In its restart policy's wait it has no run to attach to: Docker's daemon refuses the attach.
  if (liveness(record) === 'running' && record.state.restarting === true) {
    throw new PortpubError(
      ERR_START,
      `container ${name} is restarting, wait until the container is running`,
      EXIT_RUNTIME,
    );
  }
  const log = containerPath(record.id, 'log');
  // What the log already holds is an earlier run's (or, joining a running one, its past): not shown.
  const read = logReader(log, size(log));
  // Each signal is the service's, as docker start -a forwards them (sig-proxy), to its portpub,
  // which passes it to the command (a second SIGINT or SIGTERM kills it, as under run). One that
  // comes while the service is still starting waits until it runs, where Docker's would be lost
  // (its kill fails on a container not yet running) and a Ctrl-C would leave it running.
  let pending: NodeJS.Signals[] | undefined = [];
  const send = (signal: NodeJS.Signals): void => {
    // A repeat while it starts is one request: two SIGINTs sent back to back would be merged by
    // the kernel, or taken as the second one that kills.
    if (pending !== undefined) {
      if (!pending.includes(signal)) pending.push(signal);
    } else forward(record.id, signal, ctx);
  };
  const offStop = ctx.host.onStop(send);
  const reader = watchReader(ctx.io.stdout);
  const offReload = ctx.host.onReload(() => send('SIGHUP'));
  let detach = (): void => {};
  try {
    // A --rm service whose portpub died is removed by the start below, as by a plain start: not
    // kept for an attacher.
    if (record.autoRemove !== true || liveness(record) === 'running') detach = attach(record.id);
    await startContainer(record, name, ctx);
    const queued = pending;
    pending = undefined;
    for (const signal of queued) forward(record.id, signal, ctx);
    const started = readRecord(record.id);
    const out = serviceOutput(record.id, ctx);
    const going = () => {
      const now = readRecord(record.id);
      return (
        now !== undefined &&
        liveness(now) === 'running' &&
        now.state.restarting !== true &&
        now.state.startedAt === started?.state.startedAt
      );
    };
    await followLog(record.id, read, out, going, reader.signal);
    await new Promise<void>((resolve) => out.end(resolve));
    // Its reader gone, it detaches: the service runs on, as Docker's does when its CLI dies of
    // SIGPIPE (a --rm one is then removed by its own end: nobody is attached).
    if (reader.signal.aborted) return EXIT_PIPE;
    const end = readRecord(record.id);
    if (end === undefined) {
      ctx.io.stderr.write(`portpub: ${name} was removed while attached: its exit code is lost\n`);
      return EXIT_RUNTIME;
    }
    // Ended without a word (its portpub SIGKILLed): 137, as stop records it.
    return end.state.exitCode ?? 137;
  } finally {
    offStop();
    offReload();
    reader.off();
    detach();
    const now = readRecord(record.id);
    if (now !== undefined && liveness(now) !== 'running') removeIfAutoRemove(now);
  }
}

/** forward passes a signal to the service's proven portpub; one that has ended gets nothing. */
function forward(id: string, signal: NodeJS.Signals, ctx: CliContext): void {
  const now = readRecord(id);
  try {
    const pid = now === undefined ? undefined : provenPid(now);
    if (pid !== undefined) ctx.host.kill(pid, signal);
  } catch (err) {
    ctx.io.stderr.write(`portpub: ${(err as Error).message}\n`);
  }
}

/**
 * serviceOutput is where the log's lines go: the command's to stdout, as they came; portpub's own
 * (its JSON lines about this service) are left out, as a docker daemon's own log is, except the
 * warnings and errors and its `portpub: ` messages, which go to stderr, as a foreground
 * `portpub run` prints them.
 */
function serviceOutput(id: string, ctx: CliContext): Writable {
  const short = id.slice(0, 12);
  let partial = '';
  const line = (l: string): void => {
    const own = l.startsWith('portpub: ') ? WARN : ownLevel(l, short);
    if (own === undefined) ctx.io.stdout.write(`${l}\n`);
    else if (own >= WARN) ctx.io.stderr.write(`${l}\n`);
  };
  return new Writable({
    decodeStrings: false,
    write(chunk: string, _enc, done) {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(line);
      done();
    },
    final(done) {
      // A last line with no newline (the command's last words) is the command's.
      if (partial !== '') ctx.io.stdout.write(partial);
      done();
    },
  });
}

/** WARN is pino's warn level. */
const WARN = 40;

/** ownLevel is the level of one of portpub's own log lines about service `short`, else undefined. */
function ownLevel(line: string, short: string): number | undefined {
  if (!line.startsWith('{"level":')) return undefined;
  try {
    const r = JSON.parse(line) as { level?: unknown; container?: unknown };
    return r.container === short && typeof r.level === 'number' ? r.level : undefined;
  } catch {
    return undefined;
  }
}

function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
