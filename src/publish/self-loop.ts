// A target that is one of portpub's own listening sockets: every connection (or datagram) would
// be forwarded back into portpub, which forwards it again until descriptors run out. With Docker
// the service sits behind its own network namespace; on a bare host `-p 5000:5000` to 127.0.0.1
// is exactly this loop. Refused before anything is served.
import { BlockList, isIP, isIPv4 } from 'node:net';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { BindError, PortpubError, EXIT_USAGE } from '../errors.js';
import { joinHostPort } from '../docker/report.js';
import { formatSpec, hostPortRange, type PortMapping } from '../docker/spec.js';
import { ERR_SELF_LOOP } from '../errors.js';
import { hostIpsFor } from './host-ips.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_SELF_LOOP };

/** Listening is one socket this process listens on (or would, for a plan). */
export interface Listening {
  hostIp: string;
  hostPort: number;
  protocol: string;
}

/** LoopCandidate is a request with the addresses its target host stands for. */
export interface LoopCandidate {
  mapping: PortMapping;
  targetHost: string;
  name?: string;
  /** targetHost's addresses (itself for an IP literal). */
  addresses: readonly string[];
}

/**
 * findSelfLoop returns the first candidate whose target (address, port, protocol) is one of
 * `listening`, and the socket it hits: the same address, or a wildcard of the family when the
 * target is an address of this host. An unspecified target (0.0.0.0, ::) counts as loopback,
 * where the kernel sends it; an IPv4-mapped IPv6 address as its IPv4 address.
 */
export function findSelfLoop(
  candidates: readonly LoopCandidate[],
  listening: readonly Listening[],
  local: BlockList = localAddresses(),
): { candidate: LoopCandidate; address: string; socket: Listening } | undefined {
  const byPort = new Map<string, Listening[]>();
  for (const l of listening) {
    const key = `${l.protocol}/${l.hostPort}`;
    let list = byPort.get(key);
    if (!list) byPort.set(key, (list = []));
    list.push(l);
  }
  for (const candidate of candidates) {
    const sockets = byPort.get(`${candidate.mapping.protocol}/${candidate.mapping.targetPort}`);
    if (!sockets) continue;
    for (const raw of candidate.addresses) {
      const address = dialed(raw);
      for (const socket of sockets) {
        if (reaches(address, socket.hostIp, local)) return { candidate, address, socket };
      }
    }
  }
  return undefined;
}

/**
 * reaches says whether a connect() or send to `target` lands on a socket bound to `hostIp` (the
 * port already matched): the same address, or that family's wildcard when the target is an
 * address of this host (`local`). The unspecified target is loopback, where the kernel sends it;
 * an IPv4-mapped address counts as its IPv4 address.
 */
export function reaches(target: string, hostIp: string, local: BlockList): boolean {
  const address = dialed(target);
  const family = isIPv4(address) ? 'ipv4' : 'ipv6';
  const ip = unmapped(hostIp);
  return ip === '0.0.0.0' || ip === '::'
    ? (ip === '0.0.0.0') === (family === 'ipv4') && local.check(address, family)
    : sameAddress(ip, address);
}

/** selfLoopError words the refusal: why it would loop, and what to do instead. */
export function selfLoopError(found: {
  candidate: LoopCandidate;
  address: string;
  socket: Listening;
}): PortpubError {
  const { candidate: c, socket } = found;
  const spec = formatSpec(c.mapping);
  const what = c.name !== undefined ? `service ${c.name}: ${spec}` : `-p ${spec}`;
  const target = `${joinHostPort(c.targetHost, c.mapping.targetPort)}/${c.mapping.protocol}`;
  const via = c.targetHost === found.address ? '' : ` (${found.address})`;
  const own = `${joinHostPort(socket.hostIp, socket.hostPort)}/${socket.protocol}`;
  const setTarget =
    c.name !== undefined
      ? `target: 127.0.0.2 or --target-for ${c.name}=127.0.0.2`
      : `--target 127.0.0.2`;
  // A wildcard socket takes 127.0.0.2 as well: the service on another loopback address needs
  // the port published on a specific one.
  const wildcard = unmapped(socket.hostIp) === '0.0.0.0' || unmapped(socket.hostIp) === '::';
  const v4 = unmapped(socket.hostIp) === '0.0.0.0';
  const specific = `${v4 ? '127.0.0.1' : '[::1]'}:${socket.hostPort}:${c.mapping.targetPort}`;
  const publishOn = !wildcard
    ? ''
    : ` and publish on one address only, such as ${c.name !== undefined ? `"${specific}"` : `-p ${specific}`} ` +
      `(${socket.hostIp} takes every local address, 127.0.0.2 too)`;
  return new PortpubError(
    ERR_SELF_LOOP,
    `${what}: the target ${target}${via} is portpub's own listening socket ${own}, so every ` +
      `connection would be forwarded back into portpub. With Docker the service has its own ` +
      `network namespace; here it shares the host's. Publish on another host port, or run the ` +
      `service on another loopback address such as 127.0.0.2 and point portpub at it ` +
      `(${setTarget})${publishOn}, or start it with \`portpub run\`, which gives it its own ` +
      `network namespace`,
    EXIT_USAGE,
  );
}

/**
 * plannedListening is what a plan will listen on where the port is known before binding (an
 * explicit host port); ephemeral ports and pools are only known once bound.
 */
export function plannedListening(
  mappings: readonly { mapping: PortMapping; hostIps: readonly string[] }[],
): Listening[] {
  const out: Listening[] = [];
  for (const { mapping, hostIps } of mappings) {
    const range = hostPortRange(mapping.hostPort);
    if (!range || range[0] !== range[1]) continue;
    for (const hostIp of hostIps) {
      out.push({ hostIp, hostPort: range[0], protocol: mapping.protocol });
    }
  }
  return out;
}

/**
 * targetAddresses is what a target host stands for: an IP literal itself, `localhost` both
 * loopbacks, anything else what the resolver says now (nothing when it cannot resolve: the name
 * may resolve later, and is then dialled as it resolves).
 */
export async function targetAddresses(
  host: string,
  timeoutMs = LOOKUP_TIMEOUT_MS,
): Promise<string[]> {
  const known = literalAddresses(host);
  if (known) return known;
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<string[]>((resolve) => {
    timer = setTimeout(() => resolve([]), timeoutMs);
  });
  try {
    const found = lookup(host, { all: true }).then(
      (all) => all.map((a) => a.address),
      () => [],
    );
    return await Promise.race([found, gaveUp]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * LOOKUP_TIMEOUT_MS bounds the start-up lookup of a target name: a slow resolver must not hold
 * up binding; a name not resolved by then is dialled as it resolves later, like any other.
 */
export const LOOKUP_TIMEOUT_MS = 1000;

/** literalAddresses is targetAddresses without the resolver: undefined for a host name. */
export function literalAddresses(host: string): string[] | undefined {
  if (isIP(host) !== 0) return [host];
  if (host.toLowerCase() === 'localhost') return ['127.0.0.1', '::1'];
  return undefined;
}

/** localAddresses are this host's addresses: its interfaces' and all of loopback. */
export function localAddresses(): BlockList {
  const list = new BlockList();
  list.addSubnet('127.0.0.0', 8, 'ipv4');
  list.addAddress('::1', 'ipv6');
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      const address = a.address.replace(/%.*$/, '');
      list.addAddress(address, a.family === 'IPv4' ? 'ipv4' : 'ipv6');
    }
  }
  return list;
}

/** dialed is where a connect() to `address` goes: the unspecified address is loopback. */
function dialed(address: string): string {
  const a = unmapped(address);
  if (a === '0.0.0.0') return '127.0.0.1';
  if (isIP(a) === 6 && sameAddress(a, '::')) return '::1';
  return a;
}

/** unmapped turns an IPv4-mapped IPv6 address into its IPv4 address. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const family = isIP(a);
  if (family === 0 || family !== isIP(b)) return false;
  const one = new BlockList();
  one.addAddress(a, family === 4 ? 'ipv4' : 'ipv6');
  return one.check(b, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * planSelfLoop is the check a --dry-run can make without binding or resolving: explicit host
 * ports against targets that are IP literals or `localhost`, on the host IPs a start would bind
 * (`v6`: ipv6Listenable()). The refusal, or undefined.
 */
export function planSelfLoop(
  requests: readonly { mapping: PortMapping; targetHost: string; name?: string }[],
  defaultHostIp: string,
  v6: boolean,
): PortpubError | undefined {
  const candidates: LoopCandidate[] = [];
  for (const r of requests) {
    const addresses = literalAddresses(r.targetHost);
    if (addresses) candidates.push({ ...r, addresses });
  }
  const found = findSelfLoop(
    candidates,
    plannedListening(
      requests.map((r) => ({
        mapping: r.mapping,
        hostIps: hostIpsFor(r.mapping, defaultHostIp, v6),
      })),
    ),
  );
  return found && selfLoopError(found);
}

/** loopCandidates resolves each distinct target host once (mappings with a dialer never loop). */
export async function loopCandidates(
  requests: readonly { mapping: PortMapping; targetHost: string; name?: string; dial?: unknown }[],
): Promise<LoopCandidate[]> {
  const hosts = new Map<string, Promise<string[]>>();
  const out: LoopCandidate[] = [];
  for (const r of requests) {
    if (r.dial) continue;
    let addresses = hosts.get(r.targetHost);
    if (!addresses) hosts.set(r.targetHost, (addresses = targetAddresses(r.targetHost)));
    out.push({
      mapping: r.mapping,
      targetHost: r.targetHost,
      ...(r.name !== undefined ? { name: r.name } : {}),
      addresses: await addresses,
    });
  }
  return out;
}

/**
 * ownServiceHint adds a hint to "address already in use" when the mapping publishes a local
 * target's own port: the service itself most likely holds it, as it shares the host's ports.
 */
export function ownServiceHint(
  err: unknown,
  mapping: PortMapping,
  targetHost: string,
  dialled: boolean,
): unknown {
  if (!(err instanceof BindError) || !err.message.endsWith('address already in use')) return err;
  const range = hostPortRange(mapping.hostPort);
  const addresses = literalAddresses(targetHost);
  if (!range || range[0] !== mapping.targetPort || !addresses || dialled) return err;
  const local = localAddresses();
  if (!addresses.some((a) => isIP(a) !== 0 && local.check(a, isIP(a) === 4 ? 'ipv4' : 'ipv6'))) {
    return err;
  }
  const target = joinHostPort(targetHost, mapping.targetPort);
  return new BindError(
    `${err.message} (hint: the service at ${target} is probably holding this port itself: on a ` +
      `bare host it shares the host's ports, where Docker gives it a network namespace of its ` +
      `own. Publish on another host port, run the service on another loopback address such as ` +
      `127.0.0.2 and point portpub at it, or start it with \`portpub run\`)`,
    { cause: err },
  );
}
