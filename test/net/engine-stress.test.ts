// Hostile peers against the native engine: clients and targets that reset at every step, stop
// reading (zero windows), or half-close and go silent, mixed over a few hundred connections.
// Bounded in count and time. What must hold afterwards: the process is alive, every connection
// is accounted for, descriptors are back near the baseline, and the binding still serves.
// Skipped where the addon did not build or PORTPUB_TEST_ENGINES leaves it out; a run that
// requires it fails instead (test/helpers/engines.ts).
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { listenTcp } from '../../src/tcp/forwarder.js';
import { nativeTested, requireNative, tcpForwarder } from '../helpers/engines.js';
import {
  connectTcp,
  echoServer,
  roundTrip,
  tcpServer,
  track,
  waitFor,
  withDeadline,
} from '../helpers/net.js';

const V4 = '127.0.0.1';
const openFds = (): number => readdirSync('/proc/self/fd').length;

/** Target behaviours, by accept order. */
const TARGETS: ((s: net.Socket) => void)[] = [
  (s) => s.pipe(s), // echo
  (s) => s.resetAndDestroy(), // reset at once
  (s) => s.once('data', () => s.resetAndDestroy()), // reset after the first bytes
  (s) => s.pause(), // never reads: a zero window once the buffers fill
  (s) => s.end(Buffer.alloc(256 * 1024, 7)), // says a lot, then FIN, never reads
  (s) => s.once('end', () => undefined), // reads the FIN, then stays open and silent
];

/** Client behaviours, by index; each resolves when that client is done with the binding. */
const CLIENTS: ((port: number) => Promise<void>)[] = [
  // reset right after connecting (the target connect may still be in progress)
  async (port) => {
    const s = raw(port);
    await connected(s);
    s.resetAndDestroy();
  },
  // send a little, reset
  async (port) => {
    const s = raw(port);
    await connected(s);
    s.write('partial request');
    s.resetAndDestroy();
  },
  // half-close at once and read nothing (half-open)
  async (port) => {
    const s = raw(port);
    await connected(s);
    s.pause();
    s.end('FIN at once');
  },
  // push 2 MiB without reading anything back, then reset (zero window on our side)
  async (port) => {
    const s = raw(port);
    await connected(s);
    s.pause();
    s.write(Buffer.alloc(2 << 20, 1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    s.resetAndDestroy();
  },
  // connect and vanish with a plain close while bytes are unread
  async (port) => {
    const s = raw(port);
    await connected(s);
    s.write('x');
    s.destroy();
  },
];

function raw(port: number): net.Socket {
  const s = track(net.connect({ port, host: V4, allowHalfOpen: true }));
  s.on('error', () => undefined);
  return s;
}

function connected(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    s.once('connect', () => resolve());
    s.once('close', () => resolve());
  });
}

requireNative();

describe.runIf(nativeTested)('native TCP engine under hostile peers', () => {
  it(
    'survives 600 connections of resets, zero windows and half-open peers',
    { timeout: 60_000 },
    async () => {
      let accepted = 0;
      const target = await tcpServer((s) => TARGETS[accepted++ % TARGETS.length]!(s));
      const server = await listenTcp(V4, 0);
      track(server, (s) => s.close());
      const fw = tcpForwarder('native', server, {
        targetHost: V4,
        targetPort: target.port,
        halfCloseLingerMs: 500,
        idleTimeoutMs: 2_000,
      });
      const port = fw.address.port;
      // The engine's own descriptors exist once it served one connection.
      const warm = await connectTcp(port);
      warm.destroy();
      await waitFor(() => fw.stats().connectionsActive === 0, 'the warm-up connection to end');
      const baseline = openFds();

      const total = 600;
      const batch = 50;
      for (let i = 0; i < total; i += batch) {
        await withDeadline(
          Promise.all(
            Array.from({ length: batch }, (_, k) => CLIENTS[(i + k) % CLIENTS.length]!(port)),
          ),
          20_000,
          `hostile batch ${i / batch}`,
        );
      }
      // Half-open and silent pairs end by the linger and idle bounds; the rest at once.
      for (const s of target.sockets) if (s.isPaused()) s.destroy();
      await waitFor(() => fw.stats().connectionsActive === 0, 'every pair to end', 20_000);
      const stats = fw.stats();
      expect(stats.connectionsTotal).toBe(total + 1);
      expect(stats.connectionsActive).toBe(0);

      // Still serving, correctly.
      const echoTarget = await echoServer();
      const server2 = await listenTcp(V4, 0);
      track(server2, (s) => s.close());
      const fw2 = tcpForwarder('native', server2, { targetHost: V4, targetPort: echoTarget.port });
      const client = await connectTcp(fw2.address.port);
      expect(await roundTrip(client, 'still here')).toBe('still here');
      client.destroy();
      await withDeadline(fw2.close(), 5_000, 'the echo pair to end');
      await withDeadline(fw.close(), 5_000, 'the hostile binding to drain');
      // Target sockets that never read, or read the FIN and stay open, never notice the engine's
      // close by themselves: the fixture lets go of them (also of those it accepts late, from its
      // backlog), so the count below is the engine's own.
      await waitFor(
        () => {
          for (const s of target.sockets) s.destroy();
          return target.sockets.size === 0;
        },
        'the target side to close',
        10_000,
      );
      // Pooled pipes may stay: at most 64, two descriptors each.
      await waitFor(() => openFds() <= baseline + 128, `descriptors back near ${baseline}`, 10_000);
    },
  );
});
