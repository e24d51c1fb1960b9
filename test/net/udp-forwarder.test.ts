// UdpForwarder on real loopback sockets: option checking, round trips over both families, one
// target-side source port per client, expiry, eviction, ICMP refusals, drops and their warnings;
// each against both engines (test/helpers/engines.ts), bound as publish/ binds for it.
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { bindUdp, type UdpListener } from '../../src/udp/bind.js';
import { createUdpForwarder } from '../../src/engine/index.js';
import type { UdpForwarderOptions } from '../../src/udp/forwarder.js';
import { engines, requireNative, statsMatch, udpForward, type Engine } from '../helpers/engines.js';
import {
  closeQuietly,
  echoServer,
  nextMessage,
  portOf,
  request,
  udpSocket,
  waitFor,
  type UdpType,
} from '../helpers/udp.js';
import { withDeadline } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';

const V4 = '127.0.0.1';
const V6 = '::1';
/** The largest UDP payloads: over IPv4 65535 - 20 IP - 8 UDP; over IPv6 (no jumbograms) 65535 - 8. */
const MAX_UDP_PAYLOAD_V4 = 65_507;
const MAX_UDP_PAYLOAD_V6 = 65_527;

async function bindKept(host: string, port = 0): Promise<UdpListener> {
  const l = await bindUdp(host, port);
  onTestFinished(() => l.close());
  return l;
}

/** captureLogger records pino's JSON lines so a test can count warnings. */
function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { logger: pino({ level: 'debug', base: undefined }, sink), lines };
}

requireNative();

/** forwardWith is udpForward bound to one engine, for the body of a `describe.each(engines)`. */
const forwardWith =
  (engine: Engine) =>
  (host: string, options: UdpForwarderOptions, port = 0): ReturnType<typeof udpForward> =>
    udpForward(engine, host, options, port);

describe.each(engines)('forwarder options (%s engine)', (engine) => {
  const base: UdpForwarderOptions = { targetHost: V4, targetPort: 9 };
  const bad: { options: Partial<UdpForwarderOptions>; error: RegExp }[] = [
    { options: { targetHost: '' }, error: /^targetHost: expected a hostname or IP address/ },
    { options: { targetPort: 0 }, error: /^targetPort: expected an integer 1-65535, got 0$/ },
    { options: { targetPort: 65536 }, error: /^targetPort: .*got 65536$/ },
    { options: { flowTimeoutMs: 0 }, error: /^flowTimeoutMs: expected milliseconds > 0, got 0$/ },
    { options: { flowTimeoutMs: NaN }, error: /^flowTimeoutMs: .*got NaN$/ },
    { options: { maxFlows: 0 }, error: /^maxFlows: expected an integer >= 1, got 0$/ },
    { options: { maxFlows: 2.5 }, error: /^maxFlows: .*got 2.5$/ },
    { options: { addressWatchIntervalMs: -1 }, error: /^addressWatchIntervalMs: .*got -1$/ },
    { options: { now: 1 as unknown as () => number }, error: /^now: expected a function/ },
    {
      options: { logger: 'x' as unknown as pino.Logger },
      error: /^logger: expected a pino Logger$/,
    },
  ];
  it.each(bad)('rejects $options', async ({ options, error }) => {
    const l = await bindKept(V4);
    const make = () => createUdpForwarder(l, { ...base, ...options }, engine);
    expect(make).toThrow(error);
    expect(make).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });

  it('takes undefined options as their defaults', async () => {
    const l = await bindKept(V4);
    const fw = createUdpForwarder(
      l,
      { ...base, flowTimeoutMs: undefined, maxFlows: undefined },
      engine,
    );
    onTestFinished(() => fw.destroy());
    expect(fw.address).toEqual({ address: V4, family: 'IPv4', port: l.port });
  });
});

describe.each(engines)('UDP forwarder (%s engine)', (engine) => {
  const forward = forwardWith(engine);

  it.each([
    ['udp4', V4],
    ['udp6', V6],
  ] as [UdpType, string][])('echoes a round trip over %s', async (type, host) => {
    const echo = await echoServer(type, host);
    const { fw, port } = await forward(host, { targetHost: host, targetPort: echo.port });
    const client = await udpSocket(type, host);
    const { msg, rinfo } = await request(client, 'hello', port, host);
    expect(msg.toString()).toBe('hello');
    expect(rinfo).toMatchObject({ address: host, port });
    await statsMatch(engine, fw, {
      flowsActive: 1,
      flowsTotal: 1,
      datagramsClientToTarget: 1,
      datagramsTargetToClient: 1,
      bytesClientToTarget: 5,
      bytesTargetToClient: 5,
      evictions: 0,
    });
    const s = fw.stats();
    expect(Object.values(s.drops).every((n) => n === 0)).toBe(true);
    // An empty datagram is a datagram too.
    expect((await request(client, Buffer.alloc(0), port, host)).msg.length).toBe(0);
  });

  it('serves 500 clients at once, each reply reaching exactly its sender', async () => {
    const echo = await echoServer('udp4', V4);
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort: echo.port });
    const clients = await Promise.all(Array.from({ length: 500 }, () => udpSocket('udp4', V4)));
    const received = clients.map(() => [] as string[]);
    clients.forEach((c, i) => c.on('message', (m) => received[i]!.push(m.toString())));
    await Promise.all(
      clients.map(async (c, i) => {
        // Resend on loss (kernel buffers are finite); bounded tries, each with a deadline.
        const { msg } = await request(c, `client-${i}`, port, V4, { timeoutMs: 1_500, tries: 5 });
        expect(msg.toString()).toBe(`client-${i}`);
      }),
    );
    received.forEach((got, i) => {
      expect(got.length).toBeGreaterThan(0);
      expect(new Set(got)).toEqual(new Set([`client-${i}`]));
    });
    expect(fw.stats()).toMatchObject({ flowsActive: 500, flowsTotal: 500, evictions: 0 });
    expect(new Set(echo.sources).size).toBe(500);
  });

  it('keeps one target-side source port per client, and a new one after expiry', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: echo.port,
      flowTimeoutMs: 100,
    });
    const client = await udpSocket('udp4', V4);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      seen.add((await request(client, `n${i}`, port, V4)).msg.toString());
    }
    expect(seen.size).toBe(1);
    const [first] = seen;
    await waitFor(() => fw.stats().flowsActive === 0, 'the flow to expire', 3_000);
    const again = (await request(client, 'after', port, V4)).msg.toString();
    expect(again).not.toBe(first);
    expect(fw.stats()).toMatchObject({ flowsTotal: 2, flowsActive: 1 });
  });

  it('keeps a flow alive while the client sends, even if the target never answers', async () => {
    const silent = await udpSocket('udp4', V4);
    const sources: number[] = [];
    silent.on('message', (_m, r) => sources.push(r.port));
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: portOf(silent),
      flowTimeoutMs: 150,
    });
    const client = await udpSocket('udp4', V4);
    const started = Date.now();
    // One-way traffic for 3+ timeouts (docker-proxy before 28.0.2 cut such flows: moby#49649).
    for (let i = 0; Date.now() - started < 500 && i < 100; i++) {
      const n = sources.length;
      client.send(`one-way-${i}`, port, V4);
      await waitFor(() => sources.length > n, 'the target to receive it', 2_000);
      await waitFor(() => Date.now() - started >= (i + 1) * 50, 'the next send time', 1_000);
    }
    expect(new Set(sources).size).toBe(1);
    expect(fw.stats().flowsTotal).toBe(1);
  });

  it.each([
    ['udp4', V4, MAX_UDP_PAYLOAD_V4],
    ['udp6', V6, MAX_UDP_PAYLOAD_V6],
  ] as [UdpType, string, number][])(
    'relays the largest %s datagram whole, both ways (%s, %i bytes)',
    async (type, host, size) => {
      const echo = await echoServer(type, host);
      const { fw, port } = await forward(host, { targetHost: host, targetPort: echo.port });
      const client = await udpSocket(type, host);
      const payload = Buffer.alloc(size);
      for (let i = 0; i < size; i++) payload[i] = (i * 7 + 3) & 0xff;
      const { msg } = await request(client, payload, port, host, { tries: 3 });
      expect(msg.length).toBe(size);
      expect(msg.equals(payload)).toBe(true);
      await statsMatch(engine, fw, { bytesClientToTarget: size, bytesTargetToClient: size });
    },
  );

  it('drops and counts a datagram too large for the target family (IPv6 client, IPv4 target)', async () => {
    const echo = await echoServer('udp4', V4);
    const { fw, port } = await forward(V6, { targetHost: V4, targetPort: echo.port });
    const client = await udpSocket('udp6', V6);
    client.send(Buffer.alloc(MAX_UDP_PAYLOAD_V4 + 1), port, V6);
    await waitFor(() => fw.stats().drops['too-large'] === 1, 'the drop to be counted');
    // The flow itself is fine: a datagram that fits still goes through.
    expect((await request(client, 'small', port, V6)).msg.toString()).toBe('small');
    expect(fw.stats().flowsTotal).toBe(1);
  });

  it('survives ICMP port unreachable: traffic flows once the target comes up', async () => {
    // A port of this worker's own block: nothing listens there, and no port-0 bind can take it.
    const targetPort = await reservePorts(1, V4);
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort });
    const client = await udpSocket('udp4', V4);
    // A burst while nothing listens: the first send's ICMP error is pending when the next send
    // runs, which fails that send (the forwarder resends it) or surfaces on the reader.
    for (let i = 0; i < 5; i++) client.send(`early-${i}`, port, V4);
    await waitFor(() => fw.stats().drops['target-refused'] >= 1, 'ECONNREFUSED to be seen');
    expect(fw.stats()).toMatchObject({ flowsActive: 1, datagramsTargetToClient: 0 });
    const echo = await echoServer('udp4', V4, 'echo', targetPort);
    const { msg } = await request(client, 'late', port, V4, { timeoutMs: 500, tries: 5 });
    expect(msg.toString()).toBe('late');
    expect(echo.sources.length).toBeGreaterThan(0);
    expect(fw.stats()).toMatchObject({ flowsTotal: 1, flowsActive: 1 });
  });

  it('counts every datagram and byte both ways over a long flow', async () => {
    const echo = await echoServer('udp4', V4);
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort: echo.port });
    const client = await udpSocket('udp4', V4);
    for (let i = 0; i < 300; i++) {
      const { msg } = await request(client, `n${i}`, port, V4, { tries: 3 });
      expect(msg.toString()).toBe(`n${i}`);
    }
    // The last reply's count (the native engine counts after the send: statsMatch).
    await statsMatch(engine, fw, { datagramsTargetToClient: echo.sources.length });
    const s = fw.stats();
    expect(s.datagramsClientToTarget).toBeGreaterThanOrEqual(300);
    expect(s.datagramsClientToTarget).toBe(echo.sources.length);
    expect(s.datagramsTargetToClient).toBe(s.datagramsClientToTarget);
    expect(s.bytesTargetToClient).toBe(s.bytesClientToTarget);
    expect(Object.values(s.drops).every((n) => n === 0)).toBe(true);
  });

  it('keeps a flow through a target restart in mid-flow', async () => {
    const targetPort = await reservePorts(1, V4);
    const first = await echoServer('udp4', V4, 'echo', targetPort);
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort });
    const client = await udpSocket('udp4', V4);
    for (let i = 0; i < 200; i++) await request(client, `up-${i}`, port, V4, { tries: 3 });
    closeQuietly(first.socket);
    // A burst at the closed port: each send leaves an ICMP error that the next one may meet.
    for (let i = 0; i < 20; i++) client.send(`down-${i}`, port, V4);
    await waitFor(() => fw.stats().drops['target-refused'] >= 1, 'ECONNREFUSED to be seen');
    const again = await echoServer('udp4', V4, 'echo', targetPort);
    const { msg } = await request(client, 'back', port, V4, { timeoutMs: 500, tries: 5 });
    expect(msg.toString()).toBe('back');
    expect(again.sources.length).toBeGreaterThan(0);
    expect(fw.stats()).toMatchObject({ flowsTotal: 1, flowsActive: 1 });
  });

  it('tells apart two clients on the same port of different addresses', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort: echo.port });
    const a = await udpSocket('udp4', '127.0.0.1');
    const b = await udpSocket('udp4', '127.0.0.2', portOf(a));
    const seen = { a: new Set<string>(), b: new Set<string>() };
    for (let i = 0; i < 10; i++) {
      seen.a.add((await request(a, `a${i}`, port, V4)).msg.toString());
      seen.b.add((await request(b, `b${i}`, port, V4)).msg.toString());
    }
    // One target-side source port per client, and they differ.
    expect(seen.a.size).toBe(1);
    expect(seen.b.size).toBe(1);
    expect([...seen.a][0]).not.toBe([...seen.b][0]);
    expect(fw.stats()).toMatchObject({ flowsTotal: 2, flowsActive: 2 });
  });

  it('evicts the least recently active flow at maxFlows, and counts it', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: echo.port,
      maxFlows: 2,
      logger,
    });
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => udpSocket('udp4', V4)));
    const ask = async (s: dgram.Socket) => (await request(s, 'x', port, V4)).msg.toString();
    const a1 = await ask(a!);
    const b1 = await ask(b!);
    expect(await ask(a!)).toBe(a1); // a is now the most recent, b the least
    const c1 = await ask(c!); // table full: b is evicted
    expect(fw.stats()).toMatchObject({ flowsActive: 2, flowsTotal: 3, evictions: 1 });
    expect(await ask(a!)).toBe(a1);
    expect(await ask(c!)).toBe(c1);
    const b2 = await ask(b!); // b comes back on a new flow, evicting a
    expect(b2).not.toBe(b1);
    expect(fw.stats()).toMatchObject({ flowsActive: 2, flowsTotal: 4, evictions: 2 });
    // One warning per 5 s for a flood of evictions, not one per eviction.
    await waitFor(() => lines.some((l) => l.reason === 'flow-evicted'), 'the eviction warning');
    const warns = lines.filter((l) => l.reason === 'flow-evicted');
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 40, client: `${V4}:${portOf(b!)}` });
  });

  // JS-only: a test clock (options.now) is the TypeScript forwarder's; native takes none.
  it.runIf(engine === 'js')(
    'rate-limits drop warnings to one per reason per 5 s, with the count suppressed',
    async () => {
      const echo = await echoServer('udp4', V4);
      const { logger, lines } = captureLogger();
      const clock = { t: 0 };
      const { fw, port } = await forward(V6, {
        targetHost: V4,
        targetPort: echo.port,
        logger,
        now: () => clock.t,
      });
      const client = await udpSocket('udp6', V6);
      const big = Buffer.alloc(MAX_UDP_PAYLOAD_V4 + 1);
      for (let i = 0; i < 5; i++) client.send(big, port, V6);
      await waitFor(() => fw.stats().drops['too-large'] === 5, '5 drops');
      const tooLarge = () => lines.filter((l) => l.reason === 'too-large');
      expect(tooLarge()).toHaveLength(1);
      clock.t += 5_000;
      client.send(big, port, V6);
      await waitFor(() => fw.stats().drops['too-large'] === 6, 'a 6th drop');
      expect(tooLarge()).toHaveLength(2);
      expect(tooLarge()[1]).toMatchObject({ level: 40, suppressed: 4 });
      // What is still held back when the forwarder closes gets its line then.
      for (let i = 0; i < 3; i++) client.send(big, port, V6);
      await waitFor(() => fw.stats().drops['too-large'] === 9, '3 more drops');
      expect(tooLarge()).toHaveLength(2);
      await fw.close();
      expect(tooLarge()).toHaveLength(3);
      expect(tooLarge()[2]).toMatchObject({ level: 40, suppressed: 3 });
    },
  );

  // JS-only: a test clock (options.now) is the TypeScript forwarder's; native takes none.
  it.runIf(engine === 'js')(
    'never lists a flow as idle for longer than it has lived, whatever its clock reads',
    async () => {
      const echo = await echoServer('udp4', V4);
      const clock = { t: 0 };
      const { fw, port } = await forward(V4, {
        targetHost: V4,
        targetPort: echo.port,
        flowTimeoutMs: 3_600_000,
        now: () => clock.t,
      });
      const client = await udpSocket('udp4', V4);
      await request(client, 'x', port, V4);
      // The forwarder's clock (idle time) and Date.now() (openedAt) part by a minute.
      clock.t += 60_000;
      const [flow] = fw.connections();
      expect(flow!.lastActivityAt).toBeGreaterThanOrEqual(flow!.openedAt);
    },
  );

  it('logs flow open and expiry at debug with the client and the target source port', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: echo.port,
      flowTimeoutMs: 50,
      logger,
    });
    const client = await udpSocket('udp4', V4);
    const sourcePort = Number((await request(client, 'x', port, V4)).msg.toString());
    await waitFor(() => fw.stats().flowsActive === 0, 'expiry', 3_000);
    const client1 = `${V4}:${portOf(client)}`;
    expect(lines.find((l) => l.msg === 'udp flow opened')).toMatchObject({
      level: 20,
      client: client1,
      local: V4,
      targetSourcePort: sourcePort,
    });
    // The native engine's counters lead its log lines (events reach TypeScript in batches).
    await waitFor(() => lines.some((l) => l.msg === 'udp flow expired'), 'the expiry line');
    expect(lines.find((l) => l.msg === 'udp flow expired')).toMatchObject({
      level: 20,
      client: client1,
      targetSourcePort: sourcePort,
      toTarget: 1,
      toClient: 1,
    });
  });

  it.each([
    ['IPv6 client to an IPv4 target', 'udp6', V6, 'udp4', V4],
    ['IPv4 client to an IPv6 target', 'udp4', V4, 'udp6', V6],
  ] as [string, UdpType, string, UdpType, string][])(
    'relays an %s and back',
    async (_name, clientType, listenHost, targetType, targetHost) => {
      const echo = await echoServer(targetType, targetHost, 'port');
      const { port } = await forward(listenHost, { targetHost, targetPort: echo.port });
      const client = await udpSocket(clientType, listenHost);
      const first = await request(client, 'a', port, listenHost);
      expect(first.rinfo).toMatchObject({ address: listenHost, port });
      expect((await request(client, 'b', port, listenHost)).msg.toString()).toBe(
        first.msg.toString(),
      );
      expect(echo.sources).toHaveLength(2);
    },
  );

  // Both engines: the native one looks the name up once and relays to the address (issue 11).
  it('relays through a wildcard listener and resolves a hostname target', async () => {
    const { address, family } = await lookup('localhost');
    const echo = await echoServer(family === 6 ? 'udp6' : 'udp4', address);
    const { fw, port } = await forward('0.0.0.0', {
      targetHost: 'localhost',
      targetPort: echo.port,
    });
    const client = await udpSocket('udp4', V4);
    const { msg, rinfo } = await request(client, 'by-name', port, V4);
    expect(msg.toString()).toBe('by-name');
    expect(rinfo.address).toBe(V4);
    expect(fw.address).toEqual({ address: '0.0.0.0', family: 'IPv4', port });
  });

  // Native-only: until the name resolves the engine has not started, and libuv does not read
  // the socket, so the datagrams wait in the kernel (no per-datagram drops to count); the failed
  // lookup is warned and retried, and close() does not wait for it.
  it.runIf(engine === 'native')(
    'warns about a target name that does not resolve, and closes at once meanwhile',
    async () => {
      const { logger, lines } = captureLogger();
      const { fw, port } = await forward(V4, {
        targetHost: 'does-not-exist.invalid',
        targetPort: 9,
        logger,
      });
      await waitFor(
        () =>
          lines.some(
            (l) => l.msg === 'udp target lookup failed: datagrams wait (or drop) until it resolves',
          ),
        'the warning',
        10_000,
      );
      expect(fw.connections()).toEqual([]);
      await withDeadline(fw.close(), 2_000, 'close() while the name does not resolve');
      await udpSocket('udp4', V4, port); // the port is free again
    },
  );

  // JS-only: the TypeScript engine resolves at the first flow and counts what it cannot relay.
  it.runIf(engine === 'js')(
    'counts a target name that does not resolve as flow-setup drops',
    async () => {
      const { logger, lines } = captureLogger();
      const { fw, port } = await forward(V4, {
        targetHost: 'does-not-exist.invalid',
        targetPort: 9,
        logger,
      });
      const client = await udpSocket('udp4', V4);
      client.send('x', port, V4);
      await waitFor(() => fw.stats().drops['flow-setup'] === 1, 'the drop', 10_000);
      expect(fw.stats().flowsActive).toBe(0);
      client.send('y', port, V4); // fails fast for a while instead of looking up again
      await waitFor(() => fw.stats().drops['flow-setup'] === 2, 'the second drop');
      expect(lines.filter((l) => l.reason === 'flow-setup')).toHaveLength(1);
    },
  );

  it('close() closes the listener and every flow socket, and is idempotent', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const { fw, port } = await forward('0.0.0.0', { targetHost: V4, targetPort: echo.port });
    const client = await udpSocket('udp4', V4);
    const sourcePort = Number((await request(client, 'x', port, V4)).msg.toString());
    await fw.close();
    await fw.close();
    fw.destroy();
    expect(fw.stats().flowsActive).toBe(0);
    // Both the host port and the flow's source port are free again.
    await udpSocket('udp4', '0.0.0.0', port);
    await udpSocket('udp4', V4, sourcePort);
    // And nothing answers any more.
    client.send('late', port, V4);
    await expect(nextMessage(client, 200)).rejects.toThrow(/no datagram/);
  });

  it('destroy() stops everything immediately', async () => {
    const echo = await echoServer('udp4', V4);
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort: echo.port });
    const client = await udpSocket('udp4', V4);
    await request(client, 'x', port, V4);
    fw.destroy();
    fw.destroy();
    await expect(fw.close()).resolves.toBeUndefined();
    await waitFor(() => {
      try {
        const s = dgram.createSocket('udp4');
        s.on('error', () => undefined);
        s.bind(port, V4, () => s.close());
        return true;
      } catch {
        return false;
      }
    }, 'the port to be bindable');
  });
});
