// UDP forwarding the way docker-proxy does it: one connected socket to the target per client
// address (so the target sees one stable source port per client), replies sent back to the client
// from the listening socket the client wrote to, flows expiring after a quiet spell. bind.ts binds
// the host sockets, flow.ts relays one client, sessions.ts is the flow table.
import type dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { joinHostPort } from '../address.js';
import type { BoundAddress, ConnectionInfo, Forwarder, UdpDialer } from '../forwarder.js';
import { WarnLimiter } from '../log-limit.js';
import type { Logger } from '../logger.js';
import { boundAddress, type ListenerChange, type UdpListener } from './bind.js';
import { Flow, isOwnTargetSocket, type FlowOwner } from './flow.js';
import {
  UDP_DROP_REASONS,
  noDrops,
  validateUdpOptions,
  type UdpDropReason,
  type UdpForwarderOptions,
  type UdpStats,
} from './options.js';
import { SessionTable, type Clock } from './sessions.js';

export { UDP_DEFAULTS, UDP_DROP_REASONS } from './options.js';
export type { UdpDropReason, UdpForwarderOptions, UdpStats } from './options.js';

/** WARN_INTERVAL_MS: at most one warning per drop reason per interval; the rest are counted. */
const WARN_INTERVAL_MS = 5_000;
/** RESOLVE_RETRY_MS: after a failed lookup of a target hostname, new flows fail fast this long. */
const RESOLVE_RETRY_MS = 5_000;

interface Target {
  address: string;
  family: 4 | 6;
}

/**
 * UdpForwarder relays datagrams between clients of a UdpListener and one target. Expiry is one
 * coarse sweep timer; flows live flowTimeoutMs to flowTimeoutMs + sweep interval after the last
 * datagram sent to the target (Docker: 90-180 s). Replies do not extend a flow (Docker's rule).
 */
export class UdpForwarder implements Forwarder<UdpStats> {
  readonly protocol = 'udp' as const;
  readonly address: BoundAddress;
  private readonly listener: UdpListener;
  private readonly log: Logger;
  private readonly now: Clock;
  private readonly targetHost: string;
  private readonly targetPort: number;
  private readonly dial: UdpDialer | undefined;
  private readonly table: SessionTable<Flow>;
  private readonly handlers = new Map<
    dgram.Socket,
    (msg: Buffer, rinfo: dgram.RemoteInfo) => void
  >();
  private readonly onListenerError: (err: Error) => void;
  private readonly warnings: WarnLimiter;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly watchTimer: NodeJS.Timeout | undefined;
  private readonly owner: FlowOwner;
  private target: Target | undefined;
  private resolving: Promise<void> | undefined;
  private resolveFailedAt = -Infinity;
  private readonly awaitingTarget = new Set<Flow>();
  /**
   * byPort indexes the live flows by client port, one flow per port. The hot path looks a
   * datagram's flow up by its port and compares the address, instead of building the string key
   * (a new string to hash per datagram); a miss, or two clients on one port from different
   * addresses, falls back to the table.
   */
  private readonly byPort = new Map<number, Flow>();
  private closed = false;
  private closing: Promise<void> | undefined;

  private flowsTotal = 0;
  private evictions = 0;
  private c2tDatagrams = 0;
  private c2tBytes = 0;
  private t2cDatagrams = 0;
  private t2cBytes = 0;
  private readonly drops = noDrops();

  constructor(listener: UdpListener, options: UdpForwarderOptions) {
    const o = validateUdpOptions(options);
    this.listener = listener;
    this.log = o.logger;
    this.now = o.now;
    this.targetHost = o.targetHost;
    this.targetPort = o.targetPort;
    this.dial = o.dial;
    this.table = new SessionTable<Flow>({
      idleTimeoutMs: o.flowTimeoutMs,
      maxSessions: o.maxFlows,
      now: o.now,
    });
    this.warnings = new WarnLimiter(this.log, this.now, WARN_INTERVAL_MS);
    this.address = {
      address: listener.host,
      family: isIP(listener.host) === 6 ? 'IPv6' : 'IPv4',
      port: listener.port,
    };
    const family = isIP(o.targetHost);
    if (family !== 0) this.target = { address: o.targetHost, family: family as 4 | 6 };
    this.owner = this.makeOwner();

    this.onListenerError = (err) =>
      this.warnings.warn('listener-error', { err }, 'udp listening socket error (still listening)');
    for (const s of listener.sockets) this.adopt(s);

    // The sweep runs often enough for a short timeout (tests) and at most once a second.
    const sweepMs = Math.min(1000, Math.max(10, Math.floor(o.flowTimeoutMs / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs).unref();
    if (listener.refresh && o.addressWatchIntervalMs > 0) {
      this.watchTimer = setInterval(
        () => void this.refreshAddresses(),
        o.addressWatchIntervalMs,
      ).unref();
    }
  }

  /** stats returns a snapshot of the counters. */
  stats(): UdpStats {
    return {
      flowsActive: this.table.size,
      flowsTotal: this.flowsTotal,
      datagramsClientToTarget: this.c2tDatagrams,
      datagramsTargetToClient: this.t2cDatagrams,
      bytesClientToTarget: this.c2tBytes,
      bytesTargetToClient: this.t2cBytes,
      drops: { ...this.drops },
      evictions: this.evictions,
    };
  }

  /**
   * connections lists the live flows, least recently active first. lastActivityAt counts
   * datagrams both ways (expiry counts only those to the target). It is read on the forwarder's
   * own clock and turned into wall-clock time, so it can land a millisecond before openedAt (a
   * Date.now() reading); a flow is never shown idle for longer than it has lived.
   */
  connections(): ConnectionInfo[] {
    const now = this.now();
    const wall = Date.now();
    return this.table.values().map((flow) => ({
      protocol: 'udp',
      client: flow.key,
      host: joinHostPort(boundAddress(flow.via), this.address.port),
      targetLocal: flow.local,
      target: flow.target,
      openedAt: flow.openedAt,
      lastActivityAt: Math.max(
        flow.openedAt,
        wall - (now - Math.max(flow.session.lastActive, flow.lastReply)),
      ),
      bytesClientToTarget: flow.bytesToTarget,
      bytesTargetToClient: flow.bytesToClient,
      state: flow.pending === null ? 'open' : 'connecting',
    }));
  }

  /**
   * close stops receiving and closes every flow socket and the listener, resolving once all of
   * them are closed. UDP has nothing to drain, so it is destroy() plus waiting. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const sockets = [...this.listener.sockets];
    for (const flow of this.table.values()) if (flow.socket) sockets.push(flow.socket);
    for (const flow of this.awaitingTarget) if (flow.socket) sockets.push(flow.socket);
    const done = sockets.map((s) => new Promise<void>((resolve) => s.once('close', resolve)));
    this.destroy();
    this.closing = Promise.all(done).then(() => undefined);
    return this.closing;
  }

  /** destroy closes everything immediately. Idempotent. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing ??= Promise.resolve();
    clearInterval(this.sweepTimer);
    if (this.watchTimer) clearInterval(this.watchTimer);
    for (const [s, onMessage] of this.handlers) {
      s.removeListener('message', onMessage);
      s.removeListener('error', this.onListenerError);
    }
    this.handlers.clear();
    this.listener.close();
    for (const flow of this.table.clear()) this.endFlow(flow);
    for (const flow of this.awaitingTarget) this.endFlow(flow);
    this.awaitingTarget.clear();
    this.warnings.flush();
  }

  /** makeOwner is what flows report to; a separate object keeps it off the public surface. */
  private makeOwner(): FlowOwner {
    return {
      closing: () => this.closed,
      now: this.now,
      drop: (reason, flow, err) => this.drop(reason, flow.key, err),
      count: (reason, n) => {
        this.drops[reason] += n;
      },
      connected: (flow) =>
        this.log.debug(
          { client: flow.key, local: boundAddress(flow.via), targetSourcePort: flow.sourcePort },
          'udp flow opened',
        ),
      failed: (flow, err) => this.failFlow(flow, err),
      broken: (flow, err) => {
        this.warnings.warn(
          'flow-error',
          { client: flow.key, err },
          'udp flow socket error: flow closed',
        );
        this.table.remove(flow.session);
        this.endFlow(flow);
      },
      sentToTarget: (bytes) => {
        this.c2tDatagrams++;
        this.c2tBytes += bytes;
      },
      sentToClient: (bytes) => {
        this.t2cDatagrams++;
        this.t2cBytes += bytes;
      },
    };
  }

  // -- client -> target --------------------------------------------------------------------

  private adopt(s: dgram.Socket): void {
    const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void =>
      this.fromClient(msg, rinfo, s);
    this.handlers.set(s, onMessage);
    s.on('message', onMessage);
    s.on('error', this.onListenerError);
  }

  private fromClient(msg: Buffer, rinfo: dgram.RemoteInfo, via: dgram.Socket): void {
    let flow = this.byPort.get(rinfo.port);
    if (flow === undefined || flow.clientAddress !== rinfo.address) {
      // The key doubles as the client's name in logs, so IPv6 gets Go's JoinHostPort brackets.
      const key =
        rinfo.family === 'IPv6'
          ? `[${rinfo.address}]:${rinfo.port}`
          : `${rinfo.address}:${rinfo.port}`;
      const session = this.table.get(key);
      if (session === undefined) {
        // Checked per new client only: a looped datagram never gets a flow to hit later.
        if (isOwnTargetSocket(key)) this.drop('loop', key);
        else this.openFlow(key, rinfo, via, msg);
        return;
      }
      flow = session.value;
      this.byPort.set(flow.clientPort, flow);
    }
    this.table.touch(flow.session);
    flow.fromClient(msg, via);
  }

  /** openFlow starts a flow for a new client, holding its first datagram until connected. */
  private openFlow(key: string, rinfo: dgram.RemoteInfo, via: dgram.Socket, first: Buffer): void {
    const flow = new Flow(this.owner, key, rinfo.address, rinfo.port, via, first);
    const { session, evicted } = this.table.insert(key, flow);
    flow.session = session;
    this.byPort.set(flow.clientPort, flow);
    this.flowsTotal++;
    if (evicted) {
      this.evictions++;
      const old = evicted.value;
      this.warnings.warn(
        'flow-evicted',
        { client: old.key, flows: this.table.maxSessions },
        'udp flow table full: evicted the least recently active flow',
      );
      this.endFlow(old);
    }
    if (this.dial) this.dialFlow(flow, this.dial);
    else if (this.target) flow.connect(this.target.family, this.target.address, this.targetPort);
    else this.awaitTarget(flow);
  }

  /** dialFlow gets a flow's target socket from the dialer; its datagrams wait meanwhile. */
  private dialFlow(flow: Flow, dial: UdpDialer): void {
    let dialing: Promise<dgram.Socket>;
    try {
      dialing = dial();
    } catch (err) {
      this.failFlow(flow, err as Error);
      return;
    }
    dialing.then(
      (socket) => {
        if (!flow.closed) flow.adopt(socket);
        else closeQuietly(socket);
      },
      (err: Error) => this.failFlow(flow, err),
    );
  }

  // -- lifecycle ---------------------------------------------------------------------------

  private sweep(): void {
    for (const { value: flow } of this.table.expire()) {
      this.log.debug(
        {
          client: flow.key,
          targetSourcePort: flow.sourcePort,
          toTarget: flow.toTarget,
          toClient: flow.toClient,
        },
        'udp flow expired',
      );
      this.endFlow(flow);
    }
  }

  private awaitTarget(flow: Flow): void {
    this.awaitingTarget.add(flow);
    if (this.resolving) return;
    if (this.now() - this.resolveFailedAt < RESOLVE_RETRY_MS) {
      this.awaitingTarget.delete(flow);
      this.failFlow(flow, new Error(`lookup ${this.targetHost} failed recently`));
      return;
    }
    this.resolving = lookup(this.targetHost).then(
      ({ address, family }) => {
        this.resolving = undefined;
        if (this.closed) return;
        const target: Target = { address, family: family === 6 ? 6 : 4 };
        this.target = target;
        this.log.debug({ targetHost: this.targetHost, address }, 'udp target resolved');
        const waiting = [...this.awaitingTarget];
        this.awaitingTarget.clear();
        for (const f of waiting) {
          if (!f.closed) f.connect(target.family, target.address, this.targetPort);
        }
      },
      (err: Error) => {
        this.resolving = undefined;
        this.resolveFailedAt = this.now();
        const waiting = [...this.awaitingTarget];
        this.awaitingTarget.clear();
        for (const f of waiting) if (!f.closed) this.failFlow(f, err);
      },
    );
  }

  /** failFlow ends a flow whose socket could not be set up, dropping what it held. */
  private failFlow(flow: Flow, err: Error): void {
    if (flow.closed) return;
    this.drops['flow-setup'] += flow.pending?.length ?? 0;
    this.warnings.warn(
      'flow-setup',
      { client: flow.key, err },
      'udp flow to the target could not be set up: datagrams dropped',
    );
    flow.pending = null;
    this.table.remove(flow.session);
    this.endFlow(flow);
  }

  /** endFlow closes a flow; the caller has taken it out of the table. */
  private endFlow(flow: Flow): void {
    if (flow.closed) return;
    if (this.byPort.get(flow.clientPort) === flow) this.byPort.delete(flow.clientPort);
    flow.end();
  }

  private async refreshAddresses(): Promise<void> {
    if (!this.listener.refresh || this.closed) return;
    let change: ListenerChange;
    try {
      change = await this.listener.refresh();
    } catch (err) {
      this.warnings.warn('address-watch', { err }, 'udp local address scan failed');
      return;
    }
    if (this.closed) return;
    for (const s of change.removed) {
      const onMessage = this.handlers.get(s);
      if (onMessage) s.removeListener('message', onMessage);
      this.handlers.delete(s);
    }
    for (const s of change.added) this.adopt(s);
    if (change.removed.length > 0) {
      // A reply can no longer leave from a vanished address: its flows end (the client's next
      // datagram, to an address that exists, opens a new one).
      const removed = new Set(change.removed);
      for (const flow of this.table.values()) {
        if (!removed.has(flow.via)) continue;
        this.table.remove(flow.session);
        this.endFlow(flow);
      }
    }
    if (change.added.length > 0 || change.removed.length > 0) {
      this.log.info(
        {
          added: change.added.map(boundAddress),
          removed: change.removed.map(boundAddress),
        },
        'udp local addresses changed',
      );
    }
    for (const { address, error } of change.failed) {
      this.warnings.warn(
        'address-bind',
        { address, err: error },
        'udp could not bind a new local address: datagrams to it are not served',
      );
    }
  }

  private drop(reason: UdpDropReason, client: string, err?: Error): void {
    this.drops[reason]++;
    this.warnings.warn(
      reason,
      err ? { client, err } : { client },
      `udp datagram dropped: ${UDP_DROP_REASONS[reason]}`,
    );
  }
}

/** closeQuietly closes a socket that may be closed already (or is not one: a dialer's bug). */
function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // closed already
  }
}
