// Bind-to-allocate, Docker's way: pick host ports (exact, ephemeral, or from a pool), bind them and
// keep the handles. A port is never probed and released; a failed bind is rolled back.
// Model: moby daemon/libnetwork/portallocator (sequential cursor, wrap-around, reserved ports).
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { BindError } from '../errors.js';
import { hostPortRange } from '../docker/spec.js';

/** PortRange is an inclusive range of port numbers. */
export interface PortRange {
  start: number;
  end: number;
}

/** Docker's fallback when ip_local_port_range cannot be read (portallocator_unix.go). */
export const FALLBACK_RANGE: PortRange = { start: 49153, end: 65535 };

/** readEphemeralRange reads /proc/sys/net/ipv4/ip_local_port_range, falling back like Docker. */
export function readEphemeralRange(path = '/proc/sys/net/ipv4/ip_local_port_range'): PortRange {
  try {
    const [start, end] = readFileSync(path, 'utf8').trim().split(/\s+/).map(Number);
    if (
      Number.isInteger(start) &&
      Number.isInteger(end) &&
      start! > 0 &&
      start! <= end! &&
      end! <= 65535
    ) {
      return { start: start!, end: end! };
    }
  } catch {
    // fall through to Docker's default
  }
  return { ...FALLBACK_RANGE };
}

/** readReservedPorts parses ip_local_reserved_ports (`8080,9000-9010`); empty when unreadable. */
export function readReservedPorts(
  path = '/proc/sys/net/ipv4/ip_local_reserved_ports',
): Set<number> {
  const out = new Set<number>();
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return out;
  }
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const [a, b] = item.split('-').map(Number);
    if (!Number.isInteger(a)) continue;
    const end = Number.isInteger(b) ? b! : a!;
    for (let p = a!; p <= end && p <= 65535; p++) out.add(p);
  }
  return out;
}

/** Handle is anything bound that can be let go. */
export interface Handle {
  close(): void;
}

/** Binder binds one address on one port, resolving the kept handle or rejecting with the OS error. */
export type Binder<H extends Handle> = (hostIp: string, port: number) => Promise<H>;

/** AllocationRequest: one published port on one or more host addresses (all get the same port). */
export interface AllocationRequest {
  hostIps: readonly string[];
  /** Docker's HostPort string: `""`/`"0"` ephemeral, `"8080"`, or a pool `"8000-8010"`. */
  hostPort: string;
  protocol: 'tcp' | 'udp';
}

/** Allocation is what a request got: the port and one handle per host address, in request order. */
export interface Allocation<H extends Handle> {
  port: number;
  handles: H[];
  /** release gives the port back to the allocator's bookkeeping (it does not close the handles). */
  release(): void;
}

export interface PortAllocatorOptions {
  /** Range for ephemeral ports; default: ip_local_port_range, else 49153-65535. */
  range?: PortRange;
  /** Ports skipped by automatic picks (not by explicit pools); default: ip_local_reserved_ports. */
  reserved?: ReadonlySet<number>;
}

/**
 * PortAllocator hands out host ports the way dockerd does, within one process: it remembers which
 * (protocol, address, port) it holds so a second request for the same one fails with Docker's
 * `port is already allocated`, and it walks ephemeral ports and pools with a per-(protocol, address)
 * cursor that continues after the last port handed out and wraps around.
 */
export class PortAllocator {
  readonly range: PortRange;
  private readonly reserved: ReadonlySet<number>;
  private readonly held = new Map<string, Set<number>>();
  private readonly cursors = new Map<string, number>();

  constructor(options: PortAllocatorOptions = {}) {
    this.range = options.range ?? readEphemeralRange();
    this.reserved = options.reserved ?? readReservedPorts();
    if (
      !Number.isInteger(this.range.start) ||
      !Number.isInteger(this.range.end) ||
      this.range.start < 1 ||
      this.range.start > this.range.end ||
      this.range.end > 65535
    ) {
      throw new RangeError(
        `range: expected 1 <= start <= end <= 65535, got ${this.range.start}-${this.range.end}`,
      );
    }
  }

  /**
   * allocate binds every address of the request on one port and keeps the handles. An explicit
   * port is tried once; ephemeral ports and pools move on past ports that are taken, in this
   * process or by the OS, until every candidate has been tried once.
   */
  async allocate<H extends Handle>(
    req: AllocationRequest,
    bind: Binder<H>,
  ): Promise<Allocation<H>> {
    const wanted = hostPortRange(req.hostPort);
    if (wanted && wanted[0] === wanted[1]) {
      const explicit = wanted[0];
      const conflict = this.conflict(req, explicit);
      if (conflict !== undefined) {
        throw new BindError(`Bind for ${conflict}:${explicit} failed: port is already allocated`);
      }
      const handles = await bindAll(req, explicit, bind);
      return this.take(req, explicit, handles);
    }

    const pool = wanted && { start: wanted[0], end: wanted[1] };
    const range = pool ?? this.range;
    const size = range.end - range.start + 1;
    const cursorKey = `${req.protocol}|${req.hostIps[0] ?? ''}|${range.start}-${range.end}`;
    let last = this.cursors.get(cursorKey) ?? range.end;
    let lastOsError: BindError | undefined;
    for (let i = 0; i < size; i++) {
      const port = last >= range.end ? range.start : last + 1;
      last = port;
      if (!pool && this.reserved.has(port)) continue;
      if (this.conflict(req, port) !== undefined) continue;
      try {
        const handles = await bindAll(req, port, bind);
        this.cursors.set(cursorKey, port);
        return this.take(req, port, handles);
      } catch (err) {
        // Only "in use" moves on to the next candidate; anything else (permission, no such
        // address) would fail the same way on every port.
        if (!(err instanceof BindError) || !err.message.endsWith('address already in use')) {
          throw err;
        }
        lastOsError = err;
      }
    }
    const where = req.hostIps.join(', ');
    const what = pool ? `pool ${req.hostPort}` : `range ${range.start}-${range.end}`;
    throw new BindError(
      `Bind for ${where} failed: all ports are allocated (${what}, protocol ${req.protocol})`,
      { cause: lastOsError },
    );
  }

  /** held ports, for tests and status: `tcp|0.0.0.0` -> ports. */
  heldPorts(): Map<string, ReadonlySet<number>> {
    return new Map(this.held);
  }

  private conflict(req: AllocationRequest, port: number): string | undefined {
    for (const ip of req.hostIps) {
      if (this.holds(req.protocol, ip, port)) return ip;
      const any = isIPv6(ip) ? '::' : '0.0.0.0';
      if (ip !== any && this.holds(req.protocol, any, port)) return ip;
      if (ip === any) {
        // Binding the wildcard also needs the port free on every specific address of the family.
        for (const [key, ports] of this.held) {
          const [proto, heldIp] = key.split('|') as [string, string];
          if (proto === req.protocol && isIPv6(heldIp) === isIPv6(ip) && ports.has(port)) {
            return ip;
          }
        }
      }
    }
    return undefined;
  }

  private holds(protocol: string, ip: string, port: number): boolean {
    return this.held.get(`${protocol}|${ip}`)?.has(port) ?? false;
  }

  private take<H extends Handle>(
    req: AllocationRequest,
    port: number,
    handles: H[],
  ): Allocation<H> {
    const keys = req.hostIps.map((ip) => `${req.protocol}|${ip}`);
    for (const key of keys) {
      let set = this.held.get(key);
      if (!set) this.held.set(key, (set = new Set()));
      set.add(port);
    }
    let released = false;
    return {
      port,
      handles,
      release: () => {
        if (released) return;
        released = true;
        for (const key of keys) {
          const set = this.held.get(key);
          set?.delete(port);
          if (set?.size === 0) this.held.delete(key);
        }
      },
    };
  }
}

/** bindAll binds every address on `port`, all or nothing, turning OS errors into Docker's words. */
async function bindAll<H extends Handle>(
  req: AllocationRequest,
  port: number,
  bind: Binder<H>,
): Promise<H[]> {
  const handles: H[] = [];
  try {
    for (const ip of req.hostIps) handles.push(await bind(ip, port));
    return handles;
  } catch (err) {
    for (const h of handles) h.close();
    throw osBindError(req.hostIps[handles.length] ?? '', port, req.protocol, err);
  }
}

/**
 * osBindError words an OS refusal as dockerd does (`failed to bind host port 0.0.0.0:8080/tcp:
 * address already in use`) and adds what to do about the ones users trip over.
 */
export function osBindError(ip: string, port: number, protocol: string, err: unknown): BindError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${isIPv6(ip) ? `[${ip}]` : ip}:${port}/${protocol}`;
  let reason: string;
  switch (code) {
    case 'EADDRINUSE':
      reason = 'address already in use';
      break;
    case 'EACCES':
    case 'EPERM':
      reason =
        port < 1024
          ? `permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE, ` +
            `or a lower net.ipv4.ip_unprivileged_port_start)`
          : 'permission denied';
      break;
    case 'EADDRNOTAVAIL':
      reason = `cannot assign requested address (${ip} is not an address of this host)`;
      break;
    case 'EAFNOSUPPORT':
      reason = `address family not supported (IPv6 is disabled on this host?)`;
      break;
    default:
      reason = err instanceof Error ? err.message : String(err);
  }
  return new BindError(`failed to bind host port ${where}: ${reason}`, { cause: err });
}
