// A TCP worker process of --tcp-workers (the main process's side is workers.ts): it serves the
// listening sockets the main process sends it, beside the main process and the other workers,
// until told to stop, and exits at once if the main process goes away.
// argv: worker index, log level, log format.
import type { Server } from 'node:net';
import { createLogger, LOG_LEVELS } from '../logger.js';
import { adoptTcp, TcpForwarder } from '../tcp/forwarder.js';
import type { Forwarder } from '../forwarder.js';
import type { FromWorker, ToWorker, WorkerReport } from './pool.js';

const [index = '0', level = 'info', format = 'json'] = process.argv.slice(2);
const logger = createLogger({
  level: LOG_LEVELS.find((l) => l === level) ?? 'info',
  format: format === 'pretty' ? 'pretty' : 'json',
}).child({ worker: Number(index) });

const forwarders = new Map<number, TcpForwarder>();
/** Forwarders told to stop accepting (a reload removed them) whose connections still drain. */
const draining = new Set<TcpForwarder>();
/** The log fields of each forwarder's binding: how the main process matches a report to it. */
const fieldsOf = new WeakMap<TcpForwarder, Record<string, string>>();
let stopping = false;

function reply(msg: FromWorker): void {
  if (process.connected) process.send!(msg);
}

async function serve(msg: Extract<ToWorker, { op: 'serve' }>, listening: Server): Promise<void> {
  const server = await adoptTcp(listening);
  if (stopping) {
    server.close();
    return;
  }
  const fw = new TcpForwarder(server, { ...msg.options, logger: logger.child(msg.logFields) });
  forwarders.set(msg.id, fw);
  fieldsOf.set(fw, msg.logFields);
  logger.debug(msg.logFields, 'worker serving');
}

/** report is this worker's part of the live views (portpub stats, --metrics, --ui). */
function report(connections: boolean): WorkerReport[] {
  return [...forwarders.values()].map((fw) => {
    // connections() is the shared Forwarder shape; optional until every engine has it.
    const live = (fw as Partial<Forwarder<unknown>>).connections?.bind(fw);
    return {
      logFields: fieldsOf.get(fw) ?? {},
      stats: fw.stats(),
      ...(connections && live ? { connections: live() } : {}),
    };
  });
}

function stop(drainTimeoutMs: number): void {
  if (stopping) return;
  stopping = true;
  const all = [...forwarders.values(), ...draining];
  setTimeout(() => {
    for (const fw of all) fw.destroy();
  }, drainTimeoutMs).unref();
  void Promise.all(all.map((fw) => fw.close())).then(() => process.exit(0));
}

function destroy(): never {
  for (const fw of [...forwarders.values(), ...draining]) fw.destroy();
  process.exit(0);
}

process.on('message', (msg: ToWorker, handle: unknown) => {
  switch (msg.op) {
    case 'serve':
      serve(msg, handle as Server).catch((err: unknown) => {
        logger.error({ ...msg.logFields, err: (err as Error).message }, 'worker cannot serve');
      });
      break;
    case 'unserve': {
      const fw = forwarders.get(msg.id);
      forwarders.delete(msg.id);
      if (fw) {
        // close() closes the listening descriptor at once; its open connections drain after.
        draining.add(fw);
        void fw.close().then(() => draining.delete(fw));
      }
      reply({ op: 'unserved', id: msg.id });
      break;
    }
    case 'stop':
      stop(msg.drainTimeoutMs);
      break;
    case 'destroy':
      destroy();
      break;
    case 'report':
      reply({ op: 'report', seq: msg.seq, forwarders: report(msg.connections) });
  }
});
// The main process is gone (exited or killed): nothing may outlive it.
process.on('disconnect', destroy);
// Signals sent to the whole process group (a terminal's Ctrl-C, `kill -TERM -PGID`, a service
// manager stopping the group) reach the workers too: the main process decides what happens and
// tells them, with its --drain-timeout.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

reply({ op: 'ready' });
