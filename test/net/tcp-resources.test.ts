// The TCP forwarder's read buffers and resources: slow readers on every pair (both engines; the
// TypeScript one on each of its read paths), the shared read buffer, memory and descriptors of a
// forwarder in a child process.
import { describe, expect, it, onTestFinished } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TcpForwarderOptions, TcpStats } from '../../src/tcp/forwarder.js';
import { capturesHeld, readBufferCounts } from '../../src/tcp/shared-reads.js';
import {
  connectTcp,
  echoServer,
  hashIncoming,
  outcome,
  readToEnd,
  sendPattern,
  settled,
  tcpServer,
  track,
  vmRssBytes,
  waitFor,
  withDeadline,
} from '../helpers/net.js';
import { buildForChild } from '../helpers/udp.js';
import { engines, jsTested, requireNative, type Engine } from '../helpers/engines.js';
import { FIXTURES, MiB, V4, forward, slowHash } from '../fixtures/tcp-helpers.js';

requireNative();

/**
 * relays are the ways a pair's bytes are read: the TypeScript relay's two client read paths
 * ('targets' is what 'shared' falls back to where Node's internals are not as expected), and the
 * native engine's own (recv/send and splice, no read path option).
 */
const relays = engines.flatMap(
  (engine): { engine: Engine; reads: string; readPath?: TcpForwarderOptions['readPath'] }[] =>
    engine === 'js'
      ? [
          { engine, reads: 'shared', readPath: 'shared' },
          { engine, reads: "'data' events (fallback)", readPath: 'targets' },
        ]
      : [{ engine, reads: 'the engine' }],
);

describe.each(relays)('client reads: $reads ($engine engine)', ({ engine, readPath }) => {
  it('16 pairs, 8 MiB each way, slow readers everywhere: every byte where it belongs', async () => {
    const pairs = 16;
    const size = 8 * MiB;
    const before = { ...readBufferCounts };
    const target = await tcpServer(() => undefined);
    const { fw, port } = await forward(target, readPath ? { readPath } : {}, V4, engine);
    const flows = Array.from({ length: pairs }, async (_, i) => {
      const client = await connectTcp(port);
      const far = await target.next();
      return Promise.all([
        sendPattern(client, size, 100 + i),
        slowHash(far),
        sendPattern(far, size, 200 + i),
        slowHash(client),
      ]);
    });
    const results = await withDeadline(Promise.all(flows), 50_000, 'all pairs');
    for (const [upSent, upGot, downSent, downGot] of results) {
      expect(upGot).toEqual({ bytes: size, sha256: upSent });
      expect(downGot).toEqual({ bytes: size, sha256: downSent });
    }
    await withDeadline(fw.close(), 5_000, 'the pairs to finish');
    expect(fw.stats()).toMatchObject({
      bytesClientToTarget: pairs * size,
      bytesTargetToClient: pairs * size,
    });
    // The rest is the TypeScript relay's shared reads and their counters.
    if (engine === 'native') return;
    const shared = readPath === 'shared';
    // Target sockets always read into the shared buffer; clients only on the shared path. Both
    // the capture and the put-back must have happened, or this test proved nothing about them.
    expect(readBufferCounts.acceptedShared - before.acceptedShared).toBe(shared ? pairs : 0);
    expect(readBufferCounts.captured).toBeGreaterThan(before.captured);
    expect(readBufferCounts.restored).toBeGreaterThan(before.restored);
    // Once every pair has finished, nothing is held for a write any more.
    expect(capturesHeld()).toBe(0);
    // The forwarder's own counters say so too.
    expect(fw.stats().sharedReadsCaptured).toBeGreaterThan(0);
    expect(fw.stats().sharedReadsRestored).toBeGreaterThan(0);
  }, 60_000);
});

// JS-only: the shared read buffer is the TypeScript relay's internals.
describe.runIf(jsTested)('shared read buffer', () => {
  it('a captured buffer is reused once its write completes, not replaced by a new one', async () => {
    const size = 64 * MiB;
    const before = { ...readBufferCounts };
    const target = await tcpServer(() => undefined);
    const { port } = await forward(target);
    const client = await connectTcp(port);
    const got = slowHash(client);
    const sent = sendPattern(await target.next(), size, 5);
    expect(await withDeadline(got, 30_000, '64 MiB to a slow reader')).toEqual({
      bytes: size,
      sha256: await sent,
    });
    const captured = readBufferCounts.captured - before.captured;
    expect(captured).toBeGreaterThan(20);
    // One writer, one pending write at a time: two spare read buffers and copies cover it all.
    expect(readBufferCounts.allocated - before.allocated).toBeLessThanOrEqual(4);
  });
});

interface ChildForwarder {
  child: ChildProcess;
  pid: number;
  port: number;
  stats(): Promise<TcpStats>;
  stderr(): string;
}

/**
 * childForwarder runs a forwarder to 127.0.0.1:targetPort in a child process (the module
 * transpiled by buildForChild, so no dist/ is needed), optionally under `ulimit -n`. Killed by
 * PID when the test ends.
 */
async function childForwarder(
  targetPort: number,
  options: Partial<TcpForwarderOptions> = {},
  fdLimit?: number,
): Promise<ChildForwarder> {
  const dir = buildForChild('tcp/forwarder');
  const script = join(dir, 'child.mjs');
  copyFileSync(join(FIXTURES, 'tcp-child-forwarder.mjs'), script);
  const args = [script, String(targetPort), JSON.stringify(options)];
  const child = track(
    fdLimit === undefined
      ? spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -n ${fdLimit} && exec "$0" "$@"`, process.execPath, ...args], {
          stdio: ['pipe', 'pipe', 'pipe'],
        }),
    (c) => c.kill('SIGKILL'),
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const lines = createInterface({ input: child.stdout });
  const pending: ((line: string) => void)[] = [];
  lines.on('line', (line) => pending.shift()?.(line));
  const next = (what: string): Promise<string> =>
    withDeadline(
      new Promise<string>((resolve) => pending.push(resolve)),
      10_000,
      `${what}\n${stderr}`,
    );
  const { port } = JSON.parse(await next('the child forwarder to start')) as { port: number };
  return {
    child,
    pid: child.pid!,
    port,
    stderr: () => stderr,
    stats: async () => {
      const line = next('child stats');
      child.stdin.write('stats\n');
      return JSON.parse(await line) as TcpStats;
    },
  };
}

// JS-only for now: the child (test/fixtures/tcp-child-forwarder.mjs) runs src/tcp's TcpForwarder;
// the native engine's descriptors and stress are covered in engine-tcp/engine-stress.test.ts.
describe.runIf(jsTested)('resources (forwarder in a child process)', () => {
  it(
    'a stalled, then fast, reader: forwarder RSS stays bounded while 512 MiB is offered',
    {
      timeout: 60_000,
    },
    async () => {
      // The forwarder runs in its own process so its resident memory can be read from /proc
      // without the test's own buffers and hashing in the way; kernel socket buffers are not RSS.
      const size = 512 * MiB;
      const target = await tcpServer(() => undefined);
      const fw = await childForwarder(target.port);
      // A first connection, so the baseline includes compiled code paths and first buffers.
      const warm = await connectTcp(fw.port);
      (await target.next()).end('warm');
      expect(String(await readToEnd(warm))).toBe('warm');
      warm.end();
      const baseline = await vmRssBytes(fw.pid);
      let peak = baseline;
      const sampler = setInterval(() => {
        vmRssBytes(fw.pid).then(
          (rss) => (peak = Math.max(peak, rss)),
          () => undefined,
        );
      }, 20);
      onTestFinished(() => clearInterval(sampler));

      const client = await connectTcp(fw.port);
      client.pause(); // a reader that reads nothing: everything backs up
      const far = await target.next();
      const sent = sendPattern(far, size, 11);
      const stalledAt = await settled(() => far.bytesWritten, 'the target writer');
      expect(stalledAt).toBeLessThan(64 * MiB);
      const stalledRss = await vmRssBytes(fw.pid);
      const got = hashIncoming(client); // now read as fast as possible
      const result = await withDeadline(got, 45_000, '512 MiB through the child');
      clearInterval(sampler);
      expect(result).toEqual({ bytes: size, sha256: await sent });
      expect(stalledRss - baseline).toBeLessThan(64 * MiB);
      expect(peak - baseline).toBeLessThan(64 * MiB);
    },
  );

  it(
    'survives running out of file descriptors (ulimit -n 64) and recovers',
    {
      timeout: 30_000,
    },
    async () => {
      const target = await echoServer();
      const fw = await childForwarder(target.port, {}, 64);
      // Each pair costs two descriptors, so most of these 60 cannot be served at once. Each client
      // must be either served (its echo comes back) or turned away (closed or reset): none hangs.
      const attempt = async (i: number): Promise<{ client: net.Socket; served: boolean }> => {
        const client = await connectTcp(fw.port, V4, 10_000);
        const done = outcome(client, 10_000);
        client.write(`hello ${i}`);
        const served = await Promise.race([
          new Promise<boolean>((resolve) => client.once('data', () => resolve(true))),
          done.then(() => false),
        ]);
        return { client, served };
      };
      const first = await withDeadline(
        Promise.all(Array.from({ length: 60 }, (_, i) => attempt(i))),
        20_000,
        '60 clients served or turned away',
      );
      const served = first.filter((r) => r.served);
      expect(served.length).toBeGreaterThan(0);
      expect(served.length).toBeLessThan(60);
      expect(fw.child.exitCode).toBeNull();
      expect((await fw.stats()).connectionsActive).toBe(served.length);
      expect(fw.stderr()).toMatch(/out of fds/);

      // Free everything; the same listener then serves a new batch in full.
      for (const { client } of served) client.end();
      await waitFor(
        async () => (await fw.stats()).connectionsActive === 0,
        'the served pairs to finish',
        10_000,
      );
      const second = await Promise.all(Array.from({ length: 10 }, (_, i) => attempt(100 + i)));
      expect(second.map((r) => r.served)).toEqual(Array(10).fill(true));
      expect(fw.child.exitCode).toBeNull();
    },
  );
});
