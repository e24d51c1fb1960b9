// Ports for the benchmark, read from /proc/net (no ss needed): which local ports are in use
// (TIME_WAIT included) and whether one listens. Ports are taken below the ephemeral range, so
// the kernel never hands one of them to an outgoing connection meanwhile.
import { readFileSync } from 'node:fs';
import { sleep, type Proc } from './proc.js';

export type Proto = 'tcp' | 'udp';

/** TCP_LISTEN is the state column of a listening socket in /proc/net/tcp. */
const TCP_LISTEN = '0A';

interface Sock {
  port: number;
  state: string;
}

function sockets(proto: Proto): Sock[] {
  const out: Sock[] = [];
  for (const file of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1];
      if (local === undefined || f[3] === undefined) continue;
      out.push({ port: parseInt(local.slice(local.lastIndexOf(':') + 1), 16), state: f[3] });
    }
  }
  return out;
}

/** isListening: a TCP socket in LISTEN, or any bound UDP socket, on port. */
export function isListening(proto: Proto, port: number): boolean {
  return sockets(proto).some((s) => s.port === port && (proto === 'udp' || s.state === TCP_LISTEN));
}

/**
 * PortPool hands out ports of [first, last] not in use by any TCP or UDP socket, counting up and
 * wrapping around within the range (below the ephemeral range by default).
 */
export class PortPool {
  private next: number;

  constructor(
    private readonly first: number,
    private readonly last: number,
    start = first,
  ) {
    this.next = start;
  }

  take(): number {
    const used = new Set([...sockets('tcp'), ...sockets('udp')].map((s) => s.port));
    for (let i = 0; i <= this.last - this.first; i++) {
      const p = this.next++;
      if (this.next > this.last) this.next = this.first;
      if (!used.has(p)) return p;
    }
    throw new Error(`no free port in ${this.first}-${this.last}`);
  }
}

/** waitListening polls until port listens, proc exits, or timeoutMs passes. */
export async function waitListening(
  proto: Proto,
  port: number,
  proc: Proc | undefined,
  timeoutMs = 5000,
): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < timeoutMs;) {
    if (proc?.exited) return false;
    if (isListening(proto, port)) return true;
    await sleep(15);
  }
  return false;
}
