// Busy polling in the native engine (native/engine.c busy_poll, PORTPUB_BUSY_POLL): after
// request/response traffic the engine thread polls for the next event instead of sleeping, and
// polling that keeps finding nothing stops for the rest of the second. Counted by the engine's
// own poll counters (pollStats, in a child process whose engine starts with the window asked
// for), and through the built CLI by the engine thread's CPU time in /proc. No assertion is a
// latency: those live in the benchmark.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/engine/load.js';
import { parsePortLine, runCli, startCli } from '../helpers/cli.js';
import { connectTcp, echoServer, roundTrip } from '../helpers/net.js';

const loaded = loadNative();

/** engineThread is the tid of pid's engine thread (named portpub-engine by native/engine.c). */
function engineThread(pid: number): number {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    if (comm === 'portpub-engine') return Number(tid);
  }
  throw new Error(`portpub ${pid} has no portpub-engine thread`);
}

/** cpuMs is the CPU time the thread used so far (schedstat's ns, else stat's clock ticks). */
function cpuMs(pid: number, tid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime in 1/100 s
  }
}

const EXCHANGES = 300;
const FIXTURE = fileURLToPath(new URL('../fixtures/engine-busy-poll.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist', import.meta.url));

interface Polled {
  polls: number;
  hits: number;
  ms: number;
}

/** polled runs n round trips through a native forwarder in a child whose engine polls busyPoll. */
function polled(proto: 'tcp' | 'udp', busyPoll: string, n: number, gapMs: number): Polled {
  const out = execFileSync(process.execPath, [FIXTURE, DIST, proto, `${n}`, `${gapMs}`], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, PORTPUB_BUSY_POLL: busyPoll },
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Polled;
}

describe.skipIf(loaded.binding === undefined)('busy polling in the native engine', () => {
  // A 10 ms window, the longest allowed, so that a loaded machine's slow echo is still caught.
  it.each(['tcp', 'udp'] as const)(
    '%s: polls for the reply and the next request, and never with PORTPUB_BUSY_POLL=0',
    { timeout: 60_000 },
    (proto) => {
      const on = polled(proto, '10ms', EXCHANGES, 0);
      // Each round trip gives two chances (after the request, after the reply); a poll that
      // finds nothing (a slow turn of this loaded machine) is allowed, most are not.
      expect(on.polls).toBeGreaterThanOrEqual(EXCHANGES);
      expect(on.hits).toBeGreaterThanOrEqual(EXCHANGES);
      expect(polled(proto, '0', EXCHANGES, 0)).toMatchObject({ polls: 0, hits: 0 });
    },
  );

  it(
    'polls in vain at most 8 times a second when requests come further apart than the window',
    { timeout: 60_000 },
    () => {
      // 60 requests 12 ms apart with a 10 ms window: the poll after each reply runs out. Polling
      // every time would make 60 polls that find nothing; 8 a second are allowed.
      const r = polled('tcp', '10ms', 60, 12);
      const misses = r.polls - r.hits;
      expect(misses).toBeGreaterThan(0);
      expect(misses).toBeLessThanOrEqual(8 * (Math.floor(r.ms / 1000) + 2));
    },
  );

  it('puts the engine thread to sleep while nothing comes', { timeout: 60_000 }, async () => {
    const target = (await echoServer()).port;
    const pp = await startCli(
      ['-p', `127.0.0.1::${target}`, '--target', '127.0.0.1', '--log-level', 'warn'],
      1,
      15_000,
      { env: { PORTPUB_BUSY_POLL: '10ms' } },
    );
    const pid = pp.child.pid!;
    const tid = engineThread(pid);
    const socket = await connectTcp(parsePortLine(pp.lines[0]!).port);
    for (let i = 0; i < 20; i++) expect(await roundTrip(socket, 'hello')).toBe('hello');
    // After the last reply the engine polls for at most 10 ms, then sleeps: in a second of
    // silence its thread uses (almost) no CPU.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = cpuMs(pid, tid);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(cpuMs(pid, tid) - before).toBeLessThan(50);
    socket.destroy();
    await pp.stop();
  });

  it('refuses a PORTPUB_BUSY_POLL it cannot read, naming it, before binding', async () => {
    for (const bad of ['200', 'fast', '1s']) {
      const r = await runCli(['-p', '127.0.0.1::80', '--target', '127.0.0.1'], 15_000, {
        env: { PORTPUB_BUSY_POLL: bad },
      });
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`PORTPUB_BUSY_POLL must be a duration from 0 to 10ms`);
      expect(r.stderr).toContain(JSON.stringify(bad));
    }
  });
});
