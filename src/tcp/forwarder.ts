// TCP forwarding for one binding: accept, connect to the target at once, relay each pair (pair.ts),
// count, log, drain and cut. Model: moby cmd/docker-proxy tcp_proxy_linux.go. This module also
// re-exports the TCP API others import from here (listener, options), so importers keep one path.
import { isIP, type Server, type Socket } from 'node:net';
import { joinHostPort } from '../address.js';
import { UsageError } from '../errors.js';
import type { BoundAddress, ConnectionInfo, Forwarder } from '../forwarder.js';
import { silentLogger, type Logger } from '../logger.js';
import { resetSocket } from '../node-internals.js';
import { TcpListener } from './listener.js';
import { TcpLogLines } from './log-lines.js';
import {
  validateTcpOptions,
  type TcpForwarderOptions,
  type TcpSettings,
  type TcpStats,
} from './options.js';
import { isOwn } from './own-sockets.js';
import { Pair, errorCode, peerOf, type PairOwner, type Relay } from './pair.js';
import { describeReadPath, tcpReadPath, type ReadCounters, type ReadPath } from './shared-reads.js';

export { TcpListener, adoptTcp, listenTcp } from './listener.js';
export {
  DEFAULTS,
  validateTcpOptions,
  type TcpEnding,
  type TcpForwarderOptions,
  type TcpSettings,
  type TcpStats,
} from './options.js';
export { describeReadPath, tcpReadPath, type ReadPath } from './shared-reads.js';

function ignore(): void {}

let readPathLogged = false;

/**
 * logTcpReadPath logs, once per process, which read path TCP forwarding uses by default; every
 * TcpForwarder calls it when it starts, and the CLI may call it earlier.
 */
export function logTcpReadPath(logger: Logger, path: ReadPath = tcpReadPath()): void {
  if (readPathLogged) return;
  readPathLogged = true;
  logger.info(
    { readPath: path, node: process.versions.node, how: describeReadPath(path) },
    'TCP read path',
  );
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
 *
 * A connection from one of this process's own target-side sockets (own-sockets.ts) is portpub
 * forwarding into itself: it is dropped at accept, counted (connectionsLooped) and logged
 * rate-limited, never relayed.
 */
export class TcpForwarder implements Forwarder<TcpStats> {
  readonly protocol = 'tcp';
  /** The bound address of the listening server. */
  readonly address: BoundAddress;
  private readonly server: Server;
  private readonly settings: TcpSettings;
  private readonly logger: Logger;
  private readonly targetText: string;
  private readonly pairs = new Set<Relay>();
  private readonly counters: Required<TcpStats> & ReadCounters = {
    connectionsActive: 0,
    connectionsTotal: 0,
    connectionsRejected: 0,
    connectFailures: 0,
    bytesClientToTarget: 0,
    bytesTargetToClient: 0,
    connectionsLooped: 0,
    sharedReadsCaptured: 0,
    sharedReadsRestored: 0,
  };
  private readonly lines: TcpLogLines;
  private readonly owner: PairOwner;
  private closing: Promise<void> | undefined;
  private resolveClosing: (() => void) | undefined;

  /**
   * The server is a TcpListener (from listenTcp or adoptTcp), whose early connections are served
   * at once, or any listening net.Server.
   */
  constructor(server: Server, options: TcpForwarderOptions) {
    this.settings = validateTcpOptions(options);
    const address = server.address();
    if (!server.listening || address === null || typeof address === 'string') {
      throw new UsageError('TcpForwarder needs a listening TCP server (from listenTcp)');
    }
    const early = server instanceof TcpListener ? server.claim() : [];
    this.server = server;
    this.address = address;
    this.logger = options.logger ?? silentLogger();
    this.targetText = options.dial
      ? 'dialer'
      : joinHostPort(this.settings.targetHost, this.settings.targetPort);
    this.lines = new TcpLogLines(this.logger, this.targetText);
    const readPath = options.readPath ?? tcpReadPath();
    logTcpReadPath(this.logger, readPath);
    this.owner = {
      settings: this.settings,
      counters: this.counters,
      logger: this.logger,
      lines: this.lines,
      readPath,
      dial: options.dial,
      loopsVia: options.dial || isIP(this.settings.targetHost) !== 0 ? undefined : options.loopsVia,
      connectFailed: (client, err) => this.connectFailed(client, err),
      finished: (pair) => this.finished(pair),
    };
    server.on('connection', (client: Socket) => this.accept(client));
    server.on('error', (err) => this.onServerError(err));
    for (const client of early) this.accept(client);
  }

  /** stats returns a snapshot of the counters. */
  stats(): TcpStats {
    return { ...this.counters };
  }

  /** connections describes every live pair. */
  connections(): ConnectionInfo[] {
    const draining = this.closing !== undefined;
    return [...this.pairs].map((p) => p.info(draining));
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
    this.lines.acceptFailed(errorCode(err), err.message);
  }

  private accept(client: Socket): void {
    if (this.closing) {
      client.on('error', ignore);
      resetSocket(client);
      return;
    }
    if (isOwn(client.remoteAddress, client.remotePort, () => localOf(client))) {
      client.on('error', ignore);
      this.counters.connectionsLooped++;
      this.lines.looped(peerOf(client));
      resetSocket(client);
      return;
    }
    const { maxConnections } = this.settings;
    if (maxConnections > 0 && this.pairs.size >= maxConnections) {
      client.on('error', ignore);
      this.counters.connectionsRejected++;
      this.lines.refused(peerOf(client), maxConnections);
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
    this.lines.connectFailed(
      client,
      err ? errorCode(err) : 'ETIMEDOUT',
      err?.message ?? `connect timed out after ${this.settings.connectTimeoutMs} ms`,
    );
  }

  /** finished is called once per pair, when both its sockets are gone. */
  private finished(pair: Relay): void {
    if (!this.pairs.delete(pair)) return;
    this.counters.connectionsActive--;
    this.checkDrained();
  }
}

/** localOf is the local address an accepted client reached ({} once the socket is gone). */
function localOf(client: Socket): { address?: string; port?: number } {
  return { address: client.localAddress, port: client.localPort };
}
