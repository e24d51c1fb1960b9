import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  TcpForwarder,
  listenTcp,
  type TcpForwarderOptions,
  type TcpStats,
} from '../../src/tcp/forwarder.js';
import {
  captureLogger,
  connectOutcome,
  connectTcp,
  echoServer,
  freePort,
  hashIncoming,
  outcome,
  readToEnd,
  roundTrip,
  sendPattern,
  settled,
  tcpServer,
  track,
  vmRssBytes,
  waitFor,
  withDeadline,
  type LogLine,
  type Received,
} from '../helpers/net.js';
import { buildForChild } from '../helpers/udp.js';
import { capturesHeld, readBufferCounts } from '../../src/tcp/shared-reads.js';

const V4 = '127.0.0.1';
const V6 = '::1';
const MiB = 1 << 20;

/** listening binds host:0 with listenTcp; the server is closed when the test ends. */
async function listening(host = V4): Promise<net.Server> {
  const server = await listenTcp(host, 0);
  track(server, (s) => s.close());
  return server;
}

/** forward starts a forwarder on host:0 to target; destroyed when the test ends. */
async function forward(
  target: { host: string; port: number },
  options: Partial<TcpForwarderOptions> = {},
  host = V4,
): Promise<{ fw: TcpForwarder; port: number; host: string }> {
  const server = await listening(host);
  const fw = track(
    new TcpForwarder(server, { targetHost: target.host, targetPort: target.port, ...options }),
  );
  return { fw, port: fw.address.port, host };
}

const closeLines = (lines: LogLine[]): LogLine[] =>
  lines.filter((l) => l.msg === 'connection closed');

function tcpServerWraps(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
}

describe('listenTcp', () => {
  it('binds an ephemeral port on an IP and keeps the server listening', async () => {
    const server = await listening(V4);
    expect(server.listening).toBe(true);
    const address = server.address() as net.AddressInfo;
    expect(address.address).toBe(V4);
    expect(address.port).toBeGreaterThan(0);
  });

  it('rejects with the raw EADDRINUSE and leaves nothing open', async () => {
    const holder = await listening(V4);
    const before = tcpServerWraps();
    const err = (await listenTcp(V4, (holder.address() as net.AddressInfo).port).catch(
      (e: unknown) => e,
    )) as NodeJS.ErrnoException;
    expect(err.code).toBe('EADDRINUSE');
    expect(err.syscall).toBe('listen');
    expect(err).not.toHaveProperty('exitCode');
    // The failed handle is released by the event loop's close phase, not synchronously.
    await waitFor(() => tcpServerWraps() <= before, 'the failed handle to be released', 1_000);
  });

  it("binds '::' v6-only by default, so 0.0.0.0:P and [::]:P coexist like Docker's", async () => {
    const v4 = await listening('0.0.0.0');
    const port = (v4.address() as net.AddressInfo).port;
    const v6 = track(await listenTcp('::', port), (s) => s.close());
    expect((v6.address() as net.AddressInfo).port).toBe(port);
    const dual = (await listenTcp('::', port, { ipv6Only: false }).catch(
      (e: unknown) => e,
    )) as NodeJS.ErrnoException;
    expect(dual.code).toBe('EADDRINUSE');
  });

  it('rejects a hostname or a bad port with a usage error', async () => {
    await expect(listenTcp('localhost', 0)).rejects.toMatchObject({ code: 'ERR_USAGE' });
    await expect(listenTcp(V4, 70000)).rejects.toMatchObject({ code: 'ERR_USAGE' });
  });

  it('holds connections that arrive before the forwarder and hands them over', async () => {
    const target = await echoServer();
    const server = await listening(V4);
    const port = (server.address() as net.AddressInfo).port;
    const client = await connectTcp(port);
    client.write('early');
    const connections = (): Promise<number> =>
      new Promise((resolve) => server.getConnections((_e, n) => resolve(n)));
    await waitFor(async () => (await connections()) === 1, 'the server to accept the client');
    track(new TcpForwarder(server, { targetHost: V4, targetPort: target.port }));
    const got = await withDeadline(
      new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(String(d)))),
      5_000,
      'the early bytes echoed',
    );
    expect(got).toBe('early');
  });
});

describe('TcpForwarder options', () => {
  const bad: [Partial<TcpForwarderOptions>, RegExp][] = [
    [{ targetHost: '' }, /targetHost/],
    [{ targetPort: 0 }, /targetPort/],
    [{ targetPort: 65536 }, /targetPort/],
    [{ targetPort: 1.5 }, /targetPort/],
    [{ connectTimeoutMs: -1 }, /connectTimeoutMs/],
    [{ idleTimeoutMs: 1.5 }, /idleTimeoutMs/],
    [{ halfCloseLingerMs: Number.NaN }, /halfCloseLingerMs/],
    [{ halfCloseLingerMs: 2 ** 31 }, /halfCloseLingerMs/],
    [{ maxConnections: -2 }, /maxConnections/],
    [{ readPath: 'fast' as never }, /readPath/],
    [{ dial: 'localhost' as never }, /dial/],
  ];
  it.each(bad)('rejects %o naming the option', async (override, message) => {
    const server = await listening();
    const make = () => new TcpForwarder(server, { targetHost: V4, targetPort: 80, ...override });
    expect(make).toThrow(message);
    try {
      make();
    } catch (err) {
      expect(err).toMatchObject({ code: 'ERR_USAGE' });
    }
  });

  it('refuses a server that is not listening, or one that already has a forwarder', async () => {
    const idle = net.createServer();
    expect(() => new TcpForwarder(idle, { targetHost: V4, targetPort: 80 })).toThrow(/listening/);
    const server = await listening();
    track(new TcpForwarder(server, { targetHost: V4, targetPort: 80 }));
    expect(() => new TcpForwarder(server, { targetHost: V4, targetPort: 80 })).toThrow(
      /already has/,
    );
  });
});

describe('relay', () => {
  it('connects to the target at once, so a server that speaks first is heard', async () => {
    const target = await tcpServer((s) => s.end('220 hello\r\n'));
    const { port } = await forward(target);
    const result = await connectOutcome(port);
    expect(result).toMatchObject({ ended: true, error: undefined });
    expect(String(result.received)).toBe('220 hello\r\n');
  });

  it('carries 256 MiB each way at once, byte-exact (SHA-256)', { timeout: 60_000 }, async () => {
    const size = 256 * MiB;
    const target = await tcpServer(() => undefined);
    const { fw, port } = await forward(target);
    const client = await connectTcp(port);
    const far = await target.next();
    const [upSent, upGot, downSent, downGot] = await withDeadline(
      Promise.all([
        sendPattern(client, size, 1),
        hashIncoming(far),
        sendPattern(far, size, 2),
        hashIncoming(client),
      ]),
      50_000,
      '256 MiB each way',
    );
    expect(upGot).toEqual({ bytes: size, sha256: upSent });
    expect(downGot).toEqual({ bytes: size, sha256: downSent });
    await withDeadline(fw.close(), 5_000, 'the pair to finish');
    expect(fw.stats()).toMatchObject({
      bytesClientToTarget: size,
      bytesTargetToClient: size,
      connectionsActive: 0,
      connectionsTotal: 1,
    });
  });

  it('client half-close: its FIN reaches the target and an 8 MiB reply still flows back', async () => {
    const target = await tcpServer(() => undefined);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    const client = await connectTcp(port);
    const got = hashIncoming(client);
    client.end('request');
    const far = await target.next();
    expect(String(await readToEnd(far))).toBe('request');
    const sent = await sendPattern(far, 8 * MiB, 7);
    expect(await withDeadline(got, 10_000, 'the 8 MiB reply')).toEqual({
      bytes: 8 * MiB,
      sha256: sent,
    });
    await withDeadline(fw.close(), 5_000, 'the pair to finish');
    expect(closeLines(lines)).toEqual([
      expect.objectContaining({ how: 'end', bytesClientToTarget: 7, bytesTargetToClient: 8 * MiB }),
    ]);
  });

  it('target half-close: its FIN reaches the client, which can still send 8 MiB', async () => {
    const target = await tcpServer((s) => s.end('bye'));
    const { fw, port } = await forward(target);
    const client = await connectTcp(port);
    const received = hashIncoming(await target.next());
    expect(String(await readToEnd(client))).toBe('bye');
    expect(client.destroyed).toBe(false);
    const sent = await sendPattern(client, 8 * MiB, 9);
    expect(await withDeadline(received, 10_000, 'the 8 MiB upload')).toEqual({
      bytes: 8 * MiB,
      sha256: sent,
    });
    await withDeadline(fw.close(), 5_000, 'the pair to finish');
  });

  it('reaches an IPv4 target from an IPv6 client, and an IPv6 target from an IPv4 client', async () => {
    const v4Target = await echoServer(V4);
    const v6Target = await echoServer(V6);
    const sixToFour = await forward(v4Target, {}, V6);
    const fourToSix = await forward(v6Target, {}, V4);
    const a = await connectTcp(sixToFour.port, V6);
    expect(await roundTrip(a, 'over v6 to v4')).toBe('over v6 to v4');
    const b = await connectTcp(fourToSix.port, V4);
    expect(await roundTrip(b, 'over v4 to v6')).toBe('over v4 to v6');
    expect([...v6Target.sockets][0]!.remoteAddress).toBe(V6);
  });

  it(
    'serves 2,000 concurrent connections through one binding ([::1]), then closes them all',
    {
      timeout: 60_000,
    },
    async () => {
      // Over IPv6: the 4,000 ephemeral ports this takes for a few seconds stay out of the IPv4
      // loopback space where other test files, running alongside, probe for free ports.
      const n = 2000;
      const target = await echoServer(V6);
      const { fw, port } = await forward(target, {}, V6);
      const results = await withDeadline(
        Promise.all(
          Array.from({ length: n }, async (_, i) => {
            const client = await connectTcp(port, V6, 20_000);
            const done = outcome(client, 20_000);
            client.end(`message ${i}`);
            return String((await done).received) === `message ${i}`;
          }),
        ),
        40_000,
        '2,000 echoes',
      );
      expect(results.filter((ok) => !ok)).toHaveLength(0);
      await waitFor(() => fw.stats().connectionsActive === 0, 'every pair to finish', 10_000);
      await waitFor(() => target.closed === n, 'the target to see every connection closed', 10_000);
      expect(fw.stats()).toMatchObject({ connectionsTotal: n, connectionsRejected: 0 });
      expect(target.accepted).toBe(n);
    },
  );
});

/**
 * endedBy reads a socket to its end and says whether its peer reset it or ended it cleanly. A
 * reset that arrives behind unread bytes reaches a Node reader as a plain EOF (libuv reports
 * POLLHUP after a partial read as EOF), so after an EOF a write tells them apart: it fails at
 * once on a reset connection and goes out on a half-closed one.
 */
function endedBy(socket: net.Socket, timeoutMs = 10_000): Promise<'reset' | 'end'> {
  return withDeadline(
    new Promise((resolve) => {
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET' || err.code === 'EPIPE') resolve('reset');
      });
      socket.on('end', () => socket.write('?', (err) => resolve(err ? 'reset' : 'end')));
      socket.on('data', () => undefined);
      socket.resume();
    }),
    timeoutMs,
    'the socket to end',
  );
}

/** slowHash is hashIncoming as a reader that stops for a moment after every 256 KiB. */
const slowHash = (socket: net.Socket): Promise<Received> =>
  hashIncoming(socket, { pauseEvery: 256 * 1024 });

describe.each([
  { reads: 'shared', shared: true },
  { reads: "'data' events (fallback)", shared: false },
])('client reads: $reads', ({ shared }) => {
  it('16 pairs, 8 MiB each way, slow readers everywhere: every byte where it belongs', async () => {
    // 'targets' is what 'shared' falls back to where Node's internals are not as expected.
    const pairs = 16;
    const size = 8 * MiB;
    const before = { ...readBufferCounts };
    const target = await tcpServer(() => undefined);
    const { fw, port } = await forward(target, { readPath: shared ? 'shared' : 'targets' });
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

describe('shared read buffer', () => {
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

describe('failures', () => {
  it('target down: the client sees a reset, not an EOF; the next client is served', async () => {
    const deadPort = await freePort();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward({ host: V4, port: deadPort }, { logger });
    const first = await connectOutcome(port);
    expect(first).toMatchObject({ ended: false, error: 'ECONNRESET' });
    const warn = lines.find((l) => l.msg === 'cannot connect to target');
    expect(warn).toMatchObject({
      level: 40,
      code: 'ECONNREFUSED',
      targetAddress: `${V4}:${deadPort}`,
    });
    expect(closeLines(lines)[0]).toMatchObject({ how: 'connect-failed', code: 'ECONNREFUSED' });
    expect(fw.stats()).toMatchObject({ connectFailures: 1, connectionsActive: 0 });

    // The target comes up on that port: the same listener now serves.
    await tcpServer((s) => s.pipe(s), V4, deadPort);
    const second = await connectTcp(port);
    expect(await roundTrip(second, 'alive')).toBe('alive');
  });

  it('names the client in a connect-failure warning with info lines off', async () => {
    // Without info lines a pair never asks for its client's address at accept; the warning asks.
    const deadPort = await freePort();
    const { logger, lines } = captureLogger();
    logger.level = 'warn';
    const { port } = await forward({ host: V4, port: deadPort }, { logger });
    expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
    const warn = lines.find((l) => l.msg === 'cannot connect to target');
    expect(warn?.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(closeLines(lines)).toHaveLength(0);
  });

  it('target refusing (accepts, then resets): the client sees the reset', async () => {
    const target = await tcpServer((s) => s.resetAndDestroy());
    const { logger, lines } = captureLogger();
    const { port } = await forward(target, { logger });
    const result = await connectOutcome(port);
    expect(result).toMatchObject({ ended: false, error: 'ECONNRESET' });
    await waitFor(() => closeLines(lines).length === 1, 'the close log line');
    // Whether the reset lands before or after the connect completes is up to the scheduler.
    expect(['reset-by-target', 'connect-failed']).toContain(closeLines(lines)[0]!.how);
  });

  it('target not answering SYNs: connectTimeoutMs resets the client, logged ETIMEDOUT', async () => {
    // A child whose event loop is blocked never accepts; with backlog 1 its accept queue fills
    // after two connections and the kernel drops further SYNs, so a connect just hangs.
    const child = track(
      spawn(
        process.execPath,
        [
          '-e',
          `const s = require('net').createServer();
           s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
             console.log(s.address().port);
             Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
           });`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
      (c) => c.kill('SIGKILL'),
    );
    const blackholePort = Number(
      await withDeadline(firstLine(child), 5_000, 'the blocked listener to start'),
    );
    for (let i = 0; i < 2; i++) await connectTcp(blackholePort);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(
      { host: V4, port: blackholePort },
      { connectTimeoutMs: 300, logger },
    );
    const started = Date.now();
    const result = await connectOutcome(port);
    expect(result).toMatchObject({ ended: false, error: 'ECONNRESET' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(lines.find((l) => l.msg === 'cannot connect to target')).toMatchObject({
      code: 'ETIMEDOUT',
    });
    expect(fw.stats().connectFailures).toBe(1);
  });

  it('target resetting mid-stream: the client gets the data so far, then a reset', async () => {
    const target = await tcpServer((s) => {
      s.write(Buffer.alloc(64 * 1024, 1), () => s.resetAndDestroy());
    });
    const { port } = await forward(target);
    const client = await connectTcp(port);
    const result = await outcome(client);
    expect(result).toMatchObject({ ended: false, error: 'ECONNRESET' });
  });

  it('client resetting mid-stream: the target sees a reset', async () => {
    const target = await tcpServer(() => undefined);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    const client = await connectTcp(port);
    const seen = outcome(await target.next());
    client.write('some bytes');
    await waitFor(() => fw.stats().bytesClientToTarget === 10, 'the bytes to go through');
    client.resetAndDestroy();
    expect(await seen).toMatchObject({ ended: false, error: 'ECONNRESET' });
    await waitFor(() => closeLines(lines).length === 1, 'the close log line');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'reset-by-client' });
  });

  it(
    'target accepting but never reading: the forwarder stops reading too, then destroy() cuts',
    {
      timeout: 30_000,
    },
    async () => {
      const target = await tcpServer((s) => s.pause());
      const { fw, port } = await forward(target);
      const client = await connectTcp(port);
      const far = await target.next();
      const done = outcome(client, 20_000);
      const offered = 512 * MiB;
      void sendPattern(client, offered, 3).catch(() => undefined);
      // Kernel buffers on both hops (a few MiB each) plus one highWaterMark: far below what was
      // offered, and it must stay put once the flow has stalled.
      const absorbed = await settled(() => fw.stats().bytesClientToTarget, 'the upload');
      expect(absorbed).toBeGreaterThan(0);
      expect(absorbed).toBeLessThan(64 * MiB);
      fw.destroy();
      expect(fw.stats().connectionsActive).toBe(0);
      await withDeadline(done, 5_000, 'the client to be cut');
      // The target, reading at last, gets what the kernel still held, then the forwarder's reset
      // (a cut is a reset on both sides: a clean end would make a cut upload look complete).
      expect(await endedBy(far)).toBe('reset');
    },
  );

  it('destroy() (how the drain timeout cuts) resets both sides of an upload in flight', async () => {
    const target = await tcpServer(() => undefined);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    const client = await connectTcp(port);
    const far = await target.next();
    const farSaw = endedBy(far);
    const clientSaw = endedBy(client);
    void sendPattern(client, 256 * MiB, 4).catch(() => undefined);
    await waitFor(() => fw.stats().bytesClientToTarget > 4 * MiB, 'the upload to be under way');
    fw.destroy();
    expect(await farSaw).toBe('reset');
    expect(await clientSaw).toBe('reset');
    expect(closeLines(lines)).toEqual([expect.objectContaining({ how: 'destroyed' })]);
  });
});

describe('timeouts and limits', () => {
  it('idleTimeoutMs closes a pair with no traffic, and not one that is busy', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { idleTimeoutMs: 300, logger });
    const client = await connectTcp(port);
    const done = outcome(client, 10_000);
    // Busy for twice the timeout: a round trip every 100 ms keeps the pair alive.
    const started = Date.now();
    for (let i = 0; i < 7; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await roundTrip(client, `ping ${i}`)).toBe(`ping ${i}`);
    }
    expect(client.destroyed).toBe(false);
    const quietFrom = Date.now();
    const result = await done;
    expect(result).toMatchObject({ ended: true, error: undefined });
    expect(Date.now() - quietFrom).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'idle-timeout' });
    await waitFor(() => target.sockets.size === 0, 'the target connection to close');
  });

  it('halfCloseLingerMs ends a half-closed pair whose other side stays silent', async () => {
    const target = await tcpServer(() => undefined);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { halfCloseLingerMs: 300, logger });
    const client = await connectTcp(port);
    const far = await target.next();
    const farGot = readToEnd(far); // reads the client's FIN, then stays silent and open
    const done = outcome(client, 10_000);
    const started = Date.now();
    client.end('last words');
    const result = await done;
    expect(result.error).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'linger-timeout' });
    expect(String(await farGot)).toBe('last words');
  });

  it('halfCloseLingerMs does not cut a reply that keeps flowing after the FIN', async () => {
    const target = await tcpServer((s) => {
      s.resume();
      s.on('end', () => {
        // Reply in six parts 100 ms apart: 600 ms in all, twice the linger.
        let i = 0;
        const next = (): void => {
          if (i === 6) return void s.end();
          s.write(`part ${i++};`);
          setTimeout(next, 100);
        };
        next();
      });
    });
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { halfCloseLingerMs: 300, logger });
    const client = await connectTcp(port);
    const done = outcome(client, 10_000);
    client.end('request');
    const result = await done;
    expect(result).toMatchObject({ ended: true, error: undefined });
    expect(String(result.received)).toBe('part 0;part 1;part 2;part 3;part 4;part 5;');
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'end' });
  });

  it('maxConnections resets clients beyond the cap, logs once, and serves again below it', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { maxConnections: 2, logger });
    const a = await connectTcp(port);
    const b = await connectTcp(port);
    expect(await roundTrip(a, 'a')).toBe('a');
    expect(await roundTrip(b, 'b')).toBe('b');
    for (let i = 0; i < 3; i++) {
      expect(await connectOutcome(port)).toMatchObject({ error: 'ECONNRESET' });
    }
    expect(fw.stats()).toMatchObject({ connectionsRejected: 3, connectionsTotal: 2 });
    expect(lines.filter((l) => /maxConnections/.test(l.msg))).toHaveLength(1);
    const aClosed = outcome(a);
    a.end();
    await aClosed;
    await waitFor(() => fw.stats().connectionsActive === 1, 'the first pair to finish');
    const c = await connectTcp(port);
    expect(await roundTrip(c, 'c')).toBe('c');
  });

  it('close() stops accepting and resolves only once the open pair has finished', async () => {
    const target = await echoServer();
    const { fw, port } = await forward(target);
    const client = await connectTcp(port);
    expect(await roundTrip(client, 'before')).toBe('before');
    let closed = false;
    const closing = fw.close().then(() => (closed = true));
    expect(fw.close()).toBe(fw.close()); // idempotent: the same promise
    const refused = await connectTcp(port).catch((e: NodeJS.ErrnoException) => e.code);
    expect(refused).toBe('ECONNREFUSED');
    expect(await roundTrip(client, 'still open')).toBe('still open');
    expect(closed).toBe(false);
    const done = outcome(client);
    client.end();
    await withDeadline(closing, 5_000, 'close() to resolve');
    expect(await done).toMatchObject({ ended: true });
    expect(fw.stats().connectionsActive).toBe(0);
  });

  it('destroy() cuts every pair at once and resolves a pending close()', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    const clients = await Promise.all([connectTcp(port), connectTcp(port)]);
    for (const c of clients) expect(await roundTrip(c, 'x')).toBe('x');
    const closing = fw.close();
    const ends = clients.map((c) => outcome(c));
    fw.destroy();
    fw.destroy();
    expect(fw.stats().connectionsActive).toBe(0);
    await withDeadline(closing, 1_000, 'close() to resolve');
    for (const r of await Promise.all(ends)) expect(r.ended || r.error !== undefined).toBe(true);
    await waitFor(() => target.sockets.size === 0, 'the target connections to close');
    expect(closeLines(lines).map((l) => l.how)).toEqual(['destroyed', 'destroyed']);
  });

  it('counts connections and bytes; logs each open at debug and each close at info', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    for (const msg of ['one', 'two!']) {
      const c = await connectTcp(port);
      const done = outcome(c);
      c.end(msg);
      expect(String((await done).received)).toBe(msg);
    }
    await waitFor(() => fw.stats().connectionsActive === 0, 'both pairs to finish');
    const stats: TcpStats = fw.stats();
    expect(stats).toEqual({
      connectionsActive: 0,
      connectionsTotal: 2,
      connectionsRejected: 0,
      connectFailures: 0,
      bytesClientToTarget: 7,
      bytesTargetToClient: 7,
      connectionsLooped: 0,
      sharedReadsCaptured: 0,
      sharedReadsRestored: 0,
    });
    expect(lines.filter((l) => l.msg === 'connection opened' && l.level === 20)).toHaveLength(2);
    const closes = closeLines(lines);
    expect(closes).toHaveLength(2);
    expect(closes[1]).toMatchObject({
      level: 30,
      how: 'end',
      bytesClientToTarget: 4,
      bytesTargetToClient: 4,
    });
    expect(closes[1]!.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(typeof closes[1]!.durationMs).toBe('number');
  });
});

/** firstLine resolves the first line a child prints on stdout. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => {
      rl.close();
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before printing`)));
  });
}

/** The child forwarder: a listenTcp + TcpForwarder in its own process, stats on request. */
const CHILD = `
import pino from 'pino';
import { listenTcp, TcpForwarder } from './tcp/forwarder.js';
const [targetPort, options] = process.argv.slice(2);
const logger = pino({ level: 'warn', base: undefined }, pino.destination({ fd: 2, sync: true }));
const server = await listenTcp('127.0.0.1', 0);
const fw = new TcpForwarder(server, { targetHost: '127.0.0.1', targetPort: Number(targetPort), logger, ...JSON.parse(options) });
console.log(JSON.stringify({ port: fw.address.port }));
const rl = (await import('node:readline')).createInterface({ input: process.stdin });
rl.on('line', () => console.log(JSON.stringify(fw.stats())));
rl.on('close', () => { fw.destroy(); process.exit(0); });
`;

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
  writeFileSync(script, CHILD);
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

describe('resources (forwarder in a child process)', () => {
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
