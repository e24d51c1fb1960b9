// NativeUdpForwarder: one UDP binding served by the native engine (native/udp.c) with the
// TypeScript forwarder's options, stats, drop reasons and log lines (src/udp/forwarder.ts). The
// binding is ONE socket (bindUdp's `single`, a wildcard served whole): the engine reads it with
// recvmmsg and IP_PKTINFO and answers each client from the address it sent to. Node bound it;
// the engine serves a duplicate of its descriptor and Node's socket is closed.
import { lookup } from 'node:dns/promises';
import { constants } from 'node:os';
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import type { BoundAddress, ConnectionInfo, Forwarder } from '../forwarder.js';
import type { Logger } from '../logger.js';
import { dgramFd, dgramStopReading } from '../node-internals.js';
import { joinHostPort } from '../address.js';
import type { UdpListener } from '../udp/bind.js';
import {
  UDP_DROP_REASONS,
  validateUdpOptions,
  type UdpDropReason,
  type UdpForwarderOptions,
  type UdpStats,
  type ValidUdpOptions,
} from '../udp/options.js';
import type { NativeBinding } from './load.js';
import {
  EV_DRAINED,
  EV_DROP,
  EV_FLOW_ENDED,
  EV_FLOW_OPENED,
  EV_UDP_ERROR,
  nativeEngine,
  type EngineEvent,
  type NativeEngine,
} from './native-engine.js';

/** REASONS is native/engine.h's enum drop, in UdpStats.drops order. */
const REASONS = Object.keys(UDP_DROP_REASONS) as UdpDropReason[];
/** Stats slots (native/engine.h enum ustat_slot). */
const US_ACTIVE = 0;
const US_TOTAL = 1;
const US_DGRAMS_UP = 2;
const US_DGRAMS_DOWN = 3;
const US_UP = 4;
const US_DOWN = 5;
const US_EVICTIONS = 6;
const US_DROPS = 7;
/** How a flow ended (native/engine.h enum flow_end). */
const FE_EXPIRED = 1;
const FE_EVICTED = 2;
const FE_BROKEN = 3;
const FE_SETUP = 5;
/** WARN_INTERVAL_MS: at most one warning per kind per interval, as the TypeScript forwarder. */
const WARN_INTERVAL_MS = 5_000;
/** RESOLVE_RETRY_MS: a target hostname whose lookup failed is looked up again this much later. */
const RESOLVE_RETRY_MS = 5_000;

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, n]) => [n, name]),
);

function errnoError(err: number, syscall: string): Error {
  const code = ERRNO_NAMES.get(err) ?? `errno ${err}`;
  return Object.assign(new Error(`${syscall} ${code}`), { code, errno: -err, syscall });
}

/**
 * NativeUdpForwarder relays one single-socket UdpListener in the native engine. No dialer or
 * clock may be given (src/engine chooses the TypeScript forwarder otherwise); a hostname target
 * is looked up here, once, and the engine relays to the address it gave.
 */
export class NativeUdpForwarder implements Forwarder<UdpStats> {
  readonly protocol = 'udp' as const;
  readonly address: BoundAddress;
  private readonly engine: NativeEngine;
  private readonly binding: NativeBinding;
  private readonly id: number;
  private readonly log: Logger;
  private readonly maxFlows: number;
  private readonly targetText: string;
  private readonly counters = new Float64Array(new ArrayBuffer(8 * (US_DROPS + REASONS.length)));
  /** Drops already told in a warning, per reason: the next one says how many came between. */
  private readonly warnedDrops = new Map<UdpDropReason, number>();
  private readonly lastWarn = new Map<string, number>();
  private readonly closing: Promise<void>;
  private resolveClosing!: () => void;
  private done = false;
  private readonly listener: UdpListener;
  private readonly fd: number;
  private readonly options: ValidUdpOptions;
  /** listening: the engine serves the socket (a hostname target is looked up first). */
  private listening = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(listener: UdpListener, options: UdpForwarderOptions, binding: NativeBinding) {
    const o = validateUdpOptions(options);
    const socket = listener.sockets.length === 1 ? listener.sockets[0] : undefined;
    const fd = socket ? dgramFd(socket) : undefined;
    if (socket === undefined || fd === undefined) {
      throw new UsageError('NativeUdpForwarder needs a listener bound with one socket (single)');
    }
    this.address = {
      address: listener.host,
      family: isIP(listener.host) === 6 ? 'IPv6' : 'IPv4',
      port: listener.port,
    };
    this.binding = binding;
    this.listener = listener;
    this.fd = fd;
    this.options = o;
    this.log = o.logger;
    this.maxFlows = o.maxFlows;
    this.targetText = joinHostPort(o.targetHost, o.targetPort);
    this.closing = new Promise((resolve) => (this.resolveClosing = resolve));
    this.engine = nativeEngine(binding);
    this.id = this.engine.add({ onEvent: (ev) => this.onEvent(ev), onLost: () => this.onLost() });
    if (isIP(o.targetHost) !== 0) {
      try {
        this.listen(o.targetHost);
      } catch (err) {
        this.engine.remove(this.id);
        throw err;
      }
      return;
    }
    // A hostname: the engine sends to an address, so look it up first (once, as the TypeScript
    // engine does). Meanwhile libuv must not read the socket, or it would read and discard the
    // clients' datagrams: they wait in the kernel buffer for the engine.
    dgramStopReading(socket);
    this.resolve();
  }

  /** listen hands the socket to the engine, relaying to address; Node's socket goes. */
  private listen(address: string): void {
    const o = this.options;
    this.binding.udpListen(
      this.fd,
      this.id,
      address,
      o.targetPort,
      Math.max(1, Math.ceil(o.flowTimeoutMs)),
      o.maxFlows,
      this.log.isLevelEnabled('debug'),
      this.counters.buffer,
    );
    this.listening = true;
    // The engine holds its own descriptor now; Node's socket goes, so libuv stops reading it.
    this.listener.close();
  }

  /**
   * resolve looks the target hostname up and starts the engine on the answer; a failed lookup
   * is warned about (at most once per 5 s) and retried every RESOLVE_RETRY_MS until close.
   */
  private resolve(): void {
    const { targetHost } = this.options;
    lookup(targetHost).then(
      ({ address }) => {
        if (this.done) return;
        this.log.debug({ targetHost, address }, 'udp target resolved');
        try {
          this.listen(address);
        } catch (err) {
          this.log.error({ err }, 'udp binding could not be served by the native engine');
          this.destroy();
        }
      },
      (err: Error) => {
        if (this.done) return;
        this.warn(
          'flow-setup',
          { err, targetHost },
          'udp target lookup failed: datagrams wait (or drop) until it resolves',
        );
        this.retry = setTimeout(() => this.resolve(), RESOLVE_RETRY_MS);
        this.retry.unref();
      },
    );
  }

  stats(): UdpStats {
    const c = this.counters;
    const drops = {} as Record<UdpDropReason, number>;
    REASONS.forEach((reason, i) => (drops[reason] = c[US_DROPS + i]!));
    return {
      flowsActive: c[US_ACTIVE]!,
      flowsTotal: c[US_TOTAL]!,
      datagramsClientToTarget: c[US_DGRAMS_UP]!,
      datagramsTargetToClient: c[US_DGRAMS_DOWN]!,
      bytesClientToTarget: c[US_UP]!,
      bytesTargetToClient: c[US_DOWN]!,
      drops,
      evictions: c[US_EVICTIONS]!,
    };
  }

  /** connections lists the live flows, least recently active first. */
  connections(): ConnectionInfo[] {
    if (this.done || !this.listening) return [];
    return this.binding
      .udpFlows(this.id, this.address.port)
      .map(([client, host, targetLocal, openedAt, lastActivityAt, up, down]) => ({
        protocol: 'udp',
        client,
        host,
        targetLocal,
        target: this.targetText,
        openedAt,
        lastActivityAt,
        bytesClientToTarget: up,
        bytesTargetToClient: down,
        state: 'open',
      }));
  }

  /** close closes the socket and every flow (UDP has nothing to drain). Idempotent. */
  close(): Promise<void> {
    this.destroy();
    return this.closing;
  }

  /** destroy closes everything now. Idempotent. */
  destroy(): void {
    if (this.done) return;
    if (this.listening) return void this.binding.udpDestroy(this.id);
    // Still looking the target up: nothing is in the engine yet.
    this.done = true;
    clearTimeout(this.retry);
    this.listener.close();
    this.engine.remove(this.id);
    this.resolveClosing();
  }

  private onEvent(ev: EngineEvent): void {
    switch (ev.type) {
      case EV_FLOW_OPENED: {
        // "client local": the engine names the address the client sent to after a space.
        const [client, local] = ev.client.split(' ');
        this.log.debug({ client, local, targetSourcePort: ev.extra }, 'udp flow opened');
        return;
      }
      case EV_FLOW_ENDED:
        this.flowEnded(ev);
        return;
      case EV_DROP:
        this.dropped(ev);
        return;
      case EV_UDP_ERROR:
        this.warn(
          'listener-error',
          { err: errnoError(ev.err, 'recvmmsg') },
          'udp listening socket error (still listening)',
        );
        return;
      case EV_DRAINED:
        this.flushWarnings();
        this.done = true;
        this.engine.remove(this.id);
        this.resolveClosing();
        return;
    }
  }

  private flowEnded(ev: EngineEvent): void {
    const client = ev.client;
    if (ev.how === FE_EXPIRED) {
      this.log.debug(
        { client, targetSourcePort: ev.extra, toTarget: ev.up, toClient: ev.down },
        'udp flow expired',
      );
    } else if (ev.how === FE_EVICTED) {
      this.warn(
        'flow-evicted',
        { client, flows: this.maxFlows },
        'udp flow table full: evicted the least recently active flow',
      );
    } else if (ev.how === FE_BROKEN) {
      this.warn(
        'flow-error',
        { client, err: errnoError(ev.err, 'recvmmsg') },
        'udp flow socket error: flow closed',
      );
    } else if (ev.how === FE_SETUP) {
      this.warn(
        'flow-setup',
        { client, err: errnoError(ev.err, 'connect') },
        'udp flow to the target could not be set up: datagrams dropped',
      );
    }
  }

  /** dropped warns about a drop; the engine sends at most one per reason per 5 s. */
  private dropped(ev: EngineEvent): void {
    const reason = REASONS[ev.how];
    if (reason === undefined || reason === 'flow-setup') return; // flow-setup: its own warning
    const total = ev.up; // the reason's count when the engine reported this drop
    const suppressed = total - (this.warnedDrops.get(reason) ?? 0) - 1;
    this.warnedDrops.set(reason, total);
    this.log.warn(
      {
        reason,
        client: ev.client,
        ...(ev.err !== 0 ? { err: errnoError(ev.err, 'send') } : {}),
        ...(suppressed > 0 ? { suppressed } : {}),
      },
      `udp datagram dropped: ${UDP_DROP_REASONS[reason]}`,
    );
  }

  /** flushWarnings says, at close, how many drops each reason held back since its last line. */
  private flushWarnings(): void {
    REASONS.forEach((reason, i) => {
      if (reason === 'flow-setup') return;
      const warned = this.warnedDrops.get(reason);
      if (warned === undefined) return;
      const suppressed = this.counters[US_DROPS + i]! - warned;
      if (suppressed > 0) {
        this.log.warn({ reason, suppressed }, `udp datagram dropped: ${UDP_DROP_REASONS[reason]}`);
      }
    });
  }

  private warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    const now = performance.now();
    const last = this.lastWarn.get(kind);
    if (last !== undefined && now - last < WARN_INTERVAL_MS) return;
    this.lastWarn.set(kind, now);
    this.log.warn({ reason: kind, ...fields }, msg);
  }

  private onLost(): void {
    this.log.error('native engine dropped events for want of memory; counters stay exact');
  }
}
