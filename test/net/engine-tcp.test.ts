// The TCP relay's behaviour, run against the native engine (native/tcp.c through
// src/engine/native-tcp.ts): the same cases as tcp-forwarder.test.ts, plus descriptor accounting
// and a bounded hostile-peer stress. Skipped, saying so, where the addon did not build; CI sets
// PORTPUB_REQUIRE_NATIVE=1 so that a missing addon fails instead.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/engine/load.js';
import { NativeTcpForwarder } from '../../src/engine/native-tcp.js';
import { listenTcp, type TcpForwarderOptions } from '../../src/tcp/forwarder.js';
import {
  captureLogger,
  connectOutcome,
  connectTcp,
  echoServer,
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
  type LogLine,
  type Received,
} from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';

const V4 = '127.0.0.1';
const V6 = '::1';
const MiB = 1 << 20;

const loaded = loadNative();
const required = process.env.PORTPUB_REQUIRE_NATIVE === '1';
if (loaded.binding === undefined && !required) {
  console.warn(`engine-tcp: skipped, native engine ${loaded.why}`);
}

it.runIf(required)('the native engine loaded (PORTPUB_REQUIRE_NATIVE=1)', () => {
  expect(loaded.binding, loaded.binding ? '' : loaded.why).toBeDefined();
});

/** forward serves host:0 with a native forwarder to target; destroyed when the test ends. */
async function forward(
  target: { host: string; port: number },
  options: Partial<TcpForwarderOptions> = {},
  host = V4,
): Promise<{ fw: NativeTcpForwarder; port: number }> {
  const server = await listenTcp(host, 0);
  track(server, (s) => s.close());
  const fw = track(
    new NativeTcpForwarder(
      server,
      { targetHost: target.host, targetPort: target.port, ...options },
      loaded.binding!,
    ),
  );
  return { fw, port: fw.address.port };
}

const closeLines = (lines: LogLine[]): LogLine[] =>
  lines.filter((l) => l.msg === 'connection closed');

/** openFds counts this process's open descriptors. */
const openFds = (): number => readdirSync('/proc/self/fd').length;

/**
 * endedBy reads a socket to its end and says whether its peer reset it or ended it cleanly (as
 * in tcp-forwarder.test.ts: after an EOF a write tells a reset behind unread bytes from a FIN).
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

const slowHash = (socket: net.Socket): Promise<Received> =>
  hashIncoming(socket, { pauseEvery: 256 * 1024 });

describe.skipIf(loaded.binding === undefined)('native TCP engine', () => {
  describe('relay', () => {
    it('connects to the target at once, so a server that speaks first is heard', async () => {
      const target = await tcpServer((s) => s.end('220 hello\r\n'));
      const { port } = await forward(target);
      const result = await connectOutcome(port);
      expect(result).toMatchObject({ ended: true, error: undefined });
      expect(String(result.received)).toBe('220 hello\r\n');
    });

    it('carries 128 MiB each way at once, byte-exact (SHA-256)', { timeout: 60_000 }, async () => {
      const size = 128 * MiB;
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
        '128 MiB each way',
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

    it('small messages to a stalled reader: copied, parked in the pipe, spliced, byte-exact', async () => {
      // A read under the engine's 4 KiB copy buffer goes through recv/send; when the target
      // stops reading, what send cannot take is parked in the pipe and the direction moves to
      // splice until it drains. Each message is sent once the engine has read the one before,
      // so every read is small, until the target's window and the pipe are full.
      const target = await tcpServer(() => undefined);
      const { fw, port } = await forward(target);
      const client = await connectTcp(port);
      const far = await target.next();
      far.pause();
      const hash = createHash('sha256');
      let bytes = 0;
      const deadline = Date.now() + 15_000;
      for (let i = 0; i < 20_000 && Date.now() < deadline; i++) {
        const message = Buffer.alloc(100 + ((i * 797) % 3000), i & 0xff);
        hash.update(message);
        bytes += message.length;
        client.write(message);
        const waitUntil = Date.now() + 200;
        while (fw.stats().bytesClientToTarget < bytes && Date.now() < waitUntil) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (fw.stats().bytesClientToTarget < bytes) break; // stalled: the pipe is full
      }
      client.end();
      const got = hashIncoming(far);
      expect(await withDeadline(got, 20_000, 'the messages')).toEqual({
        bytes,
        sha256: hash.digest('hex'),
      });
      await waitFor(() => fw.stats().bytesClientToTarget === bytes, 'the count');
    });

    it('16 pairs, 8 MiB each way, slow readers everywhere: every byte where it belongs', async () => {
      const pairs = 16;
      const size = 8 * MiB;
      const target = await tcpServer(() => undefined);
      const { fw, port } = await forward(target);
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
    }, 60_000);

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
        expect.objectContaining({
          how: 'end',
          bytesClientToTarget: 7,
          bytesTargetToClient: 8 * MiB,
        }),
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
      'serves 1,000 concurrent connections ([::1]), then closes them all',
      { timeout: 60_000 },
      async () => {
        const n = 1000;
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
          '1,000 echoes',
        );
        expect(results.filter((ok) => !ok)).toHaveLength(0);
        await waitFor(() => fw.stats().connectionsActive === 0, 'every pair to finish', 10_000);
        await waitFor(
          () => target.closed === n,
          'the target to see every connection closed',
          10_000,
        );
        expect(fw.stats()).toMatchObject({ connectionsTotal: n, connectionsRejected: 0 });
      },
    );

    it('serves the connections that arrived before the engine took the listener', async () => {
      const target = await echoServer();
      const server = await listenTcp(V4, 0);
      track(server, (s) => s.close());
      const client = await connectTcp((server.address() as net.AddressInfo).port);
      client.write('early');
      const connections = (): Promise<number> =>
        new Promise((resolve) => server.getConnections((_e, n) => resolve(n)));
      await waitFor(async () => (await connections()) === 1, 'Node to accept the client');
      const fw = track(
        new NativeTcpForwarder(
          server,
          { targetHost: V4, targetPort: target.port },
          loaded.binding!,
        ),
      );
      const got = await withDeadline(
        new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(String(d)))),
        5_000,
        'the early bytes echoed',
      );
      expect(got).toBe('early');
      expect(fw.stats()).toMatchObject({ connectionsTotal: 1, connectionsActive: 1 });
    });

    it('drops a connection from its own target socket (forwarding into itself)', async () => {
      const { logger, lines } = captureLogger();
      const server = await listenTcp(V4, 0);
      track(server, (s) => s.close());
      const port = (server.address() as net.AddressInfo).port;
      const fw = track(
        new NativeTcpForwarder(
          server,
          { targetHost: V4, targetPort: port, logger },
          loaded.binding!,
        ),
      );
      expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(fw.stats()).toMatchObject({ connectionsLooped: 1, connectionsTotal: 1 });
      expect(lines.filter((l) => /comes from portpub itself/.test(l.msg))).toHaveLength(1);
    });

    it('lists live connections with their addresses, bytes and state', async () => {
      const target = await echoServer();
      const { fw, port } = await forward(target);
      const client = await connectTcp(port);
      expect(await roundTrip(client, 'hello')).toBe('hello');
      const [info, ...rest] = fw.connections();
      expect(rest).toHaveLength(0);
      expect(info).toMatchObject({
        protocol: 'tcp',
        client: `${V4}:${client.localPort}`,
        host: `${V4}:${port}`,
        target: `${V4}:${target.port}`,
        bytesClientToTarget: 5,
        bytesTargetToClient: 5,
        state: 'open',
      });
      expect(info!.targetLocal).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(info!.openedAt).toBeLessThanOrEqual(Date.now() + 1); // whole ms of the engine clock
      client.end();
      await waitFor(() => fw.connections().length === 0, 'the connection to leave the list');
    });
  });

  describe('failures', () => {
    it('target down: the client sees a reset, not an EOF; the next client is served', async () => {
      const deadPort = await reservePorts(1);
      const { logger, lines } = captureLogger();
      const { fw, port } = await forward({ host: V4, port: deadPort }, { logger });
      const first = await connectOutcome(port);
      expect(first).toMatchObject({ ended: false, error: 'ECONNRESET' });
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(lines.find((l) => l.msg === 'cannot connect to target')).toMatchObject({
        level: 40,
        code: 'ECONNREFUSED',
        targetAddress: `${V4}:${deadPort}`,
      });
      expect(closeLines(lines)[0]).toMatchObject({ how: 'connect-failed', code: 'ECONNREFUSED' });
      expect(fw.stats()).toMatchObject({ connectFailures: 1, connectionsActive: 0 });
      await tcpServer((s) => s.pipe(s), V4, deadPort);
      const second = await connectTcp(port);
      expect(await roundTrip(second, 'alive')).toBe('alive');
    });

    it('target refusing (accepts, then resets): the client sees the reset', async () => {
      const target = await tcpServer((s) => s.resetAndDestroy());
      const { logger, lines } = captureLogger();
      const { port } = await forward(target, { logger });
      expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(['reset-by-target', 'connect-failed']).toContain(closeLines(lines)[0]!.how);
    });

    it('target not answering SYNs: connectTimeoutMs resets the client, logged ETIMEDOUT', async () => {
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
      const line = new Promise<string>((resolve) =>
        createInterface({ input: child.stdout }).once('line', resolve),
      );
      const blackholePort = Number(await withDeadline(line, 5_000, 'the blocked listener'));
      for (let i = 0; i < 2; i++) await connectTcp(blackholePort);
      const { logger, lines } = captureLogger();
      const { fw, port } = await forward(
        { host: V4, port: blackholePort },
        { connectTimeoutMs: 300, logger },
      );
      const started = Date.now();
      expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(lines.find((l) => l.msg === 'cannot connect to target')).toMatchObject({
        code: 'ETIMEDOUT',
      });
      expect(fw.stats().connectFailures).toBe(1);
    });

    it('target resetting mid-stream: the client gets a reset', async () => {
      const target = await tcpServer((s) => {
        s.write(Buffer.alloc(64 * 1024, 1), () => s.resetAndDestroy());
      });
      const { port } = await forward(target);
      // endedBy, not outcome: the engine passes the reset on within microseconds, often while
      // the 64 KiB are still unread (libuv then reports the reset as an EOF), or before Node has
      // even seen its connect complete (then it is the connect that fails with ECONNRESET).
      const client = track(net.connect({ port, host: V4, allowHalfOpen: true }));
      expect(await endedBy(client)).toBe('reset');
    });

    it('client resetting mid-stream: the target sees a reset', async () => {
      const target = await tcpServer(() => undefined);
      const { logger, lines } = captureLogger();
      const { port } = await forward(target, { logger });
      const client = await connectTcp(port);
      const far = await target.next();
      let farGot = 0;
      far.on('data', (d: Buffer) => (farGot += d.length));
      const seen = outcome(far);
      client.write('some bytes');
      // Wait until the target has read them: libuv reports a reset that arrives while bytes are
      // unread (EPOLLHUP after a partial read) as a plain end, which would hide what is tested.
      await waitFor(() => farGot === 10, 'the target to read the bytes');
      client.resetAndDestroy();
      expect(await seen).toMatchObject({ ended: false, error: 'ECONNRESET' });
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(closeLines(lines)[0]).toMatchObject({ how: 'reset-by-client', code: 'ECONNRESET' });
    });

    it(
      'target never reading: the engine stops reading too, then destroy() cuts',
      { timeout: 30_000 },
      async () => {
        const target = await tcpServer((s) => s.pause());
        const { fw, port } = await forward(target);
        const client = await connectTcp(port);
        const far = await target.next();
        const done = outcome(client, 20_000);
        void sendPattern(client, 512 * MiB, 3).catch(() => undefined);
        const absorbed = await settled(() => fw.stats().bytesClientToTarget, 'the upload');
        expect(absorbed).toBeGreaterThan(0);
        expect(absorbed).toBeLessThan(64 * MiB);
        fw.destroy();
        expect(fw.stats().connectionsActive).toBe(0);
        await withDeadline(done, 5_000, 'the client to be cut');
        // A cut is a reset on both sides: a clean end would make a cut upload look complete.
        expect(await endedBy(far)).toBe('reset');
      },
    );
  });

  describe('cuts', () => {
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
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(closeLines(lines)).toEqual([expect.objectContaining({ how: 'destroyed' })]);
    });
  });

  describe('timeouts, limits, lifecycle', () => {
    it('idleTimeoutMs closes a pair with no traffic, and not one that is busy', async () => {
      const target = await echoServer();
      const { logger, lines } = captureLogger();
      const { fw, port } = await forward(target, { idleTimeoutMs: 300, logger });
      const client = await connectTcp(port);
      const done = outcome(client, 10_000);
      for (let i = 0; i < 7; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
        expect(await roundTrip(client, `ping ${i}`)).toBe(`ping ${i}`);
      }
      expect(client.destroyed).toBe(false);
      const quietFrom = Date.now();
      expect(await done).toMatchObject({ ended: true, error: undefined });
      expect(Date.now() - quietFrom).toBeGreaterThanOrEqual(250);
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(closeLines(lines)[0]).toMatchObject({ how: 'idle-timeout' });
      expect(fw.stats().connectionsActive).toBe(0);
    });

    it('halfCloseLingerMs ends a half-closed pair whose other side stays silent', async () => {
      const target = await tcpServer(() => undefined);
      const { logger, lines } = captureLogger();
      const { port } = await forward(target, { halfCloseLingerMs: 300, logger });
      const client = await connectTcp(port);
      const farGot = readToEnd(await target.next());
      const done = outcome(client, 10_000);
      const started = Date.now();
      client.end('last words');
      expect((await done).error).toBeUndefined();
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
      expect(closeLines(lines)[0]).toMatchObject({ how: 'linger-timeout' });
      expect(String(await farGot)).toBe('last words');
    });

    it('halfCloseLingerMs does not cut a reply that keeps flowing after the FIN', async () => {
      const target = await tcpServer((s) => {
        s.resume();
        s.on('end', () => {
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
      const { port } = await forward(target, { halfCloseLingerMs: 300, logger });
      const client = await connectTcp(port);
      const done = outcome(client, 10_000);
      client.end('request');
      const result = await done;
      expect(result).toMatchObject({ ended: true, error: undefined });
      expect(String(result.received)).toBe('part 0;part 1;part 2;part 3;part 4;part 5;');
      await waitFor(() => closeLines(lines).length === 1, 'the close log line');
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
      await waitFor(() => lines.some((l) => /maxConnections/.test(l.msg)), 'the warning');
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
      expect(fw.close()).toBe(fw.close());
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
      await waitFor(() => closeLines(lines).length === 2, 'both close lines');
      expect(fw.stats()).toEqual({
        connectionsActive: 0,
        connectionsTotal: 2,
        connectionsRejected: 0,
        connectFailures: 0,
        bytesClientToTarget: 7,
        bytesTargetToClient: 7,
        connectionsLooped: 0,
      });
      expect(lines.filter((l) => l.msg === 'connection opened' && l.level === 20)).toHaveLength(2);
      const closes = closeLines(lines);
      expect(closes[1]).toMatchObject({
        level: 30,
        how: 'end',
        bytesClientToTarget: 4,
        bytesTargetToClient: 4,
      });
      expect(closes[1]!.client).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(typeof closes[1]!.durationMs).toBe('number');
    });

    it('returns to its descriptor baseline once every connection and listener is gone', async () => {
      const target = await echoServer();
      // Warm up: the engine's own descriptors (epoll, eventfd, spare) and its pipe pool.
      const warm = await forward(target);
      const w = await connectTcp(warm.port);
      expect(await roundTrip(w, 'warm')).toBe('warm');
      w.destroy();
      await withDeadline(warm.fw.close(), 5_000, 'warm-up drain');
      const baseline = openFds();
      const { fw, port } = await forward(target);
      const clients = await Promise.all(Array.from({ length: 50 }, () => connectTcp(port)));
      for (const c of clients) expect(await roundTrip(c, 'fd')).toBe('fd');
      for (const c of clients) c.destroy();
      await withDeadline(fw.close(), 5_000, 'the pairs to finish');
      await waitFor(() => target.sockets.size === 0, 'the target side to close');
      // Pooled pipes may stay (at most 64 pipes, two descriptors each).
      await waitFor(() => openFds() <= baseline + 128, `descriptors back near ${baseline}`);
      expect(openFds()).toBeLessThanOrEqual(baseline + 128);
    });
  });
});
