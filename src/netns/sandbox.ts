// The parent side of a service's namespaces: starts the agent inside new user (unless root), network,
// mount, UTS and PID namespaces with unshare(1), and turns its IPC channel into dialers: each dial
// asks the agent for a socket connected to the service's port inside and resolves with that socket,
// now owned by this process. The namespaces end with the agent (PID 1 of its PID namespace).
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import type net from 'node:net';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { EXIT_RUNTIME, PortpubError } from '../errors.js';
import type { FromAgent, SetupMessage, ToAgent } from './protocol.js';
import { unshareFailed, userNamespaceProblem, wantUserNamespace } from './userns.js';
import { findExecutable } from './tty.js';
import { ERR_NAMESPACE, ERR_AGENT_GONE } from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_NAMESPACE, ERR_AGENT_GONE };

/** CommandExit is how the service's command ended. */
export interface CommandExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why it never ran (`command not found`), if so. */
  error?: string;
}

export interface SandboxOptions {
  hostname: string;
  /** Files bind-mounted inside, over existing targets (the private /etc/hosts). */
  mounts?: SetupMessage['mounts'];
  /** stdio of the agent, which the command inherits: [stdin, stdout, stderr]. Default inherit. */
  stdio?: [StdioSlot, StdioSlot, StdioSlot];
  /** The agent's script; default the built agent beside this module. */
  agentPath?: string;
  /** Create a user namespace; default wantUserNamespace(). */
  userns?: boolean;
  /** Environment for the check and for the agent; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How long the namespaces may take to come up; default 10 s. */
  setupTimeoutMs?: number;
  /**
   * Start the agent in a session (so a process group) of its own; default true. A terminal's
   * Ctrl-C then reaches portpub alone, which passes one SIGINT on, as docker run does. False when
   * the command reads the terminal (-i on a TTY): only its foreground process group may, and the
   * terminal's SIGINT then reaches the command itself.
   */
  ownSession?: boolean;
  /**
   * run --init: PID 1 inside is this init (tini, as docker run --init runs it), the agent its
   * child, so that processes orphaned inside are reaped, not left as zombies under the agent.
   */
  init?: string;
}

/**
 * findInit is the init `run --init` puts at PID 1 inside: tini, as Docker's docker-init is, from
 * `path`; undefined when neither is installed.
 */
export function findInit(path: string | undefined): string | undefined {
  return findExecutable('tini', path) ?? findExecutable('docker-init', path);
}

/** noInit is the error of `run --init` where findInit finds none: what to install. */
export function noInit(): PortpubError {
  return new PortpubError(
    ERR_NAMESPACE,
    '--init: no init found in PATH: install tini (Debian and Ubuntu: apt install tini), ' +
      'the init docker run --init runs',
    EXIT_RUNTIME,
  );
}

/**
 * UNSHARE_NOISE is what util-linux's unshare writes to the service's stderr when its child (the
 * agent) dies of SIGKILL: it tries to die of the same signal, fails to unblock it, and says so.
 * It tells the user nothing (portpub logs the agent's death itself), so the relay drops it.
 */
export const UNSHARE_NOISE = 'unshare: sigprocmask unblock failed: Invalid argument\n';

/** StdioSlot is one of the agent's standard streams. */
export type StdioSlot = 'inherit' | 'ignore' | 'pipe' | number;

/** exitStatus is a shell's (and Docker's) exit code for how a command ended: 128+N for signal N. */
export function exitStatus(e: CommandExit): number {
  if (e.signal) return 128 + (osConstants.signals[e.signal] ?? 0);
  return e.code ?? 1;
}

interface Pending {
  resolve: (handle: net.Socket | dgram.Socket) => void;
  reject: (err: Error) => void;
  socket?: dgram.Socket | net.Socket;
  released?: boolean;
  protocol: 'tcp' | 'udp';
  port: number;
}

/**
 * Sandbox is one agent in its namespaces. start() brings it up (or throws, leaving nothing
 * running); startCommand() runs the service; dialTcp/dialUdp reach its ports; `exited` resolves
 * once the command has ended, `closed` once the agent itself is gone.
 */
export class Sandbox {
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<
    number,
    { onConnection: (s: net.Socket) => void; ready?: (err?: Error) => void }
  >();
  private nextId = 1;
  /** What waits for the agent's answer to each signal message sent, in order. */
  private readonly acks: (() => void)[] = [];
  private started?: { resolve: () => void; reject: (err: Error) => void };
  private exit?: CommandExit;
  private gone = false;
  private exitResolve!: (e: CommandExit) => void;
  /** exited resolves with how the command ended (or, if the agent died first, code null). */
  readonly exited: Promise<CommandExit>;
  /** closed resolves once the agent process has ended. */
  readonly closed: Promise<void>;
  /** agentExit says how the agent ended, once closed. */
  agentExit?: { code: number | null; signal: NodeJS.Signals | null };

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => (this.exitResolve = resolve));
    this.closed = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.agentExit = { code, signal };
        this.gone = true;
        const err = new PortpubError(
          ERR_AGENT_GONE,
          'the namespace agent has exited',
          EXIT_RUNTIME,
        );
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        this.started?.reject(err);
        this.exitResolve(
          this.exit ?? { code: null, signal: null, error: 'the namespace agent died' },
        );
        resolve();
      });
    });
    child.on('message', (m: FromAgent, handle?: net.Socket | dgram.Socket) =>
      this.onMessage(m, handle),
    );
    // The channel's own errors end in 'exit' too.
    child.on('error', () => undefined);
  }

  /** ended is how the command ended, once it has (with `error` when it never ran). */
  get ended(): CommandExit | undefined {
    return this.exit;
  }

  /** pid of the agent's outer process (unshare, on the host side). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * start checks that the namespaces can be made, starts the agent in them and waits until `lo`
   * is up, the hostname set and the mounts made. Any failure kills what was started and throws a
   * PortpubError (ERR_NO_USERNS when user namespaces are off, else ERR_NAMESPACE).
   */
  static async start(opts: SandboxOptions): Promise<Sandbox> {
    const env = opts.env ?? process.env;
    const userns = opts.userns ?? wantUserNamespace(env);
    if (userns) {
      const problem = userNamespaceProblem(env);
      if (problem) throw problem;
    }
    const agent = opts.agentPath ?? fileURLToPath(new URL('./agent.js', import.meta.url));
    if (!existsSync(agent)) {
      throw new PortpubError(ERR_NAMESPACE, `namespace agent not found: ${agent}`, EXIT_RUNTIME);
    }
    const flags = [
      ...(userns ? ['--user', '--map-root-user'] : []),
      '--net',
      '--mount',
      '--uts',
      // PID 1 of its own PID namespace: when the agent exits, the kernel ends every process left.
      '--pid',
      '--fork',
      '--kill-child=SIGKILL',
    ];
    // Under --init, tini as PID 1 reaps orphans and passes its signals to the agent (none are
    // sent to it: the agent hears portpub over its IPC channel, which tini leaves open).
    const init = opts.init === undefined ? [] : [opts.init, '--'];
    const child = spawn('unshare', [...flags, '--', ...init, process.execPath, agent], {
      stdio: [...(opts.stdio ?? ['inherit', 'inherit', 'inherit']), 'ipc'] as StdioOptions,
      env,
      detached: opts.ownSession ?? true,
    });
    const box = new Sandbox(child);
    const timeoutMs = opts.setupTimeoutMs ?? 10_000;
    try {
      await box.handshake(opts, userns, timeoutMs);
    } catch (err) {
      box.destroy();
      await box.closed;
      throw err;
    }
    return box;
  }

  private handshake(opts: SandboxOptions, userns: boolean, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let hello = false;
      const timer = setTimeout(() => {
        fail(
          new PortpubError(
            ERR_NAMESPACE,
            `the namespace agent did not come up within ${timeoutMs} ms`,
            EXIT_RUNTIME,
          ),
        );
      }, timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        reject(err);
      };
      const onMessage = (m: FromAgent) => {
        if (m.t === 'hello') {
          hello = true;
          const setup: SetupMessage = {
            t: 'setup',
            hostname: opts.hostname,
            mounts: opts.mounts ?? [],
          };
          this.send(setup);
        } else if (m.t === 'fatal') {
          fail(
            new PortpubError(ERR_NAMESPACE, `namespace setup failed: ${m.message}`, EXIT_RUNTIME),
          );
        } else if (m.t === 'ready') {
          clearTimeout(timer);
          this.child.off('message', onMessage);
          this.child.off('exit', onExit);
          resolve();
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        if (hello) return; // a fatal message explains it
        const detail = signal ? `killed by ${signal}` : `exit code ${code}`;
        fail(
          userns
            ? unshareFailed(detail)
            : new PortpubError(ERR_NAMESPACE, `unshare failed (${detail})`, EXIT_RUNTIME),
        );
      };
      this.child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') {
          fail(
            new PortpubError(
              ERR_NAMESPACE,
              'unshare (util-linux) is not installed: it is needed to give the service a network ' +
                'of its own; install util-linux, or use --network host',
              EXIT_RUNTIME,
            ),
          );
        }
      });
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
    });
  }

  /**
   * startCommand runs the service's command with exactly `env`; resolves once it runs. A command
   * that cannot run resolves too: `exited` then says 127 or 126.
   */
  startCommand(
    command: string,
    args: readonly string[],
    env: readonly [string, string][],
    stdin = false,
    tty = false,
    cwd?: string,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.started = { resolve, reject };
      const where = cwd === undefined ? {} : { cwd };
      this.send({ t: 'start', command, args: [...args], env: [...env], stdin, tty, ...where });
    });
  }

  /** signal sends a signal to the command (if it runs). */
  signal(signal: NodeJS.Signals): void {
    this.acks.push(() => undefined);
    this.send({ t: 'signal', signal });
  }

  /**
   * signalled sends a signal to the command and resolves once the agent has sent it (or the
   * command had ended); it never resolves if the agent is gone first.
   */
  signalled(signal: NodeJS.Signals): Promise<void> {
    return new Promise((resolve) => {
      this.acks.push(resolve);
      this.send({ t: 'signal', signal });
    });
  }

  /** dialTcp resolves with a socket connected to 127.0.0.1:port inside the namespace. */
  dialTcp(port: number): Promise<net.Socket> {
    return this.dial('tcp', port) as Promise<net.Socket>;
  }

  /**
   * dialUdp resolves with a UDP socket of the namespace, connected to 127.0.0.1:port there.
   * The agent binds it and closes its own copy before this resolves, so every reply reaches us.
   */
  async dialUdp(port: number): Promise<dgram.Socket> {
    const s = (await this.dial('udp', port)) as dgram.Socket;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      s.once('error', onError);
      // The address is read in the socket's own namespace: this is the service's loopback.
      s.connect(port, '127.0.0.1', () => {
        s.off('error', onError);
        resolve();
      });
    });
    return s;
  }

  /**
   * bindUdp resolves with a UDP socket of the namespace bound to host:port there (a link's
   * conduit), the agent's copy closed.
   */
  bindUdp(host: string, port: number): Promise<dgram.Socket> {
    if (this.gone) {
      return Promise.reject(
        new PortpubError(ERR_AGENT_GONE, 'the namespace agent has exited', EXIT_RUNTIME),
      );
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: resolve as (h: net.Socket | dgram.Socket) => void,
        reject,
        protocol: 'udp',
        port,
      });
      this.send({ t: 'bind-udp', id, host, port });
    });
  }

  /**
   * listenTcp opens a listener inside the namespace (a link's conduit); each connection it
   * accepts is handed to onConnection here, paused, nothing read from it yet.
   */
  listenTcp(host: string, port: number, onConnection: (s: net.Socket) => void): Promise<void> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.listeners.set(id, {
        onConnection,
        ready: (err) => (err ? reject(err) : resolve()),
      });
      this.send({ t: 'listen', id, host, port });
    });
  }

  /** destroy ends the agent now (and so the namespaces and every process in them). */
  destroy(): void {
    if (this.gone) return;
    // SIGKILL to unshare: --kill-child passes it on to the agent, PID 1 inside.
    this.child.kill('SIGKILL');
  }

  private dial(protocol: 'tcp' | 'udp', port: number): Promise<net.Socket | dgram.Socket> {
    if (this.gone) {
      return Promise.reject(
        new PortpubError(ERR_AGENT_GONE, 'the namespace agent has exited', EXIT_RUNTIME),
      );
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, protocol, port });
      this.send({ t: 'dial', id, protocol, port });
    });
  }

  private send(m: ToAgent): void {
    if (this.gone || !this.child.connected) return;
    this.child.send(m, (err) => {
      // A write to a closing channel: 'exit' rejects whatever waited on it.
      if (err) return;
    });
  }

  private onMessage(m: FromAgent, handle?: net.Socket | dgram.Socket): void {
    switch (m.t) {
      case 'signalled':
        // In order: the agent answers each signal message, whether signal() or signalled() sent it.
        this.acks.shift()?.();
        return;
      case 'started':
        this.started?.resolve();
        this.started = undefined;
        return;
      case 'exit':
        this.exit = { code: m.code, signal: m.signal, ...(m.error ? { error: m.error } : {}) };
        this.started?.resolve();
        this.started = undefined;
        this.exitResolve(this.exit);
        return;
      case 'dialed':
      case 'released': {
        const p = this.pending.get(m.id);
        if (!p) {
          if (handle && 'destroy' in handle) handle.destroy();
          else handle?.close();
          return;
        }
        if (m.t === 'dialed') p.socket = handle;
        else p.released = true;
        // TCP needs only the socket; UDP also the agent's word that its copy is closed (the two
        // messages may be emitted in either order: a handle's message waits for its conversion).
        if (p.socket && (p.protocol === 'tcp' || p.released)) {
          this.pending.delete(m.id);
          if (p.protocol === 'tcp') (p.socket as net.Socket).allowHalfOpen = true;
          p.resolve(p.socket);
        }
        return;
      }
      case 'dial-failed': {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        const err = new Error(
          `connect ${m.code} 127.0.0.1:${p.port} (inside the namespace)`,
        ) as NodeJS.ErrnoException;
        err.code = m.code;
        p.reject(err);
        return;
      }
      case 'listening':
      case 'listen-failed': {
        const l = this.listeners.get(m.id);
        if (!l) return;
        const ready = l.ready;
        l.ready = undefined;
        if (m.t === 'listening') ready?.();
        else {
          this.listeners.delete(m.id);
          const err = new Error(`listen ${m.code}: ${m.message}`) as NodeJS.ErrnoException;
          err.code = m.code;
          ready?.(err);
        }
        return;
      }
      case 'accepted': {
        const l = this.listeners.get(m.id);
        const s = handle as net.Socket | undefined;
        if (!s) return;
        if (!l) {
          s.destroy();
          return;
        }
        s.allowHalfOpen = true;
        l.onConnection(s);
        return;
      }
      default:
        return;
    }
  }
}
