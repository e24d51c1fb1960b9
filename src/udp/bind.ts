// Binding UDP host sockets: bindUdp is the allocator's bind primitive (bind-to-allocate, sockets
// kept), a wildcard is one exclusive socket per local address, and the listener re-scans the
// addresses on request. No socket here shares its port (no SO_REUSEADDR): see bindUdp.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { UsageError } from '../errors.js';

/**
 * Socket buffer sizes requested with SO_RCVBUF/SO_SNDBUF. Linux caps them at net.core.rmem_max /
 * wmem_max (often 208 KiB) and then doubles them; even that cap holds several largest datagrams,
 * which is all whole-datagram relaying needs. Bigger requests only absorb bursts when an
 * administrator raised the caps.
 */
const LISTEN_RECV_BUFFER = 4 << 20;
export const SEND_BUFFER = 1 << 20;

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
 * refresh) is not served, and no socket is held there, so ANY OTHER USER MAY BIND IT and take
 * those datagrams (issue 11). publish/ therefore binds every wildcard with `single`
 * (engine/index.ts udpBindOptions); the per-address form stays for library callers who trust
 * every local user. '::' sockets are IPV6_V6ONLY so 0.0.0.0:P and [::]:P coexist.
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
  if (options.single !== undefined && typeof options.single !== 'boolean') {
    throw new UsageError(`bindUdp: single must be true or false, got ${String(options.single)}`);
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
export function literalLookup(
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
