// TCP relay: accept, connect to the target at once, copy both ways with backpressure and
// half-close, reset the peer when one side resets. Model: moby cmd/docker-proxy tcp_proxy_linux.go.
import { createServer, connect, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import { UsageError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { readBuffer, relayRead, sharedReads, sweepCaptures } from './shared-reads.js';
import { joinHostPort } from '../address.js';
import { resetSocket } from '../node-internals.js';
import { LogLimit } from '../log-limit.js';

/**
 * LISTEN_BACKLOG is what Go (so docker-proxy) asks for: the kernel caps it at
 * net.core.somaxconn. Node's own default (511) overflows under a burst of a few thousand connects,
 * and an overflowing accept queue drops SYNs, which clients see as one-second stalls.
 */
const LISTEN_BACKLOG = 4096;

/**
 * KEEPALIVE_MS matches Go's default keep-alive (15 s) that docker-proxy's sockets get: a peer that
 * vanished without a FIN or RST is found, and its pair torn down, instead of lingering forever.
 */
const KEEPALIVE_MS = 15_000;

/**
 * UNCLAIMED_HOLD_MS bounds how long connections accepted before a TcpForwarder takes the server
 * (the gap between bind-to-allocate and serving) wait for it; then they are reset.
 */
const UNCLAIMED_HOLD_MS = 5_000;

/** MAX_TIMER_MS is the longest delay a Node timer can hold. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Unclaimed holds the connections a listenTcp server accepted before any forwarder owned it. */
interface Unclaimed {
  sockets: Socket[];
  onConnection: (socket: Socket) => void;
  onError: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

const unclaimed = new WeakMap<Server, Unclaimed>();
const claimed = new WeakSet<Server>();

function ignore(): void {}

/**
 * listenTcp binds and listens, keeping the server (bind-to-allocate); on failure it rejects with
 * the raw OS error (EADDRINUSE, EACCES, EADDRNOTAVAIL ...) and leaves nothing open. host must be an
 * IP literal. ipv6Only defaults to true for '::', so that 0.0.0.0:P and [::]:P coexist like
 * Docker's V6ONLY sockets. Connections accepted before a TcpForwarder takes the server are held,
 * unread, and handed to it (or reset after UNCLAIMED_HOLD_MS if none comes).
 */
export function listenTcp(
  host: string,
  port: number,
  opts: { ipv6Only?: boolean; backlog?: number } = {},
): Promise<Server> {
  if (isIP(host) === 0) {
    return Promise.reject(
      new UsageError(`host must be an IP address, got ${JSON.stringify(host)}`),
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(new UsageError(`port must be a whole number 0-65535, got ${port}`));
  }
  return new Promise((resolve, reject) => {
    const server = relayServer();
    const onListenError = (err: Error): void => {
      server.close();
      reject(err);
    };
    server.once('error', onListenError);
    try {
      server.listen(
        {
          host,
          port,
          ipv6Only: opts.ipv6Only ?? host === '::',
          backlog: opts.backlog ?? LISTEN_BACKLOG,
          exclusive: true,
        },
        () => {
          server.off('error', onListenError);
          holdUnclaimed(server);
          resolve(server);
        },
      );
    } catch (err) {
      server.off('error', onListenError);
      server.close();
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

/**
 * adoptTcp serves a listening socket that another process bound and sent over IPC (a TCP
 * worker's side of --tcp-workers) with the options listenTcp gives its servers. Hand the result
 * to a TcpForwarder at once: nothing holds early connections here.
 */
export function adoptTcp(listening: Server): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = relayServer();
    server.once('error', reject);
    server.listen(listening, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * relayServer is the unbound server of every TCP binding. allowHalfOpen: a client's FIN must not
 * end our side; pauseOnConnect: read nothing from a client until its target connection exists
 * (the data stays in the kernel meanwhile).
 */
function relayServer(): Server {
  return createServer({
    allowHalfOpen: true,
    pauseOnConnect: true,
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: KEEPALIVE_MS,
  });
}

/** holdUnclaimed parks early connections (paused, unread) until a forwarder claims the server. */
function holdUnclaimed(server: Server): void {
  const hold: Unclaimed = {
    sockets: [],
    timer: undefined,
    onError: ignore, // accept errors before a forwarder exists: nobody to tell, keep listening
    onConnection: (socket) => {
      socket.on('error', ignore);
      hold.sockets.push(socket);
      hold.timer ??= setTimeout(() => {
        for (const s of hold.sockets.splice(0)) resetSocket(s);
        hold.timer = undefined;
      }, UNCLAIMED_HOLD_MS).unref();
    },
  };
  server.on('connection', hold.onConnection);
  server.on('error', hold.onError);
  unclaimed.set(server, hold);
}

/** claim detaches the early-connection holder from server and returns what it held. */
function claim(server: Server): Socket[] {
  const hold = unclaimed.get(server);
  if (!hold) return [];
  unclaimed.delete(server);
  server.off('connection', hold.onConnection);
  server.off('error', hold.onError);
  clearTimeout(hold.timer);
  return hold.sockets.splice(0);
}

export interface TcpForwarderOptions {
  /** IP or hostname of the target (a hostname is resolved on every connection). */
  targetHost: string;
  targetPort: number;
  /** connectTimeoutMs bounds each target connection attempt; 0 leaves it to the OS. Default 5000. */
  connectTimeoutMs?: number;
  /** idleTimeoutMs closes a pair with no traffic either way for that long; 0 (default) = never, as Docker. */
  idleTimeoutMs?: number;
  /**
   * halfCloseLingerMs bounds a half-closed pair: once either side has sent its FIN, the pair is
   * destroyed when the direction still open makes no progress for this long. Default 60000, the
   * kernel's own tcp_fin_timeout for orphaned half-closed sockets: long enough for a request
   * answered after the client's FIN (and any streaming reply, which keeps it alive), short
   * enough that a target that never closes cannot pile up pairs in CLOSE_WAIT (docker/for-linux#335).
   * 0 = no bound, as docker-proxy.
   */
  halfCloseLingerMs?: number;
  /** maxConnections caps concurrent pairs; beyond it new clients are reset. 0 (default) = no cap. */
  maxConnections?: number;
  logger?: Logger;
}

export interface TcpStats {
  connectionsActive: number;
  connectionsTotal: number;
  connectionsRejected: number;
  connectFailures: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
}

/** TcpEnding says how a pair ended, in the per-connection close log line. */
export type TcpEnding =
  | 'end'
  | 'reset-by-client'
  | 'reset-by-target'
  | 'idle-timeout'
  | 'linger-timeout'
  | 'destroyed'
  | 'connect-failed';

interface Settings {
  targetHost: string;
  targetPort: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  halfCloseLingerMs: number;
  maxConnections: number;
}

const DEFAULTS = {
  connectTimeoutMs: 5000,
  idleTimeoutMs: 0,
  halfCloseLingerMs: 60_000,
  maxConnections: 0,
} as const;

/** validate applies the defaults and rejects bad options, naming the option. */
function validate(options: TcpForwarderOptions): Settings {
  if (typeof options !== 'object' || options === null) {
    throw new UsageError('TcpForwarder options must be an object');
  }
  const { targetHost, targetPort } = options;
  if (typeof targetHost !== 'string' || targetHost.trim() === '') {
    throw new UsageError(`targetHost must be a non-empty IP address or hostname`);
  }
  if (!Number.isInteger(targetPort) || targetPort < 1 || targetPort > 65535) {
    throw new UsageError(`targetPort must be a whole number 1-65535, got ${String(targetPort)}`);
  }
  const settings: Settings = { targetHost, targetPort, ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    const value = options[key];
    if (value === undefined) continue;
    const max = key === 'maxConnections' ? Number.MAX_SAFE_INTEGER : MAX_TIMER_MS;
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new UsageError(`${key} must be a whole number 0-${max}, got ${String(value)}`);
    }
    settings[key] = value;
  }
  return settings;
}

function errorCode(err: Error): string | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined) return code;
  // autoSelectFamily (a hostname with A and AAAA records) fails with every attempt's error.
  if (err instanceof AggregateError) {
    return (err.errors[0] as NodeJS.ErrnoException | undefined)?.code;
  }
  return undefined;
}

function isFdExhaustion(code: string | undefined): boolean {
  return code === 'EMFILE' || code === 'ENFILE';
}

/**
 * TcpForwarder serves one listening server (from listenTcp), relaying each accepted client to the
 * target: one target connection per client, opened at once so server-speaks-first protocols work.
 *
 * Running out of descriptors (EMFILE/ENFILE): libuv keeps one spare descriptor per loop; when
 * accept() fails it frees the spare, accepts and closes every waiting client (they see a plain
 * close), and takes the spare back, so the listener neither spins nor dies and serves again as
 * soon as descriptors free up (tested under `ulimit -n 64`). Node offers no way to pause
 * accepting short of closing the listener, which would give the port away, so the listener is
 * kept. Two cases reach us, both logged rate-limited: a target connect that fails with EMFILE
 * (the accept took the last descriptor), whose client is reset like any connect failure; and an
 * accept error emitted on the server, which happens only if libuv lost its spare.
 */
export class TcpForwarder {
  /** The bound address of the listening server. */
  readonly address: AddressInfo;
  private readonly server: Server;
  private readonly settings: Settings;
  private readonly logger: Logger;
  private readonly targetText: string;
  private readonly pairs = new Set<Pair>();
  private readonly counters: TcpStats = {
    connectionsActive: 0,
    connectionsTotal: 0,
    connectionsRejected: 0,
    connectFailures: 0,
    bytesClientToTarget: 0,
    bytesTargetToClient: 0,
  };
  private readonly refusals = new LogLimit();
  private readonly exhaustion = new LogLimit();
  private readonly owner: PairOwner;
  private closing: Promise<void> | undefined;
  private resolveClosing: (() => void) | undefined;

  constructor(server: Server, options: TcpForwarderOptions) {
    this.settings = validate(options);
    const address = server.address();
    if (!server.listening || address === null || typeof address === 'string') {
      throw new UsageError('TcpForwarder needs a listening TCP server (from listenTcp)');
    }
    if (claimed.has(server)) throw new UsageError('this server already has a TcpForwarder');
    claimed.add(server);
    this.server = server;
    this.address = address;
    this.logger = options.logger ?? silentLogger();
    this.targetText = joinHostPort(this.settings.targetHost, this.settings.targetPort);
    this.owner = {
      settings: this.settings,
      counters: this.counters,
      logger: this.logger,
      connectFailed: (client, err) => this.connectFailed(client, err),
      finished: (pair) => this.finished(pair),
    };
    server.on('connection', (client: Socket) => this.accept(client));
    server.on('error', (err) => this.onServerError(err));
    for (const client of claim(server)) this.accept(client);
  }

  /** stats returns a snapshot of the counters. */
  stats(): TcpStats {
    return { ...this.counters };
  }

  /**
   * close stops accepting and resolves once every open pair has finished by itself (a pair
   * can take up to idleTimeoutMs / halfCloseLingerMs to do so). Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = new Promise((resolve) => (this.resolveClosing = resolve));
      this.server.close();
      this.checkDrained();
    }
    return this.closing;
  }

  /**
   * destroy closes the listener and cuts every pair now, resetting both its sockets: a cut is a
   * reset on both sides, never a clean end (issue 11). The supervisor's drain timeout cuts with
   * it. Idempotent; resolves close().
   */
  destroy(): void {
    void this.close();
    for (const pair of this.pairs) pair.cut('destroyed');
    this.checkDrained();
  }

  private checkDrained(): void {
    if (this.resolveClosing && this.pairs.size === 0) this.resolveClosing();
  }

  /**
   * onServerError logs accept errors. libuv retries accept() at once after reporting one, so
   * without a spare descriptor this can be called many times in a row until one frees up: keep
   * it cheap and rate-limited, and never close the listener over it.
   */
  private onServerError(err: Error): void {
    const code = errorCode(err);
    const n = this.exhaustion.take(Date.now());
    if (n > 0) {
      this.logger.error({ code, err: err.message, count: n }, 'accept failed; still listening');
    }
  }

  private accept(client: Socket): void {
    if (this.closing) {
      client.on('error', ignore);
      resetSocket(client);
      return;
    }
    const { maxConnections } = this.settings;
    if (maxConnections > 0 && this.pairs.size >= maxConnections) {
      client.on('error', ignore);
      this.counters.connectionsRejected++;
      const n = this.refusals.take(Date.now());
      if (n > 0) {
        this.logger.warn(
          { client: peerOf(client), maxConnections, refused: n },
          'connection refused: maxConnections reached',
        );
      }
      resetSocket(client);
      return;
    }
    this.counters.connectionsTotal++;
    this.counters.connectionsActive++;
    this.pairs.add(new Pair(this.owner, client));
  }

  /** connectFailed logs a failed target connection (rate-limited when out of descriptors). */
  private connectFailed(client: string, err: Error | undefined): void {
    this.counters.connectFailures++;
    const code = err ? errorCode(err) : 'ETIMEDOUT';
    const fields = {
      client,
      targetAddress: this.targetText,
      code,
      err: err?.message ?? `connect timed out after ${this.settings.connectTimeoutMs} ms`,
    };
    if (!isFdExhaustion(code)) {
      this.logger.warn(fields, 'cannot connect to target');
      return;
    }
    const n = this.exhaustion.take(Date.now());
    if (n > 0) this.logger.error({ ...fields, count: n }, 'cannot connect to target: out of fds');
  }

  /** finished is called once per pair, when both its sockets are gone. */
  private finished(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    this.counters.connectionsActive--;
    this.checkDrained();
  }
}

/** PairOwner is what a Pair needs from its forwarder. */
interface PairOwner {
  readonly settings: Settings;
  readonly counters: TcpStats;
  readonly logger: Logger;
  connectFailed(client: string, err: Error | undefined): void;
  finished(pair: Pair): void;
}

function peerOf(socket: Socket): string {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined ? 'unknown' : joinHostPort(remoteAddress, remotePort ?? 0);
}

/**
 * kPair links each socket to its Pair. The event handlers below are shared by every pair and find
 * theirs through it, so a pair allocates no closures: an idle pair's JavaScript heap went from
 * 3.4 to 2.2 KiB that way (closures, their contexts, a timer kept by net after setTimeout(0)),
 * and memory per held connection is what a proxy of idle keep-alive clients runs out of.
 */
const kPair = Symbol('pair');

type PairSocket = Socket & { [kPair]: Pair };

function pairOf(socket: Socket): Pair {
  return (socket as PairSocket)[kPair];
}

/** onClientData is the client's reader where shared reads are not available (see read-buffer). */
function onClientData(this: Socket, chunk: Buffer): void {
  pairOf(this).fromClient(chunk);
}
function onClientRead(this: Socket, nread: number, buf: Uint8Array): boolean {
  pairOf(this).clientRead(nread, buf);
  return true;
}
function onTargetRead(this: Socket, nread: number, buf: Uint8Array): boolean {
  pairOf(this).targetRead(nread, buf);
  return true;
}
function onClientDrain(this: Socket): void {
  pairOf(this).target.resume();
}
function onTargetDrain(this: Socket): void {
  pairOf(this).client.resume();
}
function onClientEnd(this: Socket): void {
  pairOf(this).ended(pairOf(this).target);
}
function onTargetEnd(this: Socket): void {
  pairOf(this).ended(pairOf(this).client);
}
function onClientError(this: Socket, err: Error): void {
  pairOf(this).onError(err, 'reset-by-client');
}
function onTargetError(this: Socket, err: Error): void {
  pairOf(this).onError(err, 'reset-by-target');
}
function onSocketClose(this: Socket): void {
  pairOf(this).onClose();
}
function onSocketTimeout(this: Socket): void {
  pairOf(this).onTimeout();
}
function onTargetConnect(this: Socket): void {
  pairOf(this).onConnect();
}
function onConnectTimeout(pair: Pair): void {
  pair.onTimeout();
}

/**
 * Pair is one client and its target connection. Each direction is a read side feeding a write
 * side: a write() that returns false pauses the reader until 'drain' (bounded memory whatever the
 * speeds); a FIN becomes end() on the other socket; an error on one socket resets the other.
 * net.Socket's autoDestroy closes each socket once both its directions are done, and the pair is
 * over when both sockets have closed.
 */
class Pair {
  readonly owner: PairOwner;
  readonly client: Socket;
  readonly target: Socket;
  /** The client's address, taken at accept only when it will be logged (see peer()). */
  private peerName: string | undefined;
  private readonly started = performance.now();
  private connectTimer: NodeJS.Timeout | undefined;
  private connected = false;
  private halfClosed = false;
  /** 'timeout' listeners are added with the first socket timeout. */
  private timeoutsWatched = false;
  private how: TcpEnding | undefined;
  private code: string | undefined;
  private up = 0;
  private down = 0;
  private open = 2;

  constructor(owner: PairOwner, client: Socket) {
    this.owner = owner;
    this.client = client;
    const { targetHost, targetPort, connectTimeoutMs } = owner.settings;
    // Asking for the client's address costs a system call, an object and two strings per pair:
    // only when the close line will carry it. A warning asks later, while the client is open.
    if (owner.logger.isLevelEnabled('info')) this.peerName = peerOf(client);
    if (owner.logger.isLevelEnabled('debug')) {
      owner.logger.debug({ client: this.peer() }, 'connection opened');
    }
    client.setNoDelay(true); // a no-op when the server already set it (listenTcp's do)
    const target = connect({
      host: targetHost,
      port: targetPort,
      allowHalfOpen: true,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: KEEPALIVE_MS,
      onread: { buffer: readBuffer, callback: onTargetRead },
    });
    this.target = target;
    (client as PairSocket)[kPair] = this;
    (target as PairSocket)[kPair] = this;
    // A timer of its own, not target.setTimeout(): net keeps that one's Timeout (and a bound
    // function) on the socket for good, even once cleared with setTimeout(0).
    if (connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(onConnectTimeout, connectTimeoutMs, this).unref();
    }
    client.on('error', onClientError);
    target.on('error', onTargetError);
    client.on('close', onSocketClose);
    target.on('close', onSocketClose);
    target.on('connect', onTargetConnect);
  }

  /** peer names the client in log lines, asking the socket on first use if accept did not. */
  private peer(): string {
    this.peerName ??= peerOf(this.client);
    return this.peerName;
  }

  /**
   * cut ends the pair now with a reset on both sides (so a cut upload never looks complete to
   * the target), recording why; the pair is finished at once.
   */
  cut(how: TcpEnding): void {
    this.how ??= how;
    resetSocket(this.client);
    resetSocket(this.target);
    this.finish();
  }

  onConnect(): void {
    const { client, target } = this;
    const { idleTimeoutMs } = this.owner.settings;
    this.connected = true;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (idleTimeoutMs > 0) this.watchTimeouts(idleTimeoutMs);
    if (!sharedReads(client, onClientRead)) client.on('data', onClientData);
    target.on('drain', onTargetDrain);
    client.on('drain', onClientDrain);
    client.on('end', onClientEnd);
    target.on('end', onTargetEnd);
    client.resume(); // accepted paused (pauseOnConnect): start reading now the target is there
  }

  fromClient(chunk: Buffer): void {
    this.up += chunk.length;
    this.owner.counters.bytesClientToTarget += chunk.length;
    if (!this.target.write(chunk)) this.client.pause();
  }

  clientRead(nread: number, buf: Uint8Array): void {
    this.up += nread;
    this.owner.counters.bytesClientToTarget += nread;
    if (!relayRead(this.target, nread, buf)) this.client.pause();
  }

  targetRead(nread: number, buf: Uint8Array): void {
    this.down += nread;
    this.owner.counters.bytesTargetToClient += nread;
    if (!relayRead(this.client, nread, buf)) this.target.pause();
  }

  /** ended passes a FIN on to the other socket, `to`. */
  ended(to: Socket): void {
    to.end();
    this.startLinger();
  }

  /** watchTimeouts sets both sockets' inactivity timeout (refreshed by every read and write). */
  private watchTimeouts(ms: number): void {
    if (!this.timeoutsWatched) {
      this.timeoutsWatched = true;
      this.client.on('timeout', onSocketTimeout);
      this.target.on('timeout', onSocketTimeout);
    }
    this.client.setTimeout(ms);
    this.target.setTimeout(ms);
  }

  /**
   * startLinger arms the half-close bound on both sockets. Node's socket timeout is refreshed by
   * every read and completed write on that socket, and each remaining byte is read on one socket
   * and written on the other, so it fires only when the open direction has stalled.
   */
  private startLinger(): void {
    if (this.halfClosed) return;
    this.halfClosed = true;
    const { idleTimeoutMs, halfCloseLingerMs } = this.owner.settings;
    if (halfCloseLingerMs === 0) return;
    this.watchTimeouts(
      idleTimeoutMs === 0 ? halfCloseLingerMs : Math.min(idleTimeoutMs, halfCloseLingerMs),
    );
  }

  onTimeout(): void {
    if (!this.connected) {
      this.connectTimer = undefined;
      this.how ??= 'connect-failed';
      this.owner.connectFailed(this.peer(), undefined);
      this.code = 'ETIMEDOUT';
      this.target.destroy();
      resetSocket(this.client);
      return;
    }
    const { idleTimeoutMs, halfCloseLingerMs } = this.owner.settings;
    const lingered =
      this.halfClosed &&
      halfCloseLingerMs > 0 &&
      (idleTimeoutMs === 0 || halfCloseLingerMs <= idleTimeoutMs);
    this.how ??= lingered ? 'linger-timeout' : 'idle-timeout';
    this.client.destroy();
    this.target.destroy();
  }

  /** onError resets the other socket: the peer then sees a reset too, not a clean end. */
  onError(err: Error, how: TcpEnding): void {
    if (!this.connected) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
      if (how === 'reset-by-client') {
        // The client went away while we were still connecting: just abandon the attempt.
        this.how ??= how;
        this.target.destroy();
        return;
      }
      this.how ??= 'connect-failed';
      this.code ??= errorCode(err);
      this.owner.connectFailed(this.peer(), err);
      resetSocket(this.client);
      return;
    }
    this.how ??= how;
    this.code ??= errorCode(err);
    resetSocket(how === 'reset-by-client' ? this.target : this.client);
  }

  onClose(): void {
    if (--this.open === 0) this.finish();
  }

  private finish(): void {
    if (this.open < 0) return;
    this.open = -1;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    sweepCaptures();
    this.owner.finished(this);
    if (!this.owner.logger.isLevelEnabled('info')) return;
    this.owner.logger.info(
      {
        client: this.peer(),
        bytesClientToTarget: this.up,
        bytesTargetToClient: this.down,
        durationMs: Math.round(performance.now() - this.started),
        how: this.how ?? 'end',
        ...(this.code !== undefined ? { code: this.code } : {}),
      },
      'connection closed',
    );
  }
}
