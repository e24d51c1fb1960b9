// A loop through other portpubs: this process's target is another portpub's listening socket
// whose target (perhaps through more portpubs) is one of this process's own. Each would forward
// every connection to the next until descriptors ran out, as a self-loop does (self-loop.ts),
// only spread over processes. Found from the running portpubs' state files, which list each
// binding with its target: checked once this process's own state file is written (so of two
// that start together, at least the later to look sees the other), and on each reload.
import type { Binding } from '../docker/report.js';
import { joinHostPort } from '../docker/report.js';
import { formatSpec, type PortMapping } from '../docker/spec.js';
import { ERR_SELF_LOOP, EXIT_USAGE, PortpubError } from '../errors.js';
import { localAddresses, reaches, targetAddresses } from './self-loop.js';

/** YIELD_MS: the longest the check runs before it lets the event loop (and the relays) go on. */
const YIELD_MS = 4;

/** Peer is one running portpub as its state file describes it. */
export interface Peer {
  pid: number;
  bindings: readonly Binding[];
}

/** Hop is one binding on a loop, and the process serving it. */
export interface Hop {
  pid: number;
  binding: Binding;
}

/**
 * findPeerLoop follows each of `mine`'s targets through the peers' bindings and returns the first
 * path that comes back to one of `mine` through at least one other process (a direct hit is a
 * self-loop, refused before binding). `resolve` gives a target host's addresses (a peer's target
 * may be a name).
 */
export async function findPeerLoop(
  self: number,
  mine: readonly Binding[],
  peers: readonly Peer[],
  resolve: (host: string) => Promise<string[]> = targetAddresses,
): Promise<Hop[] | undefined> {
  // In bounded steps: a reload of a large file must not stall the relays (issue 11).
  let lastYield = performance.now();
  let work = 0;
  const pause = async () => {
    if (++work % 256 !== 0 || performance.now() - lastYield < YIELD_MS) return;
    await new Promise((r) => setImmediate(r));
    lastYield = performance.now();
  };
  const portKey = (protocol: string, port: number) => port * 4 + (protocol === 'tcp' ? 0 : 1);
  // A loop through another process leaves this one for one of its listening ports: only
  // bindings aimed at such a port can start one (with no other portpub, none can).
  const others: Hop[] = [];
  const theirs = new Set<number>();
  for (const p of peers) {
    if (p.pid === self) continue;
    for (const binding of p.bindings) {
      others.push({ pid: p.pid, binding });
      theirs.add(portKey(binding.protocol, binding.hostPort));
      await pause();
    }
  }
  if (others.length === 0) return undefined;
  const homes: Hop[] = [];
  const starts: Hop[] = [];
  for (const binding of mine) {
    const h = { pid: self, binding };
    homes.push(h);
    if (theirs.has(portKey(binding.protocol, binding.targetPort))) starts.push(h);
    await pause();
  }
  if (starts.length === 0) return undefined;
  const local = localAddresses();
  const byPort = new Map<number, Hop[]>();
  for (const h of [...homes, ...others]) {
    const k = portKey(h.binding.protocol, h.binding.hostPort);
    let list = byPort.get(k);
    if (!list) byPort.set(k, (list = []));
    list.push(h);
    await pause();
  }
  const resolved = new Map<string, string[]>();
  const lookup = async (host: string) => {
    let a = resolved.get(host);
    if (!a) resolved.set(host, (a = await resolve(host)));
    return a;
  };
  /** next is the socket a hop's target lands on, if some portpub listens there. */
  const known = new Map<Hop, Hop | undefined>();
  const next = async (h: Hop): Promise<Hop | undefined> => {
    if (known.has(h)) return known.get(h);
    let hit: Hop | undefined;
    const sockets = byPort.get(portKey(h.binding.protocol, h.binding.targetPort));
    for (const address of sockets ? await lookup(h.binding.targetHost) : []) {
      hit = sockets!.find((s) => reaches(address, s.binding.hostIp, local));
      if (hit) break;
    }
    known.set(h, hit);
    return hit;
  };
  for (const start of starts) {
    // Targets lead one way, so the walk either ends or comes round to a hop already on it.
    const path: Hop[] = [];
    const at = new Map<Hop, number>();
    for (let h: Hop | undefined = start; h; h = await next(h)) {
      const i = at.get(h);
      if (i !== undefined) {
        const round = path.slice(i);
        const home = round.findIndex((p) => p.pid === self);
        if (home >= 0 && round.some((p) => p.pid !== self)) {
          // Told from this process's hop on the loop, back to it.
          const from = [...round.slice(home), ...round.slice(0, home)];
          return [...from, from[0]!];
        }
        break;
      }
      at.set(h, path.length);
      path.push(h);
      await pause();
    }
  }
  return undefined;
}

/** peerLoopError words the refusal: the path round, and what to do instead. */
export function peerLoopError(path: readonly Hop[], mapping?: PortMapping): PortpubError {
  const where = (h: Hop) =>
    `${joinHostPort(h.binding.hostIp, h.binding.hostPort)}/${h.binding.protocol}`;
  const to = (h: Hop) => `${joinHostPort(h.binding.targetHost, h.binding.targetPort)}`;
  const first = path[0]!;
  const what =
    first.binding.name !== undefined
      ? `service ${first.binding.name}: ${where(first)}`
      : mapping
        ? `-p ${formatSpec(mapping)}`
        : where(first);
  const hops = path
    .slice(1, -1)
    .map((h) => `portpub pid ${h.pid}'s listening socket ${where(h)}, which forwards to ${to(h)}`)
    .join(', then ');
  return new PortpubError(
    ERR_SELF_LOOP,
    `${what}: the target ${to(first)}/${first.binding.protocol} is ${hops}: this portpub's own ` +
      `listening socket ${where(path[path.length - 1]!)}, so every connection would go round ` +
      `between the portpubs until descriptors run out. Point one of them at the service itself ` +
      `(another host port, or the service on another loopback address such as 127.0.0.2), or ` +
      `start the service with \`portpub run\`, which gives it its own network namespace`,
    EXIT_USAGE,
  );
}

/** LOOP_CHECK_TTL_MS: how long an answer of peerLoopGuard holds (portpubs come and go). */
export const LOOP_CHECK_TTL_MS = 5_000;

/**
 * peerLoopGuard answers TcpForwarderOptions.loopsVia for this process's bindings: whether the
 * address a hostname target reached now goes round through other running portpubs back here (a
 * name can start resolving into a loop after start). The first connection to reach an address
 * starts the check and goes through; the answer then holds for LOOP_CHECK_TTL_MS, after which the
 * next connection checks again. `onLoop` hears each loop found (to log it).
 */
export function peerLoopGuard(
  bindings: () => readonly Binding[],
  peers: () => readonly Peer[],
  onLoop: (err: PortpubError) => void,
  resolve: (host: string) => Promise<string[]> = targetAddresses,
): (binding: Binding, address: string) => boolean | undefined {
  const answers = new Map<string, { at: number; loops?: boolean }>();
  return (binding, address) => {
    const key = `${binding.protocol} ${joinHostPort(binding.hostIp, binding.hostPort)} ${address}`;
    const now = Date.now();
    const known = answers.get(key);
    if (known && now - known.at < LOOP_CHECK_TTL_MS) return known.loops;
    const entry: { at: number; loops?: boolean } = { at: now, loops: known?.loops };
    answers.set(key, entry);
    const mine = bindings().map((b) => (b === binding ? { ...b, targetHost: address } : b));
    void (async () => {
      const path = await findPeerLoop(process.pid, mine, peers(), resolve);
      entry.loops = path !== undefined;
      if (path) onLoop(peerLoopError(path));
    })().catch(() => {
      entry.loops = false; // an unreadable state directory hides no loop worth cutting over
    });
    return entry.loops;
  };
}
