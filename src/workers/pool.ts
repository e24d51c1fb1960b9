// --tcp-workers: TCP accepting and relaying spread over more processes. The main process still
// binds every socket (bind-to-allocate, all-or-nothing, reloads) and serves it; it also hands
// each listening TCP socket to its worker processes, which accept from the same socket, and the
// kernel gives each new connection to one of the processes. UDP never leaves the main process:
// a client's flow has to live in one place. The worker side is tcp-worker.ts.
import { fork, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { PortpubError } from '../errors.js';
import { HEAP_FLAGS } from '../heap-flags.js';
import type { Logger, LogFormat } from '../logger.js';
import type { TcpShare } from '../publish/publisher.js';
import type { TcpForwarderOptions, TcpStats } from '../tcp/forwarder.js';
import type { ConnectionInfo } from '../forwarder.js';
import { ERR_WORKER } from '../errors.js';

/** WorkerServe is what a worker needs to serve one listening socket (JSON over the IPC channel). */
export interface WorkerServe {
  op: 'serve';
  id: number;
  options: Omit<TcpForwarderOptions, 'logger'>;
  /** Fields of the binding's log lines (service, binding, target). */
  logFields: Record<string, string>;
}

/** Messages to a worker; 'serve' comes with the listening socket's handle. */
export type ToWorker =
  | WorkerServe
  | { op: 'unserve'; id: number }
  | { op: 'stop'; drainTimeoutMs: number }
  | { op: 'destroy' }
  | { op: 'report'; seq: number; connections: boolean };

/** WorkerReport is a worker's counters (and live connections, if asked) for one served socket. */
export interface WorkerReport {
  logFields: Record<string, string>;
  stats: TcpStats;
  connections?: ConnectionInfo[];
}

/** Messages from a worker. */
export type FromWorker =
  | { op: 'ready' }
  | { op: 'unserved'; id: number }
  | { op: 'report'; seq: number; forwarders: WorkerReport[] };

/** The worker entry point: from dist/workers.js and from src/workers.ts alike, the built one. */
const WORKER_ENTRY = fileURLToPath(new URL('./worker.js', import.meta.url));

/** How long a worker may take to start before the run is given up. */
const READY_TIMEOUT_MS = 10_000;
/** After its drain time, how long a stopping worker gets before it is killed. */
const EXIT_GRACE_MS = 2_000;

interface Worker {
  index: number;
  child: ChildProcess;
  exited: Promise<void>;
  /** Replies awaited per served id, resolved by 'unserved' or by the worker's exit. */
  unserving: Map<number, () => void>;
  /** Answers awaited to 'report' requests, by sequence number. */
  reports: Map<number, (r: WorkerReport[]) => void>;
  /** The counters of its last answer: stand-in for a late answer, and its total once it exited. */
  lastReport: WorkerReport[];
}

export interface TcpWorkersOptions {
  /** Worker processes to start (the main process serves too). */
  count: number;
  logLevel: string;
  logFormat: LogFormat;
  logger: Logger;
}

/**
 * TcpWorkers is the main process's side of the worker processes. A worker that dies is logged
 * and not replaced: the listening sockets stay with the other processes, so nothing stops
 * being served, only that worker's open connections are lost.
 */
export class TcpWorkers implements TcpShare {
  private readonly workers: Worker[] = [];
  private stopping = false;
  private nextReport = 1;

  private constructor(private readonly logger: Logger) {}

  /** start forks the workers and waits until each is ready; if one fails, none is left running. */
  static async start(options: TcpWorkersOptions): Promise<TcpWorkers> {
    const pool = new TcpWorkers(options.logger);
    try {
      await Promise.all(
        Array.from({ length: options.count }, (_, i) => pool.spawn(i + 1, options)),
      );
    } catch (err) {
      pool.kill();
      await Promise.all(pool.workers.map((w) => w.exited));
      throw err;
    }
    return pool;
  }

  /** serve hands a listening TCP server to every worker, to accept from beside this process. */
  serve(
    id: number,
    server: Server,
    options: WorkerServe['options'],
    logFields: WorkerServe['logFields'],
  ): void {
    const msg: ToWorker = { op: 'serve', id, options, logFields };
    for (const w of this.workers) {
      if (alive(w)) w.child.send(msg, server, (err) => err && this.sendFailed(w, err));
    }
  }

  /**
   * unserve makes every worker stop accepting on a socket (its open connections there drain);
   * resolves once each has closed its copy of the listener, so the port is free to bind again.
   */
  unserve(id: number): Promise<void> {
    return Promise.all(
      this.workers.filter(alive).map(
        (w) =>
          new Promise<void>((resolve) => {
            w.unserving.set(id, resolve);
            this.send(w, { op: 'unserve', id });
          }),
      ),
    ).then(() => undefined);
  }

  /**
   * report asks every live worker for its counters (the live views sum them with this
   * process's). So that counters never go down (Prometheus would read a reset), a worker that
   * does not answer within timeoutMs counts with its last answer, and one that exited with its
   * last answer and no connections open.
   */
  report(connections: boolean, timeoutMs = 1_000): Promise<WorkerReport[]> {
    const seq = this.nextReport++;
    const asks = this.workers.map((w) =>
      !alive(w)
        ? Promise.resolve(
            w.lastReport.map((r) => ({ ...r, stats: { ...r.stats, connectionsActive: 0 } })),
          )
        : new Promise<WorkerReport[]>((resolve) => {
            const timer = setTimeout(() => done(w.lastReport), timeoutMs);
            const done = (r: WorkerReport[]) => {
              clearTimeout(timer);
              w.reports.delete(seq);
              resolve(r);
            };
            w.reports.set(seq, done);
            this.send(w, { op: 'report', seq, connections });
          }),
    );
    return Promise.all(asks).then((all) => all.flat());
  }

  /**
   * close stops every worker: they stop accepting, let open connections finish for up to
   * drainTimeoutMs, and exit; one still there EXIT_GRACE_MS later is killed. Idempotent.
   */
  close(drainTimeoutMs: number): Promise<void> {
    return this.stopAll({ op: 'stop', drainTimeoutMs }, drainTimeoutMs + EXIT_GRACE_MS);
  }

  /** destroy makes every worker cut its connections and exit now; killed if it does not. */
  destroy(): Promise<void> {
    return this.stopAll({ op: 'destroy' }, EXIT_GRACE_MS);
  }

  /**
   * stopAll sends msg to every live worker and resolves once all have exited; any still running
   * killAfterMs later is killed.
   */
  private async stopAll(msg: ToWorker, killAfterMs: number): Promise<void> {
    this.stopping = true;
    for (const w of this.workers) if (alive(w)) this.send(w, msg);
    const timer = setTimeout(() => this.kill(), killAfterMs);
    await Promise.all(this.workers.map((w) => w.exited));
    clearTimeout(timer);
  }

  private spawn(index: number, options: TcpWorkersOptions): Promise<void> {
    const child = fork(WORKER_ENTRY, [String(index), options.logLevel, options.logFormat], {
      // stdout is the main process's alone (it carries the mappings); logs share stderr.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: [...process.execArgv, ...HEAP_FLAGS],
    });
    const worker: Worker = {
      index,
      child,
      unserving: new Map(),
      reports: new Map(),
      lastReport: [],
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
    };
    this.workers.push(worker);
    child.on('message', (msg: FromWorker) => {
      if (msg.op === 'unserved') {
        worker.unserving.get(msg.id)?.();
        worker.unserving.delete(msg.id);
      } else if (msg.op === 'report') {
        worker.lastReport = msg.forwarders.map(({ logFields, stats }) => ({ logFields, stats }));
        worker.reports.get(msg.seq)?.(msg.forwarders);
      }
    });
    child.once('exit', (code, signal) => {
      for (const done of worker.unserving.values()) done();
      worker.unserving.clear();
      for (const done of [...worker.reports.values()]) done(worker.lastReport);
      if (!this.stopping) {
        this.logger.error(
          { worker: index, pid: child.pid, code, signal },
          'TCP worker exited: its open connections were lost; the other processes keep serving',
        );
      }
    });
    child.on('error', (err) =>
      this.logger.error({ worker: index, err: err.message }, 'TCP worker error'),
    );
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        reject(new PortpubError(ERR_WORKER, `TCP worker ${index} did not start: ${why}`));
      };
      const timer = setTimeout(
        () => fail(`not ready within ${READY_TIMEOUT_MS} ms`),
        READY_TIMEOUT_MS,
      );
      child.once('error', (err) => fail(err.message));
      child.once('exit', (code, signal) => fail(`exited (${signal ?? `code ${code}`})`));
      child.once('message', (msg: FromWorker) => {
        if (msg.op !== 'ready') return fail(`unexpected message ${JSON.stringify(msg)}`);
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private send(w: Worker, msg: ToWorker): void {
    w.child.send(msg, (err) => err && this.sendFailed(w, err));
  }

  private sendFailed(w: Worker, err: Error): void {
    // The channel is gone: the worker has exited or is exiting; its 'exit' says so.
    if (alive(w))
      this.logger.warn({ worker: w.index, err: err.message }, 'cannot reach a TCP worker');
  }

  private kill(): void {
    for (const w of this.workers) if (alive(w)) w.child.kill('SIGKILL');
  }
}

function alive(w: Worker): boolean {
  return w.child.exitCode === null && w.child.signalCode === null;
}
