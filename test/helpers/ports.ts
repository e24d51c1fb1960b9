// Port picking that cannot race: each vitest worker owns a block of ports below the kernel's
// ephemeral range, so no port:0 bind anywhere on the machine (the kernel picks those from the
// ephemeral range) and no other test worker (another block) can be handed a port this worker
// handed out. Within its block a worker slot hands ports out in turn across the files it runs.
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

/** BLOCK is how many ports each worker owns. */
const BLOCK = 500;

/** ephemeralStart is the first port of ip_local_port_range (32768 when unreadable). */
function ephemeralStart(): number {
  try {
    const [lo] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(lo);
    return Number.isInteger(n) && n > 1024 ? n : 32768;
  } catch {
    return 32768;
  }
}

/**
 * blockOf is this worker's block: [start, end). VITEST_POOL_ID is 1-based and unique among the
 * workers running at once; blocks count down from the ephemeral range so that none overlaps it.
 */
function blockOf(poolId: number): [number, number] {
  const top = ephemeralStart();
  const slot = ((poolId - 1) % Math.floor((top - 10_000) / BLOCK)) + 1;
  return [top - slot * BLOCK, top - (slot - 1) * BLOCK];
}

const poolId = Number(process.env.VITEST_POOL_ID ?? '1') || 1;
const [blockStart, blockEnd] = blockOf(poolId);

/**
 * CURSOR_FILE carries the cursor from one test file to the next one of the same worker slot in
 * the same run (keyed by the vitest process, our parent): each file is a fresh process, and
 * starting every file at the block's first port would hand out ports a previous file's TCP
 * connections may still hold in TIME_WAIT, which a program binding without SO_REUSEADDR
 * (dnsmasq, redis) cannot take.
 */
const CURSOR_FILE = join(tmpdir(), `portpub-test-ports-${process.ppid}-${poolId}`);

function loadCursor(): number {
  try {
    const n = Number(readFileSync(CURSOR_FILE, 'utf8'));
    return Number.isInteger(n) && n >= blockStart && n < blockEnd ? n : blockStart;
  } catch {
    return blockStart;
  }
}

let cursor = loadCursor();

function bindable(kind: 'tcp' | 'udp', host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (kind === 'tcp') {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
    } else {
      const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      s.once('error', () => {
        s.close();
        resolve(false);
      });
      s.bind({ address: host, port, exclusive: true }, () => s.close(() => resolve(true)));
    }
  });
}

/**
 * reservePorts returns the first of `count` consecutive ports of this worker's block that no
 * other program holds right now (TCP and UDP, on host), and never hands them out again in this
 * file. Fails when the block is used up.
 */
export async function reservePorts(count = 1, host = '127.0.0.1'): Promise<number> {
  if (cursor + count > blockEnd) cursor = blockStart; // a long run wraps around its block
  const start = cursor;
  while (cursor + count <= blockEnd) {
    const first = cursor;
    let ok = true;
    for (let p = first; p < first + count && ok; p++) {
      ok = (await bindable('tcp', host, p)) && (await bindable('udp', host, p));
      if (!ok) cursor = p + 1;
    }
    if (ok) {
      cursor = first + count;
      writeFileSync(CURSOR_FILE, String(cursor));
      return first;
    }
  }
  throw new Error(`test port block ${blockStart}-${blockEnd - 1} is used up (from ${start})`);
}
