// The UDP forwarder's behaviour, run against the native engine (native/udp.c through
// src/engine/native-udp.ts): the cases of udp-forwarder.test.ts that do not need a test clock or
// a hostname, plus replies from the address each client sent to on ONE wildcard socket
// (IP_PKTINFO), descriptors, and a bounded flood. Skipped where the addon did not build, unless
// PORTPUB_REQUIRE_NATIVE=1.
import dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { settled } from '../helpers/net.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadNative } from '../../src/engine/load.js';
import { NativeUdpForwarder } from '../../src/engine/native-udp.js';
import { bindUdp } from '../../src/udp/bind.js';
import type { UdpForwarderOptions } from '../../src/udp/forwarder.js';
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

const V4 = '127.0.0.1';
const V6 = '::1';
const MAX_UDP_PAYLOAD_V4 = 65_507;
const MAX_UDP_PAYLOAD_V6 = 65_527;
const loaded = loadNative();
const openFds = (): number => readdirSync('/proc/self/fd').length;

/** forward binds host with ONE socket and serves it natively; destroyed at the test's end. */
async function forward(
  host: string,
  options: UdpForwarderOptions,
  port = 0,
): Promise<{ fw: NativeUdpForwarder; port: number }> {
  const listener = await bindUdp(host, port, { single: true });
  onTestFinished(() => listener.close());
  const fw = new NativeUdpForwarder(listener, options, loaded.binding!);
  onTestFinished(() => fw.destroy());
  return { fw, port: listener.port };
}

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

/** events waits for the engine's next batch of events to reach JavaScript. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe.skipIf(loaded.binding === undefined)('native UDP engine', () => {
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
    const s = fw.stats();
    expect(s).toMatchObject({
      flowsActive: 1,
      flowsTotal: 1,
      datagramsClientToTarget: 1,
      datagramsTargetToClient: 1,
      bytesClientToTarget: 5,
      bytesTargetToClient: 5,
      evictions: 0,
    });
    expect(Object.values(s.drops).every((n) => n === 0)).toBe(true);
    expect((await request(client, Buffer.alloc(0), port, host)).msg.length).toBe(0);
    const [flow] = fw.connections();
    expect(flow).toMatchObject({
      protocol: 'udp',
      client: type === 'udp6' ? `[${V6}]:${portOf(client)}` : `${V4}:${portOf(client)}`,
      host: type === 'udp6' ? `[${V6}]:${port}` : `${V4}:${port}`,
      bytesClientToTarget: 5,
      bytesTargetToClient: 5,
      state: 'open',
    });
  });

  it('answers from the address each client sent to, on one wildcard socket', async () => {
    const echo = await echoServer('udp4', V4);
    const { port } = await forward('0.0.0.0', { targetHost: V4, targetPort: echo.port });
    // 127.0.0.5 is local (127/8 on lo) without being an interface address: IP_PKTINFO answers
    // it from 127.0.0.5 too, which a socket per interface address could not.
    for (const dst of ['127.0.0.1', '127.0.0.2', '127.0.0.5']) {
      const client = await udpSocket('udp4', V4);
      const { msg, rinfo } = await request(client, `to ${dst}`, port, dst, { tries: 3 });
      expect(msg.toString()).toBe(`to ${dst}`);
      expect(rinfo).toMatchObject({ address: dst, port });
    }
  });

  it('serves 500 clients at once, each reply reaching exactly its sender', async () => {
    const echo = await echoServer('udp4', V4);
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort: echo.port });
    const clients = await Promise.all(Array.from({ length: 500 }, () => udpSocket('udp4', V4)));
    const received = clients.map(() => [] as string[]);
    clients.forEach((c, i) => c.on('message', (m) => received[i]!.push(m.toString())));
    await Promise.all(
      clients.map(async (c, i) => {
        const { msg } = await request(c, `client-${i}`, port, V4, { timeoutMs: 1_500, tries: 5 });
        expect(msg.toString()).toBe(`client-${i}`);
      }),
    );
    received.forEach((got, i) => expect(new Set(got)).toEqual(new Set([`client-${i}`])));
    expect(fw.stats()).toMatchObject({ flowsActive: 500, flowsTotal: 500, evictions: 0 });
    expect(new Set(echo.sources).size).toBe(500);
  });

  it('keeps one target-side source port per client, and a new one after expiry', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: echo.port,
      flowTimeoutMs: 500, // a loaded machine's round trip must not outlast it
    });
    const client = await udpSocket('udp4', V4);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++)
      seen.add((await request(client, `n${i}`, port, V4)).msg.toString());
    expect(seen.size).toBe(1);
    const [first] = seen;
    await waitFor(() => fw.stats().flowsActive === 0, 'the flow to expire', 5_000);
    expect((await request(client, 'after', port, V4)).msg.toString()).not.toBe(first);
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
      expect(msg.equals(payload)).toBe(true);
      // The engine thread counts a reply once sendmmsg returns, which may be after the client
      // has it: wait for the count rather than read it at once.
      await waitFor(() => fw.stats().bytesTargetToClient >= size, 'the reply to be counted');
      expect(fw.stats()).toMatchObject({ bytesClientToTarget: size, bytesTargetToClient: size });
    },
  );

  it('drops and counts a datagram too large for the target family, warning once', async () => {
    const echo = await echoServer('udp4', V4);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(V6, { targetHost: V4, targetPort: echo.port, logger });
    const client = await udpSocket('udp6', V6);
    for (let i = 0; i < 3; i++) client.send(Buffer.alloc(MAX_UDP_PAYLOAD_V4 + 1), port, V6);
    await waitFor(() => fw.stats().drops['too-large'] === 3, 'the drops to be counted');
    expect((await request(client, 'small', port, V6)).msg.toString()).toBe('small');
    expect(fw.stats().flowsTotal).toBe(1);
    await settle();
    expect(lines.filter((l) => l.reason === 'too-large')).toEqual([
      expect.objectContaining({ level: 40, client: `[${V6}]:${portOf(client)}` }),
    ]);
    await fw.close();
    expect(lines.filter((l) => l.reason === 'too-large')[1]).toMatchObject({ suppressed: 2 });
  });

  it('survives ICMP port unreachable: traffic flows once the target comes up', async () => {
    const hold = await udpSocket('udp4', V4);
    const targetPort = portOf(hold);
    closeQuietly(hold);
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort });
    const client = await udpSocket('udp4', V4);
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
      expect((await request(client, `n${i}`, port, V4, { tries: 3 })).msg.toString()).toBe(`n${i}`);
    }
    const s = fw.stats();
    expect(s.datagramsClientToTarget).toBe(echo.sources.length);
    expect(s.datagramsTargetToClient).toBe(s.datagramsClientToTarget);
    expect(s.bytesTargetToClient).toBe(s.bytesClientToTarget);
    expect(Object.values(s.drops).every((n) => n === 0)).toBe(true);
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
    expect(seen.a.size).toBe(1);
    expect(seen.b.size).toBe(1);
    expect([...seen.a][0]).not.toBe([...seen.b][0]);
    expect(fw.stats()).toMatchObject({ flowsTotal: 2, flowsActive: 2 });
  });

  it('evicts the least recently active flow at maxFlows, counts it, warns once', async () => {
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
    expect(await ask(a!)).toBe(a1);
    const c1 = await ask(c!);
    expect(fw.stats()).toMatchObject({ flowsActive: 2, flowsTotal: 3, evictions: 1 });
    expect(await ask(a!)).toBe(a1);
    expect(await ask(c!)).toBe(c1);
    expect(await ask(b!)).not.toBe(b1);
    expect(fw.stats()).toMatchObject({ flowsActive: 2, flowsTotal: 4, evictions: 2 });
    await settle();
    const warns = lines.filter((l) => l.reason === 'flow-evicted');
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 40, client: `${V4}:${portOf(b!)}` });
  });

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
    await settle();
    const client1 = `${V4}:${portOf(client)}`;
    expect(lines.find((l) => l.msg === 'udp flow opened')).toMatchObject({
      level: 20,
      client: client1,
      local: V4,
      targetSourcePort: sourcePort,
    });
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
    },
  );

  it('drops a datagram from its own flow socket (forwarding into itself) as a loop', async () => {
    // A target that is the binding itself: the flow's datagram comes back from the flow socket.
    const { logger, lines } = captureLogger();
    const listener = await bindUdp(V4, 0, { single: true });
    onTestFinished(() => listener.close());
    const fw = new NativeUdpForwarder(
      listener,
      { targetHost: V4, targetPort: listener.port, logger },
      loaded.binding!,
    );
    onTestFinished(() => fw.destroy());
    const client = await udpSocket('udp4', V4);
    client.send('around', listener.port, V4);
    await waitFor(() => fw.stats().drops.loop === 1, 'the loop to be caught');
    expect(fw.stats()).toMatchObject({ flowsTotal: 1, datagramsClientToTarget: 1 });
    await settle();
    expect(lines.filter((l) => l.reason === 'loop')).toHaveLength(1);
  });

  it('close() frees the host port and every flow source port; nothing answers after', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const { fw, port } = await forward('0.0.0.0', { targetHost: V4, targetPort: echo.port });
    const client = await udpSocket('udp4', V4);
    const sourcePort = Number((await request(client, 'x', port, V4)).msg.toString());
    await fw.close();
    await fw.close();
    fw.destroy();
    expect(fw.stats().flowsActive).toBe(0);
    expect(fw.connections()).toEqual([]);
    await udpSocket('udp4', '0.0.0.0', port);
    await udpSocket('udp4', V4, sourcePort);
    client.send('late', port, V4);
    await expect(nextMessage(client, 200)).rejects.toThrow(/no datagram/);
  });

  it(
    'returns to its descriptor baseline after a flood beyond maxFlows',
    { timeout: 30_000 },
    async () => {
      const echo = await echoServer('udp4', V4);
      const warm = await forward(V4, { targetHost: V4, targetPort: echo.port });
      const w = await udpSocket('udp4', V4);
      await request(w, 'warm', warm.port, V4);
      await warm.fw.close();
      closeQuietly(w);
      const baseline = openFds();
      const { fw, port } = await forward(V4, {
        targetHost: V4,
        targetPort: echo.port,
        maxFlows: 50,
      });
      // 400 clients, each three datagrams, bounded in time: flows are evicted, never more than 50.
      const clients = await Promise.all(Array.from({ length: 400 }, () => udpSocket('udp4', V4)));
      for (const c of clients) for (let k = 0; k < 3; k++) c.send(`d${k}`, port, V4);
      await waitFor(() => fw.stats().flowsTotal >= 350, 'most clients to get a flow', 10_000);
      // One snapshot once nothing moves any more: the counters are updated one by one.
      await settled(() => fw.stats().flowsTotal, 'the flood');
      const s = fw.stats();
      expect(s.flowsActive).toBeLessThanOrEqual(50);
      expect(s.evictions).toBe(s.flowsTotal - s.flowsActive);
      for (const c of clients) closeQuietly(c);
      await fw.close();
      await waitFor(() => openFds() <= baseline, `descriptors back to ${baseline}`);
    },
  );
});
