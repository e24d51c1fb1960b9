// The lifecycle both serving commands share: bind everything (all or nothing), print the
// bindings, publish them in the state directory for `portpub port`, serve until a stop signal,
// drain, and (for `up`) apply a reload on SIGHUP.
import { formatSpec, type PortMapping } from '../docker/spec.js';
import { formatDuration } from '../duration.js';
import { PortpubError } from '../errors.js';
import type { Logger } from '../logger.js';
import { startPublisher, type Publisher, type PublishRequest } from '../publish/publisher.js';
import { assertEngine, engineLine } from '../engine/index.js';
import {
  readStates,
  removeState,
  stateDir,
  writeState,
  writeStateInSteps,
  type ReloadReport,
  type ServiceState,
} from '../registry/state.js';
import type { Binding } from '../docker/report.js';
import { findPeerLoop, peerLoopError, peerLoopGuard } from '../publish/peer-loop.js';
import { TcpWorkers } from '../workers/pool.js';
import { startObserve, type Observe } from '../observe/start.js';
import type { CliContext, CliHost } from './context.js';
import { formatBindings } from './format.js';
import { publisherOptions, type ServeOptions } from './options.js';

/** Identity is how `portpub port` finds this run: a --name, or the config file of `up`. */
export interface Identity {
  name?: string;
  configFile?: string;
  /** `up`: the compose project, and each service's expose:/container_name: (see State). */
  project?: string;
  services?: ServiceState[];
  /** `up`: the latest reload's outcome, rewritten into the state file after each SIGHUP. */
  lastReload?: ReloadReport;
}

/**
 * serve binds everything (all or nothing), prints the bindings, publishes them in the state
 * directory for `portpub port`, and runs until SIGINT/SIGTERM. With `reload`, SIGHUP applies the
 * configuration it returns; a bad one is logged and the running one kept.
 */
export async function serve(
  publish: PublishRequest[],
  opts: ServeOptions,
  ctx: CliContext,
  logger: Logger,
  identity: Identity,
  reload?: () => Promise<PublishRequest[]>,
): Promise<number> {
  const { io, host } = ctx;
  let forwarding: Publisher;
  let workers: TcpWorkers | undefined;
  let observe: Observe;
  try {
    assertEngine(opts.engine); // --engine native without the addon: fail before binding
    logger.info(engineLine(opts.engine, { tcpShared: opts.tcpWorkers > 1 }));
    workers = await startWorkers(opts, ctx, logger);
    // A hostname target resolved into a loop through other portpubs later on is cut at run time.
    const loopsVia = peerLoopGuard(
      () => forwarding?.bindings ?? [],
      () => readStates(stateDir(), { except: process.pid }),
      (err) => logger.error({ err: err.message }, 'connection cut: a loop through other portpubs'),
    );
    forwarding = await startPublisher({
      ...publisherOptions(publish, opts, logger),
      ...(workers ? { tcpShare: workers } : {}),
      loopsVia,
    });
    observe = await observeServing(forwarding, workers, opts, identity, logger);
  } catch (err) {
    await workers?.destroy();
    if (err instanceof PortpubError) {
      // Once, as every other failure is printed (main.ts), not also as a log line.
      io.stderr.write(`portpub: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  // Signal handlers go in before the state file (callers find this process by it) and before
  // anything is printed: a caller may signal as soon as it reads. A stop signal cuts nothing
  // yet: it is acted on once the loop check below is done.
  const stopped = waitForStop(host, forwarding, workers, opts.drainTimeout, logger);
  const state = publishState(forwarding, identity, logger);
  const offExit = host.onExit(() => void state.drop());
  const applied = { requests: publish };
  const doReload = () =>
    onReload(forwarding, logger, reload, applied, state.rewrite, (report) => {
      identity.lastReload = report;
      void state.rewrite();
    });
  let checked = false;
  let heldReload = false;
  const offReload = host.onReload(() => {
    if (checked) doReload();
    else heldReload = true; // applied once this process has shown it makes no loop
  });
  // The state file first, then the loop check: of two portpubs started together that would
  // forward to each other, the later to look sees the other's file.
  const loop = await peerLoop(forwarding.bindings);
  if (loop) {
    offReload();
    offExit();
    forwarding.destroy();
    await workers?.destroy();
    await state.drop();
    await observe.close();
    stopped.cancel();
    io.stderr.write(`portpub: ${loop.message}\n`);
    return loop.exitCode;
  }
  checked = true;
  if (heldReload) doReload();
  io.stdout.write(
    formatBindings(forwarding.bindings, opts.json, identity.configFile !== undefined),
  );
  try {
    await stopped;
  } finally {
    offReload();
    offExit();
    await state.drop();
    await observe.close();
  }
  return 0;
}

/** observeServing starts the control socket, --metrics and --ui; on failure it cuts `forwarding`. */
function observeServing(
  forwarding: Publisher,
  workers: TcpWorkers | undefined,
  opts: ServeOptions,
  identity: Identity,
  logger: Logger,
): Promise<Observe> {
  return startObserve({
    served: forwarding,
    ...(workers ? { workers: (c: boolean) => workers.report(c) } : {}),
    ...(identity.name !== undefined ? { name: identity.name } : {}),
    ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}),
    ...(opts.ui !== undefined ? { ui: opts.ui } : {}),
    stateDir: stateDir(),
    logger,
  }).catch((err: unknown) => {
    forwarding.destroy();
    throw err;
  });
}

async function startWorkers(
  opts: ServeOptions,
  ctx: CliContext,
  logger: Logger,
): Promise<TcpWorkers | undefined> {
  if (opts.tcpWorkers <= 1) return undefined;
  return TcpWorkers.start({
    count: opts.tcpWorkers - 1,
    logLevel: opts.logLevel,
    logFormat: opts.logFormat ?? (ctx.io.stderr.isTTY ? 'pretty' : 'json'),
    logger,
  });
}

/** publishState writes this run's state file now, and returns how to rewrite and remove it. */
function publishState(
  forwarding: Publisher,
  identity: Identity,
  logger: Logger,
): { rewrite: () => Promise<void>; drop: () => Promise<void> } {
  const dir = stateDir();
  const startedAt = new Date().toISOString();
  const state = () => ({
    pid: process.pid,
    startedAt,
    ...identity,
    bindings: forwarding.bindings,
  });
  const failed = (err: unknown) => {
    // The message says what to do; a stack trace would only bury it.
    logger.warn(
      { err: err instanceof Error ? err.message : String(err), dir },
      'cannot write the state file: `portpub port` will not see this run',
    );
  };
  try {
    writeState(dir, state());
  } catch (err) {
    failed(err);
  }
  // Rewrites (after a reload) go in steps, one at a time, in order; none after the drop.
  let dropped = false;
  let writes = Promise.resolve();
  const rewrite = () => {
    writes = writes.then(async () => {
      if (!dropped) await writeStateInSteps(dir, state()).catch(failed);
    });
    return writes;
  };
  const drop = () => {
    dropped = true;
    removeState(dir, process.pid);
    // A rewrite still under way renames its file in after this: remove it again once done.
    return writes.then(() => removeState(dir, process.pid)).catch(() => undefined);
  };
  return { rewrite, drop };
}

let reloads = 0;

/**
 * onReload applies a new configuration on SIGHUP; a bad one keeps the running one. Either way
 * `report` gets the outcome, which the state file carries for `portpub reload` to print.
 */
function onReload(
  forwarding: Publisher,
  logger: Logger,
  reload: (() => Promise<PublishRequest[]>) | undefined,
  applied: { requests: PublishRequest[] },
  rewrite: () => Promise<void>,
  report: (r: ReloadReport) => void,
): void {
  if (!reload) {
    logger.info('SIGHUP ignored: nothing to reload (use portpub up -f FILE)');
    return;
  }
  logger.info('SIGHUP: reloading the configuration');
  const seq = ++reloads;
  const failed = (err: unknown) => {
    const error = err instanceof Error ? err.message : String(err);
    logger.error({ err: error }, 'reload failed: keeping the running configuration');
    report({ seq, ok: false, error });
  };
  // The file is read off the event loop (compose-load.ts), so traffic flows meanwhile.
  reload()
    .then(async (next) => {
      const r = await forwarding.update(next);
      // The new bindings in the state file first, then the loop check (as at start): a portpub
      // starting meanwhile sees them. A loop through another portpub goes back to what ran.
      await rewrite();
      const loop = await peerLoop(forwarding.bindings);
      if (loop) {
        try {
          await forwarding.update(applied.requests);
        } catch (undo) {
          // What ran cannot be bound again (a port taken meanwhile): the loop must not stay.
          logger.error(
            { err: undo instanceof Error ? undo.message : String(undo) },
            'the configuration before the reload could not be restored: stopping every mapping',
          );
          await forwarding.update([]);
        }
        throw loop;
      }
      applied.requests = next;
      return r;
    })
    .then((r) => {
      logger.info(r, 'reloaded');
      report({ seq, ok: true, added: r.added, removed: r.removed, kept: r.kept });
    }, failed);
}

/**
 * peerLoop is the refusal for a loop these bindings make through other running portpubs
 * (peer-loop.ts), or undefined. A state directory that cannot be read has been reported when
 * this process's own state file could not be written; it hides no loop worth failing over.
 */
async function peerLoop(bindings: readonly Binding[]): Promise<PortpubError | undefined> {
  let peers;
  try {
    peers = readStates(stateDir(), { except: process.pid });
  } catch {
    return undefined;
  }
  const path = await findPeerLoop(process.pid, bindings, peers);
  return path && peerLoopError(path);
}

/** waitForStop serves until SIGINT/SIGTERM, then drains; a second signal cuts at once. */
function waitForStop(
  host: CliHost,
  forwarding: Publisher,
  workers: TcpWorkers | undefined,
  drainTimeoutMs: number,
  logger: Logger,
): Promise<void> & { cancel: () => void } {
  let cancel = () => undefined as void;
  const stopped = new Promise<void>((resolve) => {
    // Signal listeners do not keep Node running: without this, a process serving nothing (a
    // reload down to zero ports) would end with exit 13 while this promise is still pending.
    const keepAlive = setInterval(() => undefined, 2 ** 30);
    const done = () => {
      clearInterval(keepAlive);
      resolve();
    };
    let stopping = false;
    const off = host.onStop((signal) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: cutting open connections');
        forwarding.destroy();
        void workers?.destroy();
        return;
      }
      stopping = true;
      const open = openCounts(forwarding);
      logger.info(
        { signal, drainTimeoutMs, ...open },
        `stopping: draining open connections (${open.connections} TCP, ${open.flows} UDP ` +
          `flows) for up to ${formatDuration(drainTimeoutMs)}; a second ${signal === 'SIGINT' ? 'Ctrl-C' : 'signal'} cuts them`,
      );
      Promise.all([forwarding.close(drainTimeoutMs), workers?.close(drainTimeoutMs)]).then(
        () => {
          off();
          logger.info('stopped');
          done();
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          forwarding.destroy();
          void (workers?.destroy() ?? Promise.resolve()).finally(done);
        },
      );
    });
    cancel = () => {
      off();
      done();
    };
  });
  return Object.assign(stopped, { cancel: () => cancel() });
}

/** openCounts is what a drain waits for in this process: TCP connections and UDP flows. */
function openCounts(forwarding: Publisher): { connections: number; flows: number } {
  let connections = 0;
  let flows = 0;
  for (const s of forwarding.stats()) {
    if ('tcp' in s) connections += s.tcp.connectionsActive;
    else flows += s.udp.flowsActive;
  }
  return { connections, flows };
}

/** warnSctp says, for a plan, which mappings parse but cannot be served. */
export function warnSctp(mappings: readonly PortMapping[], logger: Logger): void {
  for (const m of mappings) {
    if (m.protocol === 'sctp') {
      logger.warn({ mapping: formatSpec(m) }, 'sctp parses, but portpub cannot serve it');
    }
  }
}
