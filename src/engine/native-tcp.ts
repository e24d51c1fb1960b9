// NativeTcpForwarder: one listening socket served by the native engine (native/tcp.c) with the
// TypeScript relay's options, counters, log lines and lifecycle (src/tcp/forwarder.ts). Node
// bound the socket (bind-to-allocate); the engine serves a duplicate of its descriptor and Node's
// server is closed, so libuv no longer accepts from it.
import { constants } from 'node:os';
import type { AddressInfo, Server } from 'node:net';
import { UsageError } from '../errors.js';
import type { ConnectionInfo, Forwarder } from '../forwarder.js';
import { silentLogger, type Logger } from '../logger.js';
import { handleFd } from '../node-internals.js';
import { joinHostPort } from '../address.js';
import type { TcpEnding, TcpForwarderOptions, TcpStats } from '../tcp/forwarder.js';
import type { NativeBinding } from './load.js';
import {
  EV_ACCEPT_ERROR,
  EV_CLOSED,
  EV_DRAINED,
  EV_LOOPED,
  EV_OPENED,
  EV_REJECTED,
  nativeEngine,
  type EngineEvent,
  type NativeEngine,
} from './native-engine.js';
import { TcpListener } from '../tcp/listener.js';
import { TcpLogLines } from '../tcp/log-lines.js';
import { validateTcpOptions, type TcpSettings } from '../tcp/options.js';

/** listen()'s logs bits (native/engine.h): send the opened / closed event of each connection. */
const LOG_OPENED = 1;
const LOG_CLOSED = 2;

/** HOWS maps native/engine.h's enum how to the close line's `how`. */
const HOWS: readonly (TcpEnding | undefined)[] = [
  undefined,
  'end',
  'reset-by-client',
  'reset-by-target',
  'idle-timeout',
  'linger-timeout',
  'destroyed',
  'connect-failed',
];

const STATES: readonly ConnectionInfo['state'][] = [
  'connecting',
  'open',
  'half-closed',
  'draining',
];

/** ERRNO_NAMES maps errno numbers to their names (ECONNRESET ...), as Node's err.code gives. */
const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, n]) => [n, name]),
);

function errnoName(err: number): string | undefined {
  return err === 0 ? undefined : (ERRNO_NAMES.get(err) ?? `errno ${err}`);
}

/** Slots of the stats array the engine writes (native/engine.h enum stat_slot). */
const ST_ACTIVE = 0;
const ST_TOTAL = 1;
const ST_REJECTED = 2;
const ST_CONNECT_FAILURES = 3;
const ST_UP = 4;
const ST_DOWN = 5;
const ST_LOOPED = 6;

/** The servers a NativeTcpForwarder took (their own listening descriptor is closed). */
const served = new WeakSet<Server>();

/**
 * NativeTcpForwarder serves a listening server (from listenTcp) in the native engine. The
 * target must be an IP literal (src/engine chooses the TypeScript relay otherwise).
 */
export class NativeTcpForwarder implements Forwarder<TcpStats> {
  readonly protocol = 'tcp' as const;
  readonly address: AddressInfo;
  private readonly engine: NativeEngine;
  private readonly binding: NativeBinding;
  private readonly id: number;
  private readonly settings: TcpSettings;
  private readonly logger: Logger;
  private readonly targetText: string;
  /** Counters the engine thread writes (atomic 8-byte stores); never moved, kept alive here. */
  private readonly counters = new Float64Array(new ArrayBuffer(8 * 8));
  private readonly lines: TcpLogLines;
  private readonly closing: Promise<void>;
  private resolveClosing!: () => void;
  private closeAsked = false;
  private drained = false;

  constructor(server: Server, options: TcpForwarderOptions, binding: NativeBinding) {
    this.settings = validateTcpOptions(options);
    // The engine takes the listener from Node (which then closes its own), so a second forwarder
    // would find it no longer listening: say what is really wrong, as TcpForwarder does.
    if (served.has(server) || (server instanceof TcpListener && server.isClaimed)) {
      throw new UsageError('this server already has a TcpForwarder');
    }
    const address = server.address();
    if (!server.listening || address === null || typeof address === 'string') {
      throw new UsageError('NativeTcpForwarder needs a listening TCP server (from listenTcp)');
    }
    const fd = handleFd(server);
    if (fd === undefined) throw new UsageError('the listening server has no descriptor');
    this.address = address;
    this.binding = binding;
    this.logger = options.logger ?? silentLogger();
    const { targetHost, targetPort } = this.settings;
    this.targetText = joinHostPort(targetHost, targetPort);
    this.lines = new TcpLogLines(this.logger, this.targetText);
    this.closing = new Promise((resolve) => (this.resolveClosing = resolve));
    this.engine = nativeEngine(binding);
    this.id = this.engine.add({ onEvent: (ev) => this.onEvent(ev), onLost: () => this.onLost() });
    try {
      binding.listen(
        fd,
        this.id,
        targetHost,
        targetPort,
        this.settings.connectTimeoutMs,
        this.settings.idleTimeoutMs,
        this.settings.halfCloseLingerMs,
        this.settings.maxConnections,
        (this.logger.isLevelEnabled('debug') ? LOG_OPENED : 0) |
          (this.logger.isLevelEnabled('info') ? LOG_CLOSED : 0),
        this.counters.buffer,
      );
    } catch (err) {
      this.engine.remove(this.id);
      throw err;
    }
    // Clients Node accepted before the engine took the listener (held, unread, by TcpListener)
    // are served too: the engine takes a duplicate of each descriptor, Node lets go of its own.
    const early = server instanceof TcpListener ? server.claim() : [];
    for (const socket of early) {
      const clientFd = handleFd(socket);
      if (clientFd !== undefined) binding.adopt(this.id, clientFd);
      socket.destroy();
    }
    // The engine holds its own descriptor now: Node's goes, so libuv stops accepting.
    served.add(server);
    server.close();
  }

  stats(): TcpStats {
    const c = this.counters;
    return {
      connectionsActive: c[ST_ACTIVE]!,
      connectionsTotal: c[ST_TOTAL]!,
      connectionsRejected: c[ST_REJECTED]!,
      connectFailures: c[ST_CONNECT_FAILURES]!,
      bytesClientToTarget: c[ST_UP]!,
      bytesTargetToClient: c[ST_DOWN]!,
      connectionsLooped: c[ST_LOOPED]!,
    };
  }

  connections(): ConnectionInfo[] {
    if (this.drained) return [];
    return this.binding
      .connections(this.id)
      .map(([client, host, targetLocal, openedAt, lastActivityAt, up, down, state]) => ({
        protocol: 'tcp',
        client,
        host,
        targetLocal,
        target: this.targetText,
        openedAt,
        lastActivityAt,
        bytesClientToTarget: up,
        bytesTargetToClient: down,
        state: STATES[state] ?? 'open',
      }));
  }

  /** close stops accepting and resolves once every open connection has finished. Idempotent. */
  close(): Promise<void> {
    if (!this.closeAsked && !this.drained) {
      this.closeAsked = true;
      this.binding.close(this.id);
    }
    return this.closing;
  }

  /** destroy stops accepting and cuts every connection now; resolves close(). Idempotent. */
  destroy(): void {
    this.closeAsked = true;
    if (!this.drained) this.binding.destroy(this.id);
  }

  private onEvent(ev: EngineEvent): void {
    switch (ev.type) {
      case EV_OPENED:
        this.logger.debug({ client: ev.client }, 'connection opened');
        return;
      case EV_CLOSED:
        this.closed(ev);
        return;
      case EV_REJECTED:
        this.lines.refused(ev.client, this.settings.maxConnections);
        return;
      case EV_LOOPED:
        this.lines.looped(ev.client);
        return;
      case EV_ACCEPT_ERROR: {
        const code = errnoName(ev.err);
        this.lines.acceptFailed(code, `accept ${code}`);
        return;
      }
      case EV_DRAINED:
        this.drained = true;
        this.engine.remove(this.id);
        this.resolveClosing();
        return;
    }
  }

  private closed(ev: EngineEvent): void {
    const how = HOWS[ev.how] ?? 'end';
    const code = errnoName(ev.err);
    if (how === 'connect-failed') {
      this.lines.connectFailed(
        ev.client,
        code,
        code === 'ETIMEDOUT'
          ? `connect timed out after ${this.settings.connectTimeoutMs} ms`
          : `connect ${code} ${this.targetText}`,
      );
    }
    this.lines.closed({
      client: ev.client,
      bytesClientToTarget: ev.up,
      bytesTargetToClient: ev.down,
      durationMs: ev.durationMs,
      how,
      code,
    });
  }

  private onLost(): void {
    this.logger.error('native engine dropped events for want of memory; counters stay exact');
  }
}
