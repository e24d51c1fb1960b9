// UDP forwarding the way docker-proxy does it: one connected socket to the target per client
// address (so the target sees one stable source port per client), replies sent back to the client
// from the listening socket the client wrote to, flows expiring after a quiet spell.
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { UsageError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { SessionTable, monotonicClock, type Clock, type Session } from './sessions.js';

/** MAX_UDP_PAYLOAD_V4 is the largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP). */
export const MAX_UDP_PAYLOAD_V4 = 65_507;
/** MAX_UDP_PAYLOAD_V6 is the largest UDP payload over IPv6 without jumbograms (65535 - 8 UDP). */
export const MAX_UDP_PAYLOAD_V6 = 65_527;

/**
 * Socket buffer sizes requested with SO_RCVBUF/SO_SNDBUF. Linux caps them at net.core.rmem_max /
 * wmem_max (often 208 KiB) and then doubles them; even that cap holds several largest datagrams,
 * which is all whole-datagram relaying needs. Bigger requests only absorb bursts when an
 * administrator raised the caps.
 */
const LISTEN_RECV_BUFFER = 4 << 20;
const FLOW_RECV_BUFFER = 1 << 20;
const SEND_BUFFER = 1 << 20;
/**
 * SEND_QUEUE_LIMIT bounds what libuv may queue in user space on one socket when the kernel's
 * send buffer is full; beyond it a datagram is dropped and counted, never queued.
 */
const SEND_QUEUE_LIMIT = 1 << 20;
/** PENDING_LIMIT bounds the datagrams one flow holds while its target socket is being set up. */
const PENDING_LIMIT = 64;
/** WARN_INTERVAL_MS: at most one warning per drop reason per interval; the rest are counted. */
const WARN_INTERVAL_MS = 5_000;
/** RESOLVE_RETRY_MS: after a failed lookup of a target hostname, new flows fail fast this long. */
const RESOLVE_RETRY_MS = 5_000;

const DEFAULTS = {
  flowTimeoutMs: 90_000,
  maxFlows: 4096,
  addressWatchIntervalMs: 10_000,
} as const;

// ---------------------------------------------------------------------------------------------
// Binding

/** PORT_ATTEMPTS bounds how often a wildcard bind to port 0 picks a new port after losing a race. */
const PORT_ATTEMPTS = 8;

/** UdpListener: the bound sockets of one UDP binding (one host IP, one port). */
export interface UdpListener {
  readonly host: string;
  readonly port: number;
  /**
   * sockets: for a specific address, or any address bound with `single`, its one socket. For a
   * wildcard, one socket per local address of the family (and the wildcard alone, as a
   * placeholder holding the port, while the family has no local address).
   */
  readonly sockets: readonly dgram.Socket[];
  close(): void;
  /**
   * refresh (per-address wildcard listeners only) binds sockets for local addresses that appeared
   * and closes those whose address went away. The forwarder calls it periodically.
   */
  refresh?: () => Promise<ListenerChange>;
}

/** ListenerChange is what one refresh() did. */
export interface ListenerChange {
  added: dgram.Socket[];
  removed: dgram.Socket[];
  /** Addresses that could not be bound this time (retried at the next refresh). */
  failed: { address: string; error: NodeJS.ErrnoException }[];
}

/** BindUdpOptions: how bindUdp serves a wildcard. */
export interface BindUdpOptions {
  /**
   * single: bind exactly one socket, the wildcard itself or the given address, with no
   * per-address sockets and no address watching. For an engine that chooses each reply's source
   * with IP_PKTINFO (the native one); a reply sent from a plain wildcard socket leaves from the
   * address routing picks.
   */
  single?: boolean;
}

/**
 * bindUdp is the bind primitive the allocator calls (bind-to-allocate: the sockets are kept).
 * No socket here ever sets SO_REUSEADDR: Linux lets any user's SO_REUSEADDR socket share an
 * address with another SO_REUSEADDR socket (no uid check, unlike SO_REUSEPORT, which Node 20's
 * dgram cannot set), and the newest one takes the traffic. A socket bound without it makes every
 * other bind of its address, and of the wildcard on its port, fail with EADDRINUSE.
 *
 * A specific address (or `single`) gets one plain socket. A wildcard (0.0.0.0 or ::) without
 * `single` needs more, because Node cannot read IP_PKTINFO or choose a reply's source address,
 * and a reply sent from a wildcard socket leaves from whatever source the routing table picks
 * (moby/libnetwork#1729: "reply from unexpected source"). So a wildcard binding is:
 *
 *  1. an exclusive probe bind of the wildcard that fails with EADDRINUSE if any socket of the
 *     family holds the port on any address, exactly like a plain wildcard bind; it also picks
 *     the port when port is 0. It is closed right after (see the race note below);
 *  2. one exclusive socket per address os.networkInterfaces() lists for the family (IPv6
 *     link-local ones with their zone), same port. Distinct addresses on one port coexist
 *     without SO_REUSEADDR; together they also shut the wildcard out for everyone else.
 *
 * A datagram to a listed address reaches that address's socket and its reply leaves from that
 * address. There is no catch-all (it would need SO_REUSEADDR): a datagram to a local address that
 * is not listed (127.0.0.5 on a plain lo with 127.0.0.1/8, or an address added since the last
 * refresh) is not served, and portpub holds no socket there for it. '::' sockets are IPV6_V6ONLY
 * so 0.0.0.0:P and [::]:P coexist.
 *
 * The race note: between the probe's close and the per-address binds another program may bind
 * the port. Every bind here is exclusive, so that is detected, never shared: with port 0 a new
 * port is picked (at most PORT_ATTEMPTS times), otherwise the bind fails with EADDRINUSE.
 *
 * An address that is listed but cannot be bound with EADDRNOTAVAIL (an IPv6 address still in
 * duplicate address detection, one removed while we scan) is skipped and refresh() retries it.
 * Any other failure closes everything bound so far and rejects with the raw Node error (err.code
 * EADDRINUSE, EACCES, EADDRNOTAVAIL, ...): all or nothing.
 */
export async function bindUdp(
  host: string,
  port: number,
  options: BindUdpOptions = {},
): Promise<UdpListener> {
  const family = isIP(host);
  if (family === 0) throw new UsageError(`bindUdp: host must be an IP literal, got ${host}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`bindUdp: port must be an integer 0-65535, got ${port}`);
  }
  if (typeof options !== 'object' || options === null) {
    throw new UsageError('bindUdp: options must be an object such as { single: true }');
  }
  const type = family === 6 ? 'udp6' : 'udp4';
  if (!isWildcard(host) || options.single === true) {
    const socket = await bindSocket(type, host, port);
    return new UdpBinding(host, socket.address().port, type, [socket], false);
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await bindPerAddress(host, port, type);
    } catch (err) {
      // With port 0 the probe found the port free: EADDRINUSE means someone bound it since.
      const lostRace = port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (!lostRace || attempt >= PORT_ATTEMPTS) throw err;
    }
  }
}

/** bindPerAddress is one attempt at a wildcard binding (see bindUdp). */
async function bindPerAddress(
  host: string,
  port: number,
  type: 'udp4' | 'udp6',
): Promise<UdpListener> {
  const probe = await bindSocket(type, host, port);
  const chosen = probe.address().port;
  const addresses = localAddresses(type === 'udp6' ? 6 : 4);
  if (addresses.length === 0) return new UdpBinding(host, chosen, type, [probe], true);
  await closeSocket(probe);
  const sockets: dgram.Socket[] = [];
  try {
    for (const address of addresses) {
      try {
        sockets.push(await bindSocket(type, address, chosen));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw err;
      }
    }
    // Every listed address vanished while we bound: hold the port with the wildcard instead.
    if (sockets.length === 0) sockets.push(await bindSocket(type, host, chosen));
  } catch (err) {
    for (const s of sockets) s.close();
    throw err;
  }
  return new UdpBinding(host, chosen, type, sockets, true);
}

/**
 * UdpBinding is bindUdp's listener; a per-address wildcard one can refresh its sockets. While the
 * family has no local address it holds the wildcard itself (no address to serve, but the port
 * stays ours) and trades it for per-address sockets once addresses appear.
 */
class UdpBinding implements UdpListener {
  private readonly list: dgram.Socket[];
  private closed = false;
  private refreshing: Promise<ListenerChange> | undefined;
  readonly refresh: (() => Promise<ListenerChange>) | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly type: 'udp4' | 'udp6',
    sockets: dgram.Socket[],
    perAddress: boolean,
  ) {
    this.list = sockets;
    this.refresh = perAddress ? () => this.refreshOnce() : undefined;
  }

  get sockets(): readonly dgram.Socket[] {
    return this.list;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.list.splice(0)) s.close();
  }

  /** refreshOnce shares one scan between overlapping callers. */
  private refreshOnce(): Promise<ListenerChange> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<ListenerChange> {
    const change: ListenerChange = { added: [], removed: [], failed: [] };
    if (this.closed) return change;
    const wanted = new Set(localAddresses(this.type === 'udp6' ? 6 : 4));
    for (let i = this.list.length - 1; i >= 0; i--) {
      const s = this.list[i]!;
      const bound = boundAddress(s);
      if (wanted.delete(bound)) continue;
      // The wildcard placeholder stays until an address takes its place.
      if (bound === this.host && wanted.size === 0) continue;
      if (bound === this.host) await closeSocket(s);
      else s.close();
      this.list.splice(i, 1);
      change.removed.push(s);
    }
    for (const address of wanted) {
      if (this.closed) break;
      try {
        const s = await bindSocket(this.type, address, this.port);
        if (this.closed) {
          s.close();
          break;
        }
        this.list.push(s);
        change.added.push(s);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code !== 'EADDRNOTAVAIL') change.failed.push({ address, error: e });
      }
    }
    if (this.list.length === 0 && !this.closed) {
      // Nothing could take the placeholder's place: hold the port with it again.
      try {
        const s = await bindSocket(this.type, this.host, this.port);
        if (this.closed) s.close();
        else {
          this.list.push(s);
          change.added.push(s);
        }
      } catch (err) {
        change.failed.push({ address: this.host, error: err as NodeJS.ErrnoException });
      }
    }
    return change;
  }
}

/** boundAddresses remembers what each socket was bound to (its zone included). */
const boundAddresses = new WeakMap<dgram.Socket, string>();

export function boundAddress(s: dgram.Socket): string {
  return boundAddresses.get(s) ?? '';
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || (isIP(host) === 6 && /^[0:]+$/.test(host));
}

/** localAddresses lists this host's addresses of a family; IPv6 link-local ones get their zone. */
function localAddresses(family: 4 | 6): string[] {
  const out = new Set<string>();
  for (const [name, infos] of Object.entries(networkInterfaces())) {
    for (const info of infos ?? []) {
      // Node 18.0-18.3 reported family as a number.
      const fam = (info.family as string | number) === 4 || info.family === 'IPv4' ? 4 : 6;
      if (fam !== family) continue;
      const linkLocal = fam === 6 && /^fe[89ab]/i.test(info.address);
      out.add(linkLocal ? `${info.address}%${name}` : info.address);
    }
  }
  return [...out];
}

/**
 * bindSocket binds one socket without SO_REUSEADDR, resolving once bound or rejecting with the
 * raw bind error.
 */
function bindSocket(type: 'udp4' | 'udp6', address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({
      type,
      reuseAddr: false,
      ipv6Only: type === 'udp6',
      recvBufferSize: LISTEN_RECV_BUFFER,
      sendBufferSize: SEND_BUFFER,
      lookup: literalLookup,
    });
    const onError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    // exclusive: never share the handle with cluster workers.
    socket.bind({ address, port, exclusive: true }, () => {
      socket.removeListener('error', onError);
      // Until a forwarder adopts the socket (and logs its errors), an error must not crash us.
      socket.on('error', ignore);
      boundAddresses.set(socket, address);
      resolve(socket);
    });
  });
}

/**
 * literalLookup is the `lookup` of every socket made here: all they bind, connect or send to is
 * an IP literal already, and Node's default (dns.lookup) would still defer every reply's send
 * to a process.nextTick of its own. It answers at once.
 */
function literalLookup(
  address: string,
  family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, address, typeof family === 'number' ? family : isIP(address));
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(resolve));
}

function ignore(): void {}

// ---------------------------------------------------------------------------------------------
// Forwarder

export interface UdpForwarderOptions {
  /** targetHost: an IP literal of either family, or a hostname looked up once (first flow). */
  targetHost: string;
  targetPort: number;
  /**
   * flowTimeoutMs: a flow ends this long after its last datagram sent TO the target (Docker's
   * rule: replies do not count); default 90 000.
   */
  flowTimeoutMs?: number;
  /**
   * maxFlows: most flows at once; a new client beyond it evicts the least recently active flow
   * (counted in stats().evictions); default 4096.
   */
  maxFlows?: number;
  logger?: Logger;
  /** now: clock for expiry and warning rate limits (ms, never backwards); default monotonic. */
  now?: Clock;
  /**
   * addressWatchIntervalMs: how often a wildcard listener re-scans local addresses and binds or
   * closes per-address sockets; 0 disables; default 10 000.
   */
  addressWatchIntervalMs?: number;
}

/** UdpDropReason names why a datagram was dropped; the keys of UdpStats.drops. */
export type UdpDropReason =
  | 'queue-full'
  | 'client-queue-full'
  | 'flow-setup'
  | 'flow-closed'
  | 'target-refused'
  | 'target-send'
  | 'client-send'
  | 'too-large';

/** UDP_DROP_REASONS documents each drop counter. */
export const UDP_DROP_REASONS: Readonly<Record<UdpDropReason, string>> = {
  'queue-full':
    'a flow already holds too much for the target (socket still connecting, or send queue full)',
  'client-queue-full': 'the listening socket already holds too much for clients',
  'flow-setup':
    'the flow socket could not be created or connected, or the target name not resolved',
  'flow-closed': 'the flow was evicted or closed while its datagrams waited for its socket',
  'target-refused':
    'the target host sent ICMP port unreachable (nothing listening yet); one per ICMP error seen',
  'target-send': 'sending to the target failed',
  'client-send': 'sending a reply to the client failed',
  'too-large': 'larger than the other side family allows (65507 bytes over IPv4)',
};

export interface UdpStats {
  flowsActive: number;
  flowsTotal: number;
  datagramsClientToTarget: number;
  datagramsTargetToClient: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  /** drops counts dropped datagrams by reason; every key is present (see UDP_DROP_REASONS). */
  drops: Record<UdpDropReason, number>;
  /** evictions counts flows ended early because maxFlows was reached. */
  evictions: number;
}

interface Target {
  address: string;
  family: 4 | 6;
}

/**
 * Flow is one client's relay: its connected socket to the target and the listening socket the
 * client last wrote to. The forwarder gives it its callbacks once, when it opens, so the hot path
 * allocates no closures.
 */
class Flow {
  session!: Session<Flow>;
  socket: dgram.Socket | undefined;
  /** Datagrams waiting for the socket to be set up and connected; null once connected. */
  pending: Buffer[] | null;
  /** Datagrams handed to socket.send whose callback has not run yet, in send order. */
  readonly inflight: Buffer[] = [];
  closed = false;
  sourcePort = 0;
  toTarget = 0;
  toClient = 0;
  onConnect!: () => void;
  onReply!: (msg: Buffer) => void;
  onSocketError!: (err: NodeJS.ErrnoException) => void;
  afterSend!: (err: Error | null, bytes?: number) => void;
  afterRetry!: (err: Error | null, bytes?: number) => void;
  afterReply!: (err: Error | null, bytes?: number) => void;

  constructor(
    readonly key: string,
    readonly clientAddress: string,
    readonly clientPort: number,
    public via: dgram.Socket,
    first: Buffer,
  ) {
    this.pending = [first];
  }
}

/**
 * UdpForwarder relays datagrams between clients of a UdpListener and one target. Expiry is one
 * coarse sweep timer; flows live flowTimeoutMs to flowTimeoutMs + sweep interval after the last
 * datagram sent to the target (Docker: 90-180 s). Replies do not extend a flow (Docker's rule).
 * ICMP port-unreachable from the target (ECONNREFUSED on the connected socket) never ends a flow:
 * the send that reports a stale error did not leave, so it is retried once (moby PR #52483).
 */
export class UdpForwarder {
  readonly address: { address: string; family: string; port: number };
  private readonly listener: UdpListener;
  private readonly log: Logger;
  private readonly now: Clock;
  private readonly targetHost: string;
  private readonly targetPort: number;
  private readonly table: SessionTable<Flow>;
  private readonly handlers = new Map<
    dgram.Socket,
    (msg: Buffer, rinfo: dgram.RemoteInfo) => void
  >();
  private readonly onListenerError: (err: Error) => void;
  private readonly warnings: WarnLimiter;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly watchTimer: NodeJS.Timeout | undefined;
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
  private readonly drops: Record<UdpDropReason, number> = {
    'queue-full': 0,
    'client-queue-full': 0,
    'flow-setup': 0,
    'flow-closed': 0,
    'target-refused': 0,
    'target-send': 0,
    'client-send': 0,
    'too-large': 0,
  };

  constructor(listener: UdpListener, options: UdpForwarderOptions) {
    const o = validate(options);
    this.listener = listener;
    this.log = o.logger;
    this.now = o.now;
    this.targetHost = o.targetHost;
    this.targetPort = o.targetPort;
    this.table = new SessionTable<Flow>({
      idleTimeoutMs: o.flowTimeoutMs,
      maxSessions: o.maxFlows,
      now: o.now,
    });
    this.warnings = new WarnLimiter(this.log, this.now);
    this.address = {
      address: listener.host,
      family: isIP(listener.host) === 6 ? 'IPv6' : 'IPv4',
      port: listener.port,
    };
    const family = isIP(o.targetHost);
    if (family !== 0) this.target = { address: o.targetHost, family: family as 4 | 6 };

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
        this.openFlow(key, rinfo, via, msg);
        return;
      }
      flow = session.value;
      this.byPort.set(flow.clientPort, flow);
    }
    this.table.touch(flow.session);
    flow.via = via;
    if (flow.pending !== null) {
      if (flow.pending.length < PENDING_LIMIT) flow.pending.push(msg);
      else this.drop('queue-full', flow);
      return;
    }
    this.sendToTarget(flow, msg);
  }

  /** openFlow starts a flow for a new client, holding its first datagram until connected. */
  private openFlow(key: string, rinfo: dgram.RemoteInfo, via: dgram.Socket, first: Buffer): void {
    const flow = new Flow(key, rinfo.address, rinfo.port, via, first);
    flow.onConnect = () => this.flowConnected(flow);
    flow.onReply = (msg) => this.relayReply(flow, msg);
    flow.onSocketError = (err) => this.flowError(flow, err);
    flow.afterSend = (err, bytes) => this.sentToTarget(flow, err, bytes, false);
    flow.afterRetry = (err, bytes) => this.sentToTarget(flow, err, bytes, true);
    flow.afterReply = (err, bytes) => this.sentToClient(flow, err, bytes);
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
    if (this.target) this.connectFlow(flow, this.target);
    else this.awaitTarget(flow);
  }

  private connectFlow(flow: Flow, target: Target): void {
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket({
        type: target.family === 6 ? 'udp6' : 'udp4',
        recvBufferSize: FLOW_RECV_BUFFER,
        sendBufferSize: SEND_BUFFER,
        lookup: literalLookup,
      });
    } catch (err) {
      this.failFlow(flow, err as Error);
      return;
    }
    flow.socket = socket;
    socket.on('error', flow.onSocketError);
    socket.on('message', flow.onReply);
    // Errors from connect (ENETUNREACH, EADDRNOTAVAIL...) arrive as 'error' events.
    socket.connect(this.targetPort, target.address, flow.onConnect);
  }

  /** flowConnected runs when a flow's target socket is connected: log it, flush what waited. */
  private flowConnected(flow: Flow): void {
    if (flow.closed) return;
    flow.sourcePort = flow.socket!.address().port;
    this.log.debug(
      { client: flow.key, local: boundAddress(flow.via), targetSourcePort: flow.sourcePort },
      'udp flow opened',
    );
    const pending = flow.pending!;
    flow.pending = null;
    for (const msg of pending) this.sendToTarget(flow, msg);
  }

  private sendToTarget(flow: Flow, msg: Buffer): void {
    const socket = flow.socket!;
    if (socket.getSendQueueSize() >= SEND_QUEUE_LIMIT) {
      this.drop('queue-full', flow);
      return;
    }
    flow.inflight.push(msg);
    socket.send(msg, flow.afterSend);
  }

  /** sentToTarget is every target send's callback; callbacks arrive in send order. */
  private sentToTarget(
    flow: Flow,
    err: Error | null,
    bytes: number | undefined,
    retried: boolean,
  ): void {
    const msg = flow.inflight.shift();
    if (err === null) {
      this.c2tDatagrams++;
      this.c2tBytes += bytes ?? 0;
      flow.toTarget++;
      return;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' && !retried && msg !== undefined && !flow.closed) {
      // The kernel reported an ICMP error left by an earlier datagram (counted as that one's
      // drop), and this one did not leave: sock_error() fails the send. The error is now
      // cleared, so send this datagram once more.
      this.drop('target-refused', flow);
      flow.inflight.push(msg);
      flow.socket!.send(msg, flow.afterRetry);
      return;
    }
    if (flow.closed || this.closed) return;
    const reason: UdpDropReason =
      code === 'ECONNREFUSED'
        ? 'target-refused'
        : code === 'EMSGSIZE'
          ? 'too-large'
          : 'target-send';
    this.drop(reason, flow, err);
  }

  // -- target -> client --------------------------------------------------------------------

  /** relayReply sends a target datagram to the flow's client from the socket it wrote to. */
  private relayReply(flow: Flow, msg: Buffer): void {
    if (flow.closed) return;
    const via = flow.via;
    try {
      if (via.getSendQueueSize() >= SEND_QUEUE_LIMIT) {
        this.drop('client-queue-full', flow);
        return;
      }
      via.send(msg, flow.clientPort, flow.clientAddress, flow.afterReply);
    } catch (err) {
      // Only a socket closed under us (its local address went away) gets here.
      this.drop('client-send', flow, err as Error);
    }
  }

  private sentToClient(flow: Flow, err: Error | null, bytes: number | undefined): void {
    if (err === null) {
      this.t2cDatagrams++;
      this.t2cBytes += bytes ?? 0;
      flow.toClient++;
      return;
    }
    if (this.closed) return;
    const code = (err as NodeJS.ErrnoException).code;
    this.drop(code === 'EMSGSIZE' ? 'too-large' : 'client-send', flow, err);
  }

  /** flowError handles an 'error' event on a flow's target socket. */
  private flowError(flow: Flow, err: NodeJS.ErrnoException): void {
    if (flow.closed) return;
    if (flow.pending !== null) {
      // Still connecting: the socket is unusable (no route to the target, no IPv6...).
      this.failFlow(flow, err);
      return;
    }
    if (err.code === 'ECONNREFUSED') {
      // ICMP port unreachable for an earlier datagram: nothing listens on the target yet. The
      // flow stays; when the target comes up, the next datagrams get through (moby PR #52483).
      this.drop('target-refused', flow);
      return;
    }
    // Docker ends a flow on any other read error; the client's next datagram opens a new one.
    this.warnings.warn(
      'flow-error',
      { client: flow.key, err },
      'udp flow socket error: flow closed',
    );
    this.table.remove(flow.session);
    this.endFlow(flow);
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
        this.target = { address, family: family === 6 ? 6 : 4 };
        this.log.debug({ targetHost: this.targetHost, address }, 'udp target resolved');
        const waiting = [...this.awaitingTarget];
        this.awaitingTarget.clear();
        for (const f of waiting) if (!f.closed) this.connectFlow(f, this.target);
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

  /** endFlow closes a flow's socket; the caller has taken it out of the table. */
  private endFlow(flow: Flow): void {
    if (flow.closed) return;
    flow.closed = true;
    if (this.byPort.get(flow.clientPort) === flow) this.byPort.delete(flow.clientPort);
    if (flow.pending !== null && flow.pending.length > 0 && !this.closed) {
      this.drops['flow-closed'] += flow.pending.length;
    }
    flow.pending = null;
    flow.inflight.length = 0;
    flow.socket?.close();
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

  private drop(reason: UdpDropReason, flow: Flow, err?: Error): void {
    this.drops[reason]++;
    this.warnings.warn(
      reason,
      err ? { client: flow.key, err } : { client: flow.key },
      `udp datagram dropped: ${UDP_DROP_REASONS[reason]}`,
    );
  }
}

/**
 * WarnLimiter logs at most one warning per reason per WARN_INTERVAL_MS; the next one after the
 * interval carries how many were suppressed, so a flood costs a counter increment per datagram.
 */
class WarnLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number; msg: string }>();

  constructor(
    private readonly log: Logger,
    private readonly now: Clock,
  ) {}

  warn(reason: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.now();
    const state = this.last.get(reason);
    if (state !== undefined && now - state.at < WARN_INTERVAL_MS) {
      state.suppressed++;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.last.set(reason, { at: now, suppressed: 0, msg });
    this.log.warn({ reason, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
  }

  /** flush logs the counts still suppressed (at close). */
  flush(): void {
    for (const [reason, state] of this.last) {
      if (state.suppressed > 0) this.log.warn({ reason, suppressed: state.suppressed }, state.msg);
    }
    this.last.clear();
  }
}

interface Validated {
  targetHost: string;
  targetPort: number;
  flowTimeoutMs: number;
  maxFlows: number;
  logger: Logger;
  now: Clock;
  addressWatchIntervalMs: number;
}

/** validate checks the options once; each message names the option and the constraint. */
function validate(options: UdpForwarderOptions): Validated {
  if (typeof options !== 'object' || options === null) {
    throw new UsageError('options: expected an object with targetHost and targetPort');
  }
  // `?? default`, not object spread: callers pass `{ flowTimeoutMs: undefined }` through.
  const o: Validated = {
    targetHost: options.targetHost,
    targetPort: options.targetPort,
    flowTimeoutMs: options.flowTimeoutMs ?? DEFAULTS.flowTimeoutMs,
    maxFlows: options.maxFlows ?? DEFAULTS.maxFlows,
    addressWatchIntervalMs: options.addressWatchIntervalMs ?? DEFAULTS.addressWatchIntervalMs,
    now: options.now ?? monotonicClock,
    logger: options.logger ?? silentLogger(),
  };
  if (typeof o.targetHost !== 'string' || o.targetHost === '') {
    throw new UsageError(
      `targetHost: expected a hostname or IP address, got ${String(o.targetHost)}`,
    );
  }
  if (!Number.isInteger(o.targetPort) || o.targetPort < 1 || o.targetPort > 65535) {
    throw new UsageError(`targetPort: expected an integer 1-65535, got ${String(o.targetPort)}`);
  }
  if (
    typeof o.flowTimeoutMs !== 'number' ||
    !Number.isFinite(o.flowTimeoutMs) ||
    o.flowTimeoutMs <= 0
  ) {
    throw new UsageError(
      `flowTimeoutMs: expected milliseconds > 0, got ${String(o.flowTimeoutMs)}`,
    );
  }
  if (!Number.isSafeInteger(o.maxFlows) || o.maxFlows < 1) {
    throw new UsageError(`maxFlows: expected an integer >= 1, got ${String(o.maxFlows)}`);
  }
  if (!Number.isSafeInteger(o.addressWatchIntervalMs) || o.addressWatchIntervalMs < 0) {
    throw new UsageError(
      `addressWatchIntervalMs: expected an integer >= 0 (0 disables), got ${String(o.addressWatchIntervalMs)}`,
    );
  }
  if (typeof o.now !== 'function') {
    throw new UsageError(`now: expected a function returning milliseconds, got ${typeof o.now}`);
  }
  if (typeof o.logger !== 'object' || o.logger === null || !('warn' in o.logger)) {
    throw new UsageError('logger: expected a pino Logger');
  }
  return o;
}
