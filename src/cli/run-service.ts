// The life of one `portpub run` service in its own namespaces: links resolved, the private
// /etc/hosts written, the agent started, every -p bound (all or nothing) with dialers into the
// namespace, conduits for its links, the command started; then it serves until the command ends
// or a stop signal, and takes everything down: nothing stays bound or running afterwards.
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { linkEnv, parseLink, type LinkPort } from '../docker/links.js';
import { EXIT_RUNTIME, PortpubError } from '../errors.js';
import type { Logger } from '../logger.js';
import { serviceEnv } from '../netns/env.js';
import { hostsFile } from '../netns/hosts.js';
import { ttyCommand } from '../netns/tty.js';
import { dialLink, dialLinkUdp, relay, serveLinks, type LinkServer } from '../netns/relay.js';
import { hostPeer, udpConduit, type OpenPeer } from '../netns/udp-link.js';
import { exitStatus, findInit, noInit, Sandbox, UNSHARE_NOISE } from '../netns/sandbox.js';
import { startPublisher, type Publisher, type PublishRequest } from '../publish/publisher.js';
import {
  containerPath,
  findContainer,
  isRunService,
  liveness,
  markExited,
  removeIfAutoRemove,
  updateState,
  type ContainerRecord,
} from '../registry/containers.js';
import { selectBindings } from '../registry/queries.js';
import {
  processStartTime,
  readStates,
  removeState,
  stateDir,
  writeState,
} from '../registry/state.js';
import type { CliContext } from './context.js';
import { keepOutput, type KeptOutput } from './run-output.js';
import { requireTty } from './run-with-env.js';
import type { ServeOptions } from './options.js';
import { observeOptions, startObserve, type Observe } from '../observe/start.js';
import { ERR_LINK } from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_LINK };

/**
 * OUTPUT_GRACE_MS bounds the wait for the command's output once its namespace is gone (its pipes
 * then close at once; the bound only keeps a stuck stream from holding the exit).
 */
const OUTPUT_GRACE_MS = 2_000;

export interface RunMode {
  /** The background half of -d: tells its starter over IPC when the service runs. */
  detached: boolean;
  /**
   * --restart (cli/restarts.ts): asked at an end no stop asked for; true leaves the record and
   * the state file to the wait before the next run.
   */
  again?: (code: number) => boolean;
  /** --restart: whether a stop came since the first restart (while no run listened for one). */
  stopped?: () => boolean;
}

/** ResolvedLink is one --link: what the recipient sees, and how to reach the service. */
interface ResolvedLink {
  alias: string;
  name: string;
  /** The short id for the hosts line, when the service has a record. */
  hostname?: string;
  ip: string;
  ports: LinkPort[];
  env: Record<string, string>;
  dial: (port: number) => Promise<net.Socket>;
  /** Flows to a UDP port of the service. */
  openUdp: (port: number) => OpenPeer;
}

/** runContainer runs the record's service to its end and resolves its exit code. */
export async function runContainer(
  record: ContainerRecord,
  opts: ServeOptions,
  ctx: CliContext,
  logger: Logger,
  mode: RunMode,
): Promise<number> {
  const dir = stateDir();
  const shortId = record.id.slice(0, 12);
  // Docker's: the short id unless --hostname named one.
  const hostname = record.hostname ?? shortId;
  const log = logger.child({ container: shortId, name: record.name });
  let box: Sandbox | undefined;
  let forwarding: Publisher | undefined;
  let links: LinkServer | undefined;
  let conduits: (() => void)[] = [];
  let env: [string, string][] = [];
  let observe: Observe | undefined;
  let output: KeptOutput | undefined;
  const teardown = async () => {
    await observe?.close();
    forwarding?.destroy();
    links?.close();
    for (const stop of conduits) stop();
    box?.destroy();
    await box?.closed;
    await output?.done(OUTPUT_GRACE_MS);
  };
  let stopRequested = false;
  let killed = false;
  // -i on a terminal: the command reads it, so it stays in the terminal's process group (see
  // SandboxOptions.ownSession) and hears the terminal's Ctrl-C itself.
  const tty = !mode.detached && record.interactive && process.stdin.isTTY === true;
  // In the background (run -d records it off; `start` runs any record there) nothing can be
  // attached: the command's stdin is none, and under -t a pipe nobody writes (agent.ts).
  const interactive = record.interactive && !mode.detached;
  try {
    const resolved = resolveLinks(record, dir);
    const hosts = containerPath(record.id, 'hosts', dir);
    writeFileSync(
      hosts,
      hostsFile(
        { ip: record.ip, hostname },
        resolved.map((l) => ({
          alias: l.alias,
          name: l.name,
          ip: l.ip,
          ...(l.hostname !== undefined ? { hostname: l.hostname } : {}),
        })),
        record.addHosts ?? [],
      ),
    );
    const hostnameFile = containerPath(record.id, 'hostname', dir);
    writeFileSync(hostnameFile, `${hostname}\n`);
    const mounts = [{ source: hosts, target: '/etc/hosts' }];
    if (existsSync('/etc/hostname')) {
      mounts.push({ source: hostnameFile, target: '/etc/hostname' });
    }
    // --init: looked up at each start (a record started again may find it gone).
    const init = record.init === true ? findInit(process.env.PATH) : undefined;
    if (record.init === true && init === undefined) throw noInit();
    // The output is relayed (unshare's noise dropped) and, in the foreground, kept for
    // `portpub logs`; in the background portpub's own stdout and stderr are the log file already.
    box = await Sandbox.start({
      hostname,
      mounts,
      ...(init !== undefined ? { init } : {}),
      stdio: [interactive ? 'inherit' : 'ignore', 'pipe', 'pipe'],
      ownSession: !tty,
    });
    const sandbox = box;
    output = keepOutput(
      { stdout: box.child.stdout, stderr: box.child.stderr },
      ctx.io,
      mode.detached ? undefined : containerPath(record.id, 'log', dir),
      [UNSHARE_NOISE],
      () => sandbox.signalled('SIGPIPE'),
    );
    const publish: PublishRequest[] = record.publish.map((mapping) => ({
      mapping,
      targetHost: record.ip,
      dial:
        mapping.protocol === 'udp'
          ? () => sandbox.dialUdp(mapping.targetPort)
          : () => sandbox.dialTcp(mapping.targetPort),
    }));
    if (publish.length > 0) {
      forwarding = await startPublisher({
        publish,
        defaultHostIp: opts.defaultHostIp,
        tcp: {
          connectTimeoutMs: opts.connectTimeout,
          idleTimeoutMs: opts.idleTimeout,
          maxConnections: opts.maxConnections,
        },
        udp: { flowTimeoutMs: opts.udpTimeout, maxFlows: opts.maxUdpFlows },
        logger: log,
      });
    }
    observe = await startObserve(observeOptions(forwarding, record.name, opts, dir, log));
    const exposed = (protocol: string) =>
      new Set(record.exposed.filter((p) => p.protocol === protocol).map((p) => p.port));
    links = await serveLinks(
      containerPath(record.id, 'link.sock', dir),
      { tcp: exposed('tcp'), udp: exposed('udp') },
      { tcp: (port) => sandbox.dialTcp(port), udp: (port) => sandbox.dialUdp(port) },
    );
    conduits = await openConduits(sandbox, resolved);

    const linkVars = resolved.flatMap((l) =>
      linkEnv({ parent: record.name, alias: l.alias, ip: l.ip, ports: l.ports, env: l.env }),
    );
    env = serviceEnv({ hostname, links: linkVars, user: record.userEnv, tty: record.tty === true });
    // -t: script(1) runs the command on a terminal of its own (netns/tty.ts).
    const run = ttyCommand(
      record.tty === true ? requireTty(false) : undefined,
      record.command,
      record.args,
      env.find(([k]) => k === 'PATH')?.[1],
    );
    await sandbox.startCommand(run.command, run.args, env, interactive, run.tty, record.workdir);
    const never = sandbox.ended;
    if (never?.error !== undefined) {
      // Not found (127) or not executable (126): the start failed, as `docker run` reports it.
      await teardown();
      const code = exitStatus(never);
      finish(record, dir, code);
      notify(mode, { t: 'failed', code, message: `${record.command}: ${never.error}` });
      return code;
    }
  } catch (err) {
    await teardown();
    const code = err instanceof PortpubError ? err.exitCode : EXIT_RUNTIME;
    finish(record, dir, code);
    notify(mode, { t: 'failed', code, message: (err as Error).message });
    throw err;
  }
  const sandbox = box;
  const startedAt = new Date().toISOString();
  const bindings = forwarding?.bindings ?? [];
  writeState(dir, { pid: process.pid, startedAt, name: record.name, bindings });
  const offExit = ctx.host.onExit(() => removeState(dir, process.pid));
  updateState(
    record.id,
    {
      status: 'running',
      pid: process.pid,
      ...procStart(),
      startedAt,
      bindings,
      env,
      restarting: undefined,
    },
    dir,
  );
  log.info({ ports: bindings.length }, 'service started');

  // The first stop signal goes to the command, once: a terminal's Ctrl-C reaches only portpub
  // unless the command reads the terminal (then it has had it already). A second one ends
  // everything at once.
  const offStop = ctx.host.onStop((signal) => {
    if (stopRequested) {
      log.warn({ signal }, 'second signal: killing the service');
      killed = true;
      sandbox.destroy();
      return;
    }
    stopRequested = true;
    log.info({ signal }, 'stopping: signal passed to the service');
    if (!(signal === 'SIGINT' && tty)) sandbox.signal(signal);
  });
  if (mode.stopped?.() === true) {
    // A stop came while this run was being set up: it is this run's.
    stopRequested = true;
    log.info({ signal: 'SIGTERM' }, 'stopping: signal passed to the service');
    sandbox.signal('SIGTERM');
  }
  notify(mode, { t: 'running' });

  const exit = await sandbox.exited;
  offStop();
  let code = exitStatus(exit);
  if (killed) {
    // Killed as asked, as docker kill would: 137, not a namespace that failed.
    code = 128 + osConstants.signals.SIGKILL;
    log.info({ exitCode: code }, 'service killed');
  } else if (exit.error === 'the namespace agent died') {
    log.error({ agent: sandbox.agentExit }, 'the namespace agent died: the service is down');
    code = EXIT_RUNTIME;
  } else {
    log.info({ exitCode: code }, 'service exited');
  }
  // In the foreground a reader of its output gone ends it, policy or not: Docker's CLI dies of
  // that SIGPIPE, and this portpub, the service itself, would run it again for nobody.
  const readerGone = output?.readerGone === true;
  if (readerGone) log.info({ exitCode: code }, 'not restarted: the reader of its output went away');
  const again = !stopRequested && !killed && !readerGone && mode.again?.(code) === true;
  if (again) log.info({ exitCode: code }, 'restarting: its --restart policy runs it again');
  links.close();
  if (forwarding) await forwarding.close(opts.drainTimeout);
  await teardown();
  offExit();
  if (again) {
    // Still provable by stop while it waits, with no ports: they are closed.
    writeState(dir, { pid: process.pid, startedAt, name: record.name, bindings: [] });
  } else {
    removeState(dir, process.pid);
    finish(record, dir, code);
  }
  return code;
}

/** finish records how the service ended, or removes it (--rm). */
function finish(record: ContainerRecord, dir: string, code: number): void {
  removeIfAutoRemove(markExited(record.id, code, dir), dir);
}

function procStart(): { procStart?: string } {
  const start = processStartTime(process.pid);
  return start === undefined ? {} : { procStart: start };
}

/** notify tells the `run -d` that started this process how the start went (IPC, when present). */
function notify(
  mode: RunMode,
  message: { t: 'running' } | { t: 'failed'; code: number; message: string },
): void {
  if (!mode.detached || !process.send || !process.connected) return;
  process.send(message, undefined, {}, () => {
    if (message.t === 'running' && process.connected) process.disconnect();
  });
}

/**
 * resolveLinks reads each --link as Docker's ParseLink does and finds the service: a running
 * `portpub run` service by name or id (reached through its link socket), else a service of a
 * running portpub on the host (reached at its target address). Each gets an address of its own
 * inside the recipient, where the conduit listens.
 */
function resolveLinks(record: ContainerRecord, dir: string): ResolvedLink[] {
  const used = new Set([record.ip]);
  return record.links.map((value) => {
    const { name, alias } = parseLink(value);
    let container: ContainerRecord | undefined;
    // A detached `portpub -d` is linked through its state file, below; its record gives the id.
    let plain: ContainerRecord | undefined;
    try {
      container = findContainer(name, dir);
      if (container.network === 'host' && container.kind !== 'serve' && container.kind !== 'up') {
        throw new PortpubError(
          ERR_LINK,
          `cannot link to /${container.name}: it runs on the host's network (--network host), ` +
            'with no address or ports of its own to link',
          EXIT_RUNTIME,
        );
      }
      if (!isRunService(container)) {
        if (container.kind === 'serve' && container.name === name) plain = container;
        container = undefined;
      }
    } catch (err) {
      if ((err as PortpubError).code === ERR_LINK) throw err;
      container = undefined;
    }
    if (container) {
      if (liveness(container) !== 'running') {
        throw new PortpubError(
          ERR_LINK,
          `Cannot link to a non running container: /${container.name} AS /${record.name}/${alias}`,
          EXIT_RUNTIME,
        );
      }
      const socket = containerPath(container.id, 'link.sock', dir);
      used.add(container.ip);
      return {
        alias,
        name: container.name,
        hostname: container.hostname ?? container.id.slice(0, 12),
        ip: container.ip,
        ports: container.exposed.map((p) => ({ port: p.port, protocol: p.protocol })),
        env: Object.fromEntries(container.env),
        dial: (port: number) => dialLink(socket, port),
        openUdp: (port: number) => dialLinkUdp(socket, port),
      };
    }
    const states = readStates(dir);
    let bindings;
    try {
      bindings = selectBindings(states, name, dir).bindings;
    } catch {
      throw new PortpubError(
        ERR_LINK,
        `could not get container for ${name}: No such container: ${name}`,
        EXIT_RUNTIME,
      );
    }
    const targets = [...new Set(bindings.map((b) => b.targetHost))];
    if (targets.length !== 1) {
      throw new PortpubError(
        ERR_LINK,
        `service ${name} forwards to several targets (${targets.join(', ')}): a link has one address`,
        EXIT_RUNTIME,
      );
    }
    const target = targets[0]!;
    let n = 2;
    while (used.has(`127.0.0.${n}`)) n++;
    const ip = `127.0.0.${n}`;
    used.add(ip);
    // Docker's line is `<ip>\t<alias> <id> <name>`: a `portpub -d` has a record and so an id;
    // a foreground portpub and a service of `up` (one record for the whole project) have none,
    // and the line names them once.
    return {
      alias,
      name,
      ...(plain && liveness(plain) === 'running' ? { hostname: plain.id.slice(0, 12) } : {}),
      ip,
      ports: bindings.map((b) => ({ port: b.targetPort, protocol: b.protocol })),
      env: {},
      dial: (port: number) => dialHost(target, port),
      openUdp: (port: number) => hostPeer(target, port),
    };
  });
}

function dialHost(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/**
 * openConduits listens inside the recipient on each link's address, for each of the linked
 * service's TCP and UDP ports, relaying to the service; resolves the functions that stop the UDP
 * ones (the TCP listeners end with the namespace).
 */
async function openConduits(box: Sandbox, links: readonly ResolvedLink[]): Promise<(() => void)[]> {
  const stops: (() => void)[] = [];
  for (const l of links) {
    const seen = new Set<string>();
    for (const p of l.ports) {
      const key = `${p.port}/${p.protocol}`;
      if (seen.has(key) || p.protocol === 'sctp') continue;
      seen.add(key);
      if (p.protocol === 'udp') {
        stops.push(udpConduit(await box.bindUdp(l.ip, p.port), l.openUdp(p.port)));
        continue;
      }
      await box.listenTcp(l.ip, p.port, (inside) => {
        inside.on('error', () => undefined);
        l.dial(p.port).then(
          (outside) => {
            relay(inside, outside);
            inside.resume();
          },
          () => inside.resetAndDestroy(),
        );
      });
    }
  }
  return stops;
}
