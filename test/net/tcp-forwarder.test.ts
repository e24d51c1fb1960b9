// The TCP forwarder on loopback: listening, options, the relay both ways, failures; each
// behaviour against both engines (test/helpers/engines.ts).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { createTcpForwarder } from '../../src/engine/index.js';
import { listenTcp, type TcpForwarderOptions } from '../../src/tcp/forwarder.js';
import { engines, requireNative, tcpForwarder } from '../helpers/engines.js';
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
  waitFor,
  withDeadline,
} from '../helpers/net.js';
import {
  FIXTURES,
  MiB,
  V4,
  V6,
  closeLines,
  endedBy,
  firstLine,
  forwardWith,
  listening,
  tcpServerWraps,
} from '../fixtures/tcp-helpers.js';

requireNative();

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
});

describe.each(engines)('forwarder options (%s engine)', (engine) => {
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
    const make = () =>
      createTcpForwarder(server, { targetHost: V4, targetPort: 80, ...override }, engine);
    expect(make).toThrow(message);
    try {
      make();
    } catch (err) {
      expect(err).toMatchObject({ code: 'ERR_USAGE' });
    }
  });

  it('refuses a server that is not listening, or one that already has a forwarder', async () => {
    const idle = net.createServer();
    const make = (server: net.Server) =>
      createTcpForwarder(server, { targetHost: V4, targetPort: 80 }, engine);
    expect(() => make(idle)).toThrow(/listening/);
    const server = await listening();
    track(make(server));
    expect(() => make(server)).toThrow(/already has/);
  });
});

describe.each(engines)('relay (%s engine)', (engine) => {
  const forward = forwardWith(engine);

  it('holds connections that arrive before the forwarder and hands them over', async () => {
    const target = await echoServer();
    const server = await listening(V4);
    const port = (server.address() as net.AddressInfo).port;
    const client = await connectTcp(port);
    client.write('early');
    const connections = (): Promise<number> =>
      new Promise((resolve) => server.getConnections((_e, n) => resolve(n)));
    await waitFor(async () => (await connections()) === 1, 'the server to accept the client');
    const fw = tcpForwarder(engine, server, { targetHost: V4, targetPort: target.port });
    const got = await withDeadline(
      new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(String(d)))),
      5_000,
      'the early bytes echoed',
    );
    expect(got).toBe('early');
    expect(fw.stats()).toMatchObject({ connectionsTotal: 1, connectionsActive: 1 });
  });

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

describe.each(engines)('failures (%s engine)', (engine) => {
  const forward = forwardWith(engine);

  it('target down: the client sees a reset, not an EOF; the next client is served', async () => {
    const deadPort = await freePort();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward({ host: V4, port: deadPort }, { logger });
    const first = await connectOutcome(port);
    expect(first).toMatchObject({ ended: false, error: 'ECONNRESET' });
    // The native engine's events reach TypeScript in batches, after the client saw its reset.
    await waitFor(() => lines.some((l) => l.msg === 'cannot connect to target'), 'the warning');
    const warn = lines.find((l) => l.msg === 'cannot connect to target');
    expect(warn).toMatchObject({
      level: 40,
      code: 'ECONNREFUSED',
      targetAddress: `${V4}:${deadPort}`,
    });
    await waitFor(() => closeLines(lines).length === 1, 'the close log line');
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
    // The native engine's events reach TypeScript in batches, after the client saw its reset.
    await waitFor(() => lines.some((l) => l.msg === 'cannot connect to target'), 'the warning');
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
      spawn(process.execPath, [join(FIXTURES, 'tcp-blocked-listener.mjs')], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
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
    // The native engine's events reach TypeScript in batches, after the client saw its reset.
    await waitFor(() => lines.some((l) => l.msg === 'cannot connect to target'), 'the warning');
    expect(lines.find((l) => l.msg === 'cannot connect to target')).toMatchObject({
      code: 'ETIMEDOUT',
    });
    await waitFor(() => closeLines(lines).length === 1, 'the close log line');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'connect-failed' });
    expect(fw.stats().connectFailures).toBe(1);
  });

  it('target resetting mid-stream: the client gets the data so far, then a reset', async () => {
    const target = await tcpServer((s) => {
      s.write(Buffer.alloc(64 * 1024, 1), () => s.resetAndDestroy());
    });
    const { port } = await forward(target);
    // connectOutcome: the reset may land before the client's connect completes (a fast engine
    // connects, relays and resets within the client's connect), which counts as that reset.
    const result = await connectOutcome(port);
    expect(result).toMatchObject({ ended: false, error: 'ECONNRESET' });
  });

  it('client resetting mid-stream: the target sees a reset', async () => {
    const target = await tcpServer(() => undefined);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    const client = await connectTcp(port);
    const far = await target.next();
    let got = 0;
    far.on('data', (d: Buffer) => (got += d.length));
    const seen = outcome(far);
    client.write('some bytes');
    // The target must have read the bytes before the reset: a reset that lands behind unread
    // bytes reaches a Node reader as a plain EOF (see endedBy), whichever engine relayed it.
    await waitFor(() => got === 10, 'the bytes to reach the target');
    expect(fw.stats().bytesClientToTarget).toBe(10);
    client.resetAndDestroy();
    expect(await seen).toMatchObject({ ended: false, error: 'ECONNRESET' });
    await waitFor(() => closeLines(lines).length === 1, 'the close log line');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'reset-by-client', code: 'ECONNRESET' });
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
    await waitFor(() => closeLines(lines).length >= 1, 'the close log lines');
    expect(closeLines(lines)).toEqual([expect.objectContaining({ how: 'destroyed' })]);
  });
});
