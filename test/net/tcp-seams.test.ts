// The TCP forwarder's seams: the read path (logged once, switchable), the live view
// (connections()), the target dialer, and the run-time guard against forwarding into itself. The
// live view and the guard run against both engines; the read path and the dialer are the
// TypeScript relay's alone (a binding with a dialer is always served in TypeScript).
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Forwarder } from '../../src/forwarder.js';
import { listenTcp, type TcpForwarderOptions, type TcpStats } from '../../src/tcp/forwarder.js';
import { ownCount } from '../../src/tcp/own-sockets.js';
import { readBufferCounts } from '../../src/tcp/shared-reads.js';
import {
  captureLogger,
  connectOutcome,
  connectTcp,
  echoServer,
  hashIncoming,
  outcome,
  roundTrip,
  sendPattern,
  track,
  waitFor,
  withDeadline,
} from '../helpers/net.js';
import { closeLines } from '../fixtures/tcp-helpers.js';
import { engines, jsTested, requireNative, tcpForwarder, type Engine } from '../helpers/engines.js';

const V4 = '127.0.0.1';
const MiB = 1 << 20;

async function forward(
  targetPort: number,
  options: Partial<TcpForwarderOptions> = {},
  engine: Engine = 'js',
): Promise<{ fw: Forwarder<TcpStats>; port: number }> {
  const listener = await listenTcp(V4, 0);
  track(listener, (l) => l.close());
  const fw = tcpForwarder(engine, listener, { targetHost: V4, targetPort, ...options });
  return { fw, port: fw.address.port };
}

requireNative();

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** dialTo connects to a loopback port, as a TcpDialer would hand back a connected socket. */
function dialTo(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: V4 });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

// JS-only: the read path (shared reads, their counters) is the TypeScript relay's internals.
describe.runIf(jsTested)('read path', () => {
  // First in this file: the line is logged once per process, by the first forwarder.
  it('the first forwarder logs which read path TCP uses', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    await forward(target.port, { logger });
    await forward(target.port, { logger });
    const said = lines.filter((l) => l.msg === 'TCP read path');
    expect(said).toEqual([expect.objectContaining({ level: 30, readPath: 'shared' })]);
  });

  it("readPath 'data' (PORTPUB_SHARED_READS=0) relays byte-exact without the shared buffer", async () => {
    const before = { ...readBufferCounts };
    const target = await echoServer();
    const { fw, port } = await forward(target.port, { readPath: 'data' });
    const client = await connectTcp(port);
    const got = hashIncoming(client, { pauseEvery: 256 * 1024 });
    const sent = await sendPattern(client, 8 * MiB, 21);
    expect(await withDeadline(got, 20_000, 'the echo')).toEqual({ bytes: 8 * MiB, sha256: sent });
    expect(readBufferCounts.acceptedShared).toBe(before.acceptedShared);
    expect(readBufferCounts.captured).toBe(before.captured);
    expect(fw.stats()).toMatchObject({ sharedReadsCaptured: 0, sharedReadsRestored: 0 });
  });
});

describe.each(engines)('connections() (%s engine)', (engine) => {
  it('describes each live pair: addresses, bytes, state', async () => {
    const target = await echoServer();
    const { fw, port } = await forward(target.port, {}, engine);
    const start = Date.now();
    const client = await connectTcp(port);
    expect(await roundTrip(client, 'hello')).toBe('hello');
    const after = Date.now();
    const [c, ...rest] = fw.connections();
    expect(rest).toEqual([]);
    expect(c).toMatchObject({
      protocol: 'tcp',
      client: `${V4}:${client.localPort}`,
      host: `${V4}:${port}`,
      target: `${V4}:${target.port}`,
      bytesClientToTarget: 5,
      bytesTargetToClient: 5,
      state: 'open',
    });
    expect(c!.targetLocal).toMatch(/^127\.0\.0\.1:\d+$/);
    // openedAt is when portpub accepted the client: inside the test's own window. The native
    // engine's clock counts whole milliseconds, so allow 2 ms.
    expect(c!.openedAt).toBeGreaterThanOrEqual(start - 2);
    expect(c!.openedAt).toBeLessThanOrEqual(after + 2);
    expect(c!.lastActivityAt).toBeGreaterThanOrEqual(c!.openedAt);
    // The same connection opened at the same time in every listing (the page keys nodes by it).
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 3));
      expect(fw.connections()[0]!.openedAt).toBe(c!.openedAt);
    }
    const closing = fw.close();
    expect(fw.connections()[0]!.state).toBe('draining');
    client.end();
    await withDeadline(closing, 5_000, 'the pair to drain');
    expect(fw.connections()).toEqual([]);
  });
});

// JS-only: the native engine takes no dialer (src/engine serves such a binding in TypeScript).
describe.runIf(jsTested)('dial', () => {
  it('takes the target socket from the dialer; the client is read only once it is there', async () => {
    const target = await echoServer();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let dials = 0;
    const { fw, port } = await forward(1, {
      dial: async () => {
        dials++;
        await gate;
        return track(await dialTo(target.port));
      },
    });
    const client = await connectTcp(port);
    const done = outcome(client);
    client.write('sent before the target existed');
    await waitFor(() => dials === 1, 'the dialer to be asked');
    expect(fw.stats().bytesClientToTarget).toBe(0);
    open();
    client.end();
    expect(String((await done).received)).toBe('sent before the target existed');
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    expect(fw.stats()).toMatchObject({ connectFailures: 0, connectionsTotal: 1 });
  });

  it('a rejected dial is a failed connect: the client is reset and it is counted', async () => {
    const { logger, lines } = captureLogger();
    const refused = Object.assign(new Error('connect ECONNREFUSED (agent)'), {
      code: 'ECONNREFUSED',
    });
    const { fw, port } = await forward(1, { logger, dial: () => Promise.reject(refused) });
    expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    expect(fw.stats()).toMatchObject({ connectFailures: 1, connectionsTotal: 1 });
    expect(lines.find((l) => l.msg === 'cannot connect to target')).toMatchObject({
      code: 'ECONNREFUSED',
    });
    expect(lines.find((l) => l.msg === 'connection closed')).toMatchObject({
      how: 'connect-failed',
    });
  });

  it('a dial slower than connectTimeoutMs fails the pair; its late socket is closed', async () => {
    const target = await echoServer();
    let late: net.Socket | undefined;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { fw, port } = await forward(1, {
      connectTimeoutMs: 200,
      dial: async () => {
        await gate;
        late = track(await dialTo(target.port));
        return late;
      },
    });
    expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    expect(fw.stats().connectFailures).toBe(1);
    open();
    await waitFor(() => late?.destroyed === true, 'the late target socket to be closed');
  });
});

describe.each(engines)('forwarding into itself (run-time guard, %s engine)', (engine) => {
  it('two forwarders pointing at each other: the loop is cut at once', async () => {
    const a = await listenTcp(V4, 0);
    const b = await listenTcp(V4, 0);
    track(a, (l) => l.close());
    track(b, (l) => l.close());
    const { logger, lines } = captureLogger();
    const portOf = (l: net.Server): number => (l.address() as net.AddressInfo).port;
    // Ports read first: the native engine closes Node's server once it serves the descriptor.
    const [portA, portB] = [portOf(a), portOf(b)];
    const fwA = tcpForwarder(engine, a, { targetHost: V4, targetPort: portB, logger });
    const fwB = tcpForwarder(engine, b, { targetHost: V4, targetPort: portA, logger });
    const baseline = fdCount();

    const result = await connectOutcome(portA);
    expect(result.ended === false && result.error === 'ECONNRESET').toBe(true);
    await waitFor(
      () => fwA.stats().connectionsActive === 0 && fwB.stats().connectionsActive === 0,
      'both forwarders to be idle',
    );
    // One real connection through A; B dropped A's own target connection without relaying it.
    expect(fwA.stats()).toMatchObject({ connectionsTotal: 1, connectionsLooped: 0 });
    expect(fwB.stats()).toMatchObject({ connectionsTotal: 0, connectionsLooped: 1 });
    // The native engine's counters lead its log lines (events reach TypeScript in batches).
    await waitFor(
      () => lines.some((l) => /comes from portpub itself/.test(l.msg)),
      'the loop line',
    );
    expect(lines.filter((l) => /comes from portpub itself/.test(l.msg))).toHaveLength(1);
    // The TypeScript relay's own record of its target sockets (src/tcp/own-sockets.ts).
    if (engine === 'js') await waitFor(() => ownCount() === 0, 'no target socket left on record');
    await waitFor(() => fdCount() <= baseline, `descriptors back to ${baseline}`);
  });

  it("a forwarder whose target is its own listener drops its own target's connection", async () => {
    const { logger, lines } = captureLogger();
    const listener = await listenTcp(V4, 0);
    track(listener, (l) => l.close());
    const port = (listener.address() as net.AddressInfo).port;
    const fw = tcpForwarder(engine, listener, { targetHost: V4, targetPort: port, logger });
    expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
    // The client's pair ends (its target was cut); the looped connection never was a pair.
    await waitFor(() => closeLines(lines).length === 1, 'the close log line');
    expect(fw.stats()).toMatchObject({ connectionsLooped: 1, connectionsTotal: 1 });
    await waitFor(
      () => lines.some((l) => /comes from portpub itself/.test(l.msg)),
      'the loop line',
    );
    expect(lines.filter((l) => /comes from portpub itself/.test(l.msg))).toHaveLength(1);
  });
});

// JS-only: a hostname target is served in TypeScript (the native engine dials IP literals).
describe.runIf(jsTested)('loopsVia (a hostname target resolved into a loop)', () => {
  it('cuts a connection whose target address goes round through other portpubs', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const asked: string[] = [];
    const answer: { loops?: boolean } = {};
    const { fw, port } = await forward(target.port, {
      targetHost: 'localhost',
      logger,
      loopsVia: (address) => {
        asked.push(address);
        return answer.loops;
      },
    });
    // Not known yet: the connection goes through.
    const first = await connectTcp(port);
    expect(await roundTrip(first, 'hello')).toBe('hello');
    // Known to loop: cut as soon as the target answers, counted and said.
    answer.loops = true;
    expect(await connectOutcome(port)).toMatchObject({ ended: false, error: 'ECONNRESET' });
    await waitFor(() => fw.stats().connectionsLooped === 1, 'the loop counted');
    expect(lines.some((l) => /comes from portpub itself/.test(l.msg))).toBe(true);
    // Asked with the address the name reached; the open connection is left alone.
    expect(asked.every((a) => a === '127.0.0.1' || a === '::1')).toBe(true);
    expect(await roundTrip(first, 'still')).toBe('still');
    expect(fw.stats()).toMatchObject({ connectionsTotal: 2, connectionsActive: 1 });
  });

  it('is not asked for an IP-literal target (checked once at start)', async () => {
    const target = await echoServer();
    let asked = 0;
    const { port } = await forward(target.port, {
      loopsVia: () => {
        asked++;
        return true;
      },
    });
    const c = await connectTcp(port);
    expect(await roundTrip(c, 'hi')).toBe('hi');
    expect(asked).toBe(0);
  });
});
