// The Publisher: starts every published mapping all-or-nothing, reports what was bound, applies
// reloads, and stops by draining. Arrows point one way: publisher -> allocate / engine -> pure parts.
import type { Server } from 'node:net';
import { DEFAULT_HOST_IP, hostIpsFor, ipv6Listenable } from './host-ips.js';
import { PortAllocator, type Allocation, type Handle } from './allocate.js';
import { inService, UnsupportedError, UsageError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { joinHostPort, type Binding } from '../docker/report.js';
import { formatSpec, isIpLiteral, type PortMapping } from '../docker/spec.js';
import {
  findSelfLoop,
  loopCandidates,
  ownServiceHint,
  plannedListening,
  selfLoopError,
} from './self-loop.js';
import { listenTcp, type TcpForwarderOptions, type TcpStats } from '../tcp/forwarder.js';
import { bindUdp } from '../udp/bind.js';
import {
  busyPollStats,
  createTcpForwarder,
  createUdpForwarder,
  udpBindOptions,
  type BusyPollStats,
  type EngineChoice,
} from '../engine/index.js';
import type { UdpStats } from '../udp/forwarder.js';
import type { ConnectionInfo, Forwarder, TcpDialer, UdpDialer } from '../forwarder.js';

/** PublishRequest is one parsed `-p` mapping and where its target port lives. */
export interface PublishRequest {
  mapping: PortMapping;
  /** Docker's "container IP": an IP literal or a hostname. */
  targetHost: string;
  /** Service name (compose files); shown in logs, output and `portpub port`. */
  name?: string;
  /**
   * dial opens the target side instead of dialling targetHost (a TcpDialer for tcp, a UdpDialer
   * for udp): `portpub run` reaches the service inside its namespace this way. targetHost is then
   * only the label shown and stored. Such a mapping is served by this process alone (no workers).
   */
  dial?: TcpDialer | UdpDialer;
}

/** BindingStats is a binding with its live counters. */
export type { Binding, BusyPollStats };

/** BindingStats is a binding with its live counters. */
export type BindingStats = Binding & ({ tcp: TcpStats } | { udp: UdpStats });

export interface TcpOptions {
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxConnections?: number;
  halfCloseLingerMs?: number;
}

export interface UdpOptions {
  flowTimeoutMs?: number;
  maxFlows?: number;
}

/**
 * TcpShare takes every listening TCP socket to serve it from other processes too, beside this
 * one (the CLI's --tcp-workers, src/workers.ts). unserve resolves once they have let go of it.
 */
export interface TcpShare {
  serve(
    id: number,
    server: Server,
    options: Omit<TcpForwarderOptions, 'logger'>,
    logFields: Record<string, string>,
  ): void;
  unserve(id: number): Promise<void>;
}

export interface PublisherOptions {
  publish: readonly PublishRequest[];
  /** Host address used when a mapping names none (dockerd --ip); default 0.0.0.0 (+ :: when IPv6 works). */
  defaultHostIp?: string;
  tcp?: TcpOptions;
  udp?: UdpOptions;
  logger?: Logger;
  /** Shared bookkeeping; a new one (reading the kernel's ranges) by default. */
  allocator?: PortAllocator;
  /** Also serve every TCP socket from other processes (see TcpShare). */
  tcpShare?: TcpShare;
  /**
   * engine picks the data plane per binding (src/engine): auto (default: native where it
   * loaded), native, or js. Sockets shared with TCP workers are served in TypeScript.
   */
  engine?: EngineChoice;
  /**
   * loopsVia checks, for a TCP binding with a hostname target, the address a connection reached
   * (TcpForwarderOptions.loopsVia): true when it goes round through other portpubs back here.
   */
  loopsVia?: (binding: Binding, address: string) => boolean | undefined;
}

/**
 * DRAIN_TIMEOUT_MS is how long close() lets open connections finish before cutting them, by
 * default; the CLI's --drain-timeout default too (Docker has no drain: this is portpub's choice).
 */
export const DRAIN_TIMEOUT_MS = 10_000;

/** UpdateResult counts what a reload did to the published mappings. */
export interface UpdateResult {
  added: number;
  removed: number;
  kept: number;
}

/** One published mapping: its request, the sockets it got, and the forwarders serving them. */
interface Entry {
  key: string;
  request: PublishRequest;
  bindings: Binding[];
  forwarders: Forwarder<TcpStats | UdpStats>[];
  allocation: Allocation<Handle>;
  /** The TcpShare ids of its TCP sockets. */
  shared: number[];
}

/**
 * Publisher is a running set of published ports (what the CLI serves): start one with
 * `startPublisher`; `bindings` says what was bound, `update()` reloads, `close()` drains and
 * `destroy()` cuts.
 */
export class Publisher {
  private entries: Entry[] = [];
  /** Entries that stopped accepting and still drain (a stop, a reload that removed them). */
  private readonly drainingEntries = new Set<Entry>();
  private readonly draining = new Set<Promise<void>>();
  private closed = false;
  private nextShareId = 1;

  private constructor(
    private readonly options: PublisherOptions,
    private readonly logger: Logger,
    private readonly allocator: PortAllocator,
    private readonly hostIpsFor: (m: PortMapping) => string[],
  ) {}

  /** start binds every mapping or none: on the first failure everything bound so far is closed. */
  static async start(options: PublisherOptions): Promise<Publisher> {
    const defaultHostIp = options.defaultHostIp ?? DEFAULT_HOST_IP;
    if (!isIpLiteral(defaultHostIp)) {
      throw new UsageError(`default host IP: invalid IP address: ${defaultHostIp}`);
    }
    const v6 = defaultHostIp === DEFAULT_HOST_IP && (await ipv6Listenable());
    const f = new Publisher(
      options,
      options.logger ?? silentLogger(),
      options.allocator ?? new PortAllocator(),
      (m) => hostIpsFor(m, defaultHostIp, v6),
    );
    f.entries = await f.bindAll(keyed(options.publish));
    return f;
  }

  /** bindings lists every bound socket, in the order the mappings were given. */
  get bindings(): Binding[] {
    return this.entries.flatMap((e) => e.bindings);
  }

  /**
   * stats returns each binding with its forwarder's counters: the bound ones in order, then those
   * still draining (their connections stay visible to stats, top, --metrics and --ui until done).
   */
  stats(): BindingStats[] {
    return this.shown().flatMap((e) =>
      e.bindings.map((b, i) => {
        const s = e.forwarders[i]!.stats();
        return b.protocol === 'tcp' ? { ...b, tcp: s as TcpStats } : { ...b, udp: s as UdpStats };
      }),
    );
  }

  /** connections lists each binding's live connections and flows, in stats() order. */
  connections(): ConnectionInfo[][] {
    return this.shown().flatMap((e) => e.forwarders.map((fw) => fw.connections()));
  }

  /** busyPoll is the native engine thread's busy polling, where it serves in this process. */
  busyPoll(): BusyPollStats | undefined {
    return busyPollStats();
  }

  private shown(): Entry[] {
    return this.drainingEntries.size === 0
      ? this.entries
      : [...this.entries, ...this.drainingEntries];
  }

  /**
   * update moves to a new set of mappings (a reload): mappings present before and after keep
   * their sockets and connections, new ones are bound all-or-nothing, removed ones stop accepting
   * and drain in the background. Removed ones let go of their ports first, so a port can move to
   * another mapping; if binding the new ones fails, the removed ones are bound again on the ports
   * they had and the error is thrown.
   */
  update(publish: readonly PublishRequest[]): Promise<UpdateResult> {
    // Reloads are read off the event loop, so two can finish close together: apply them in turn.
    const next = this.updating.then(() => this.applyUpdate(publish));
    this.updating = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private updating: Promise<void> = Promise.resolve();

  private async applyUpdate(publish: readonly PublishRequest[]): Promise<UpdateResult> {
    if (this.closed) throw new UsageError('publisher is closed');
    // A reload of tens of thousands of mappings: the keys are made in steps (see keyedInSteps).
    const wanted = await keyedInSteps(publish);
    if (this.closed) throw new UsageError('publisher is closed');
    const current = new Map(this.entries.map((e) => [e.key, e]));
    const wantedKeys = new Set(wanted.map(([key]) => key));
    const kept = this.entries.filter((e) => wantedKeys.has(e.key));
    const removed = this.entries.filter((e) => !wantedKeys.has(e.key));
    // Every process serving a removed socket lets go of it first, so its port can be bound again.
    await Promise.all(removed.map((e) => this.drain(e)));
    let added: Entry[];
    try {
      added = await this.bindAll(
        wanted.filter(([key]) => !current.has(key)),
        kept,
      );
    } catch (err) {
      const restored: Entry[] = [];
      for (const e of removed) {
        try {
          restored.push(await this.bindOne(e.key, e.request, String(e.bindings[0]!.hostPort)));
        } catch (restoreErr) {
          this.logger.error(
            { err: restoreErr, mapping: formatSpec(e.request.mapping) },
            'could not restore a mapping after a failed reload',
          );
        }
      }
      const order = new Map([...kept, ...restored].map((e) => [e.key, e]));
      this.entries = [...current.keys()].filter((k) => order.has(k)).map((k) => order.get(k)!);
      throw err;
    }
    const byKey = new Map([...kept, ...added].map((e) => [e.key, e]));
    this.entries = wanted.map(([key]) => byKey.get(key)!);
    this.holdWhileEmpty();
    return { added: added.length, removed: removed.length, kept: kept.length };
  }

  /**
   * close stops accepting everywhere and lets open connections finish for up to drainTimeoutMs,
   * then cuts whatever is left. Idempotent.
   */
  async close(drainTimeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    this.closed = true;
    this.holdWhileEmpty();
    const entries = this.entries;
    this.entries = [];
    for (const e of entries) void this.drain(e);
    const all = Promise.all([...this.draining]).then(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), drainTimeoutMs);
    });
    const result = await Promise.race([all, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.logger.warn({ drainTimeoutMs }, 'drain timeout reached: cutting remaining connections');
      this.destroy();
      await all;
    }
  }

  /** destroy cuts every connection and closes every socket now. Idempotent. */
  destroy(): void {
    this.closed = true;
    this.holdWhileEmpty();
    for (const e of this.entries) void this.drain(e);
    this.entries = [];
    for (const fw of this.allForwarders) fw.destroy();
  }

  private readonly allForwarders = new Set<Forwarder<TcpStats | UdpStats>>();

  /** idle keeps the process alive while a reload has left nothing to publish. */
  private idle: NodeJS.Timeout | undefined;

  /**
   * holdWhileEmpty: with no sockets and no timers Node would simply exit (code 13 under a
   * top-level await), so a reload to zero ports would end the process and no later reload could
   * bring ports back. While open and empty, a ref'd timer holds the process; it goes once a
   * reload publishes something again, or on close.
   */
  private holdWhileEmpty(): void {
    const empty = !this.closed && this.entries.length === 0;
    if (empty && !this.idle) {
      this.idle = setInterval(() => undefined, 1 << 30);
      this.logger.warn(
        'nothing to publish after the reload: still running, and a reload that adds ports will publish them',
      );
    } else if (!empty && this.idle) {
      clearInterval(this.idle);
      this.idle = undefined;
    }
  }

  /**
   * drain stops accepting on an entry's sockets and lets its connections finish (tracked in
   * `draining`); resolves once other processes serving its sockets have let go of them too.
   */
  private drain(e: Entry): Promise<void> {
    if (this.drainingEntries.has(e)) return this.unshare(e);
    e.allocation.release();
    const closes = e.forwarders.map((fw) => {
      const p = fw.close().finally(() => {
        this.draining.delete(p);
        this.allForwarders.delete(fw);
      });
      this.draining.add(p);
      return p;
    });
    this.drainingEntries.add(e);
    void Promise.allSettled(closes).then(() => this.drainingEntries.delete(e));
    return this.unshare(e);
  }

  private unshare(e: Entry): Promise<void> {
    const share = this.options.tcpShare;
    const ids = e.shared.splice(0);
    if (!share || ids.length === 0) return Promise.resolve();
    return Promise.all(ids.map((id) => share.unserve(id))).then(() => undefined);
  }

  /**
   * bindAll binds `keys` all-or-nothing beside the `kept` entries. No target may be one of this
   * process's own listening sockets (self-loop.ts): checked before binding where the ports are
   * known, and again once bound, for ports the kernel or a pool picked.
   */
  private async bindAll(
    keys: readonly [string, PublishRequest][],
    kept: readonly Entry[] = [],
  ): Promise<Entry[]> {
    for (const [, r] of keys) {
      if (r.mapping.protocol === 'sctp') {
        throw inService(
          new UnsupportedError(
            `cannot publish ${formatSpec(r.mapping)}: sctp is accepted by Docker's syntax, but ` +
              `Node.js has no SCTP sockets, so portpub cannot serve it`,
          ),
          r.name, // `up`: the message names the service, as every bind error's does
        );
      }
    }
    const candidates = await loopCandidates([
      ...kept.map((e) => e.request),
      ...keys.map(([, r]) => r),
    ]);
    const keptListening = kept.flatMap((e) => e.bindings);
    const planned = findSelfLoop(candidates, [
      ...keptListening,
      ...plannedListening(
        keys.map(([, r]) => ({ mapping: r.mapping, hostIps: this.hostIpsFor(r.mapping) })),
      ),
    ]);
    if (planned) throw selfLoopError(planned);
    const entries: Entry[] = [];
    try {
      for (const [key, request] of keys) entries.push(await this.bindOne(key, request));
      const bound = findSelfLoop(candidates, [
        ...keptListening,
        ...entries.flatMap((e) => e.bindings),
      ]);
      if (bound) throw selfLoopError(bound);
    } catch (err) {
      for (const e of entries) {
        e.allocation.release();
        for (const fw of e.forwarders) fw.destroy();
      }
      await Promise.all(entries.map((e) => this.unshare(e)));
      throw err;
    }
    for (const e of entries) {
      for (const b of e.bindings) {
        this.logger.info(
          {
            ...(b.name ? { service: b.name } : {}),
            address: joinHostPort(b.hostIp, b.hostPort),
            protocol: b.protocol,
            target: joinHostPort(b.targetHost, b.targetPort),
          },
          'listening',
        );
      }
    }
    return entries;
  }

  /** bindOne binds one mapping's addresses (on hostPort instead of the mapping's, when given). */
  private async bindOne(key: string, request: PublishRequest, hostPort?: string): Promise<Entry> {
    const { mapping, targetHost, name } = request;
    const protocol = mapping.protocol as 'tcp' | 'udp';
    const hostIps = this.hostIpsFor(mapping);
    const req = { hostIps, hostPort: hostPort ?? mapping.hostPort, protocol };
    const udpTarget = { targetHost, ...(request.dial ? { dial: request.dial as UdpDialer } : {}) };
    let allocation: Allocation<Handle>;
    try {
      allocation =
        protocol === 'tcp'
          ? await this.allocator.allocate(req, (ip, port) =>
              listenTcp(ip, port, { ipv6Only: ip === '::' }),
            )
          : await this.allocator.allocate(req, (ip, port) =>
              // One socket for the native engine (IP_PKTINFO), one per address for TypeScript.
              bindUdp(ip, port, udpBindOptions(udpTarget, this.options.engine)),
            );
    } catch (err) {
      const hinted = ownServiceHint(err, mapping, targetHost, request.dial !== undefined);
      throw inService(hinted, name); // `up`: the message names the service
    }
    const bindings: Binding[] = hostIps.map((hostIp) => ({
      ...(name !== undefined ? { name } : {}),
      hostIp,
      hostPort: allocation.port,
      targetHost,
      targetPort: mapping.targetPort,
      protocol,
    }));
    const forwarders: Forwarder<TcpStats | UdpStats>[] = [];
    const logFields: Record<string, string>[] = [];
    const loopsVia = this.options.loopsVia;
    try {
      allocation.handles.forEach((handle, i) => {
        const b = bindings[i]!;
        const fields = {
          ...(name ? { service: name } : {}),
          binding: `${joinHostPort(b.hostIp, b.hostPort)}/${protocol}`,
          target: joinHostPort(targetHost, mapping.targetPort),
        };
        logFields.push(fields);
        const logger = this.logger.child(fields);
        const common = { targetHost, targetPort: mapping.targetPort, logger };
        const fw =
          protocol === 'tcp'
            ? createTcpForwarder(
                handle as Awaited<ReturnType<typeof listenTcp>>,
                {
                  ...common,
                  ...this.options.tcp,
                  ...(request.dial ? { dial: request.dial as TcpDialer } : {}),
                  ...(loopsVia ? { loopsVia: (address: string) => loopsVia(b, address) } : {}),
                },
                // TCP workers accept from Node's listening socket, which the native engine closes.
                this.options.tcpShare && !request.dial ? 'js' : this.options.engine,
              )
            : createUdpForwarder(
                handle as Awaited<ReturnType<typeof bindUdp>>,
                {
                  ...common,
                  ...this.options.udp,
                  ...(request.dial ? { dial: request.dial as UdpDialer } : {}),
                },
                this.options.engine,
              );
        forwarders.push(fw);
        this.allForwarders.add(fw);
      });
    } catch (err) {
      for (const fw of forwarders) fw.destroy();
      for (const h of allocation.handles.slice(forwarders.length)) h.close();
      allocation.release();
      throw err;
    }
    const shared: number[] = [];
    const share = this.options.tcpShare;
    if (share && protocol === 'tcp' && !request.dial) {
      allocation.handles.forEach((handle, i) => {
        const id = this.nextShareId++;
        share.serve(
          id,
          handle as Server,
          { targetHost, targetPort: mapping.targetPort, ...this.options.tcp },
          logFields[i]!,
        );
        shared.push(id);
      });
    }
    return { key, request, bindings, forwarders, allocation, shared };
  }
}

/** startPublisher binds every mapping (all or nothing) and starts serving them. */
export function startPublisher(options: PublisherOptions): Promise<Publisher> {
  return Publisher.start(options);
}

/** keyed gives each request a stable identity for reloads; repeats get an occurrence number. */
function keyed(
  publish: readonly PublishRequest[],
  seen = new Map<string, number>(),
): [string, PublishRequest][] {
  return publish.map((r) => {
    const base = `${r.name ?? ''}|${r.targetHost}|${formatSpec(r.mapping)}`;
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return [`${base}#${n}`, r];
  });
}

/** KEY_CHUNK: requests keyed between two turns of the event loop during a reload. */
const KEY_CHUNK = 2048;

/**
 * keyedInSteps is keyed() for a reload, yielding to the event loop every KEY_CHUNK requests, so
 * that a file of 65,535 mappings never holds up the connections being relayed (issue 11).
 */
async function keyedInSteps(
  publish: readonly PublishRequest[],
): Promise<[string, PublishRequest][]> {
  const out: [string, PublishRequest][] = [];
  const seen = new Map<string, number>(); // shared: a repeat's number counts the earlier chunks
  for (let i = 0; i < publish.length; i += KEY_CHUNK) {
    if (i > 0) await new Promise((resolve) => setImmediate(resolve));
    out.push(...keyed(publish.slice(i, i + KEY_CHUNK), seen));
  }
  return out;
}

/** Forwarding is the Publisher's former name, kept for the library API (src/index.ts). */
export { Publisher as Forwarding };
/** ForwardingOptions: see Forwarding. */
export type ForwardingOptions = PublisherOptions;
/** startForwarding: see Forwarding. */
export const startForwarding = startPublisher;
