// The native UDP engine's own checks (native/udp.c through src/engine/native-udp.ts), beyond the
// behaviour every engine shares (udp-forwarder, udp-loop, udp-bind, udp-seams and
// udp-neighbour.test.ts run against it too): a flow's addresses as connections() lists them over
// both families, the too-large warning held back until close, the self-loop's warning, an empty
// list after close(), and descriptors after a flood. Skipped where the addon did not build or
// PORTPUB_TEST_ENGINES leaves it out; a run that requires it fails instead (test/helpers/engines.ts).
import { readdirSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createUdpForwarder, udpBindOptions } from '../../src/engine/index.js';
import { NativeUdpForwarder } from '../../src/engine/native-udp.js';
import { bindUdp } from '../../src/udp/bind.js';
import { nativeTested, requireNative, udpForward } from '../helpers/engines.js';
import { captureLogger, settled } from '../helpers/net.js';
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
import type { UdpForwarderOptions } from '../../src/udp/forwarder.js';

const V4 = '127.0.0.1';
const V6 = '::1';
const MAX_UDP_PAYLOAD_V4 = 65_507;
const openFds = (): number => readdirSync('/proc/self/fd').length;

requireNative();

/** forward binds host as publish/ does for the native engine and serves it with it. */
const forward = (host: string, options: UdpForwarderOptions, port = 0) =>
  udpForward('native', host, options, port);

describe.runIf(nativeTested)('native UDP engine', () => {
  it.each([
    ['udp4', V4],
    ['udp6', V6],
  ] as [UdpType, string][])(
    'lists a %s flow with its addresses in Docker form',
    async (type, host) => {
      const echo = await echoServer(type, host);
      const { fw, port } = await forward(host, { targetHost: host, targetPort: echo.port });
      const client = await udpSocket(type, host);
      const { msg, rinfo } = await request(client, 'hello', port, host);
      expect(msg.toString()).toBe('hello');
      expect(rinfo).toMatchObject({ address: host, port });
      // The engine thread counts a reply once its send returns, which may be after the client has
      // it (README, "Engines"): wait for the count rather than read it at once.
      await waitFor(() => fw.connections()[0]?.bytesTargetToClient === 5, 'the reply counted');
      const [flow, ...rest] = fw.connections();
      expect(rest).toEqual([]);
      expect(flow).toMatchObject({
        protocol: 'udp',
        client: type === 'udp6' ? `[${V6}]:${portOf(client)}` : `${V4}:${portOf(client)}`,
        host: type === 'udp6' ? `[${V6}]:${port}` : `${V4}:${port}`,
        bytesClientToTarget: 5,
        bytesTargetToClient: 5,
        state: 'open',
      });
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
    // The engine's counters lead its log lines (events reach TypeScript in batches).
    await waitFor(() => lines.some((l) => l.reason === 'too-large'), 'the warning');
    expect(lines.filter((l) => l.reason === 'too-large')).toEqual([
      expect.objectContaining({ level: 40, client: `[${V6}]:${portOf(client)}` }),
    ]);
    // The two held back get their line when the forwarder closes.
    await fw.close();
    expect(lines.filter((l) => l.reason === 'too-large')[1]).toMatchObject({ suppressed: 2 });
  });

  it('drops a datagram from its own flow socket (forwarding into itself) as a loop', async () => {
    // A target that is the binding itself: the flow's datagram comes back from the flow socket.
    const { logger, lines } = captureLogger();
    const listener = await bindUdp(V4, 0, udpBindOptions({ targetHost: V4 }, 'native'));
    onTestFinished(() => listener.close());
    const options = { targetHost: V4, targetPort: listener.port, logger };
    const fw = createUdpForwarder(listener, options, 'native');
    onTestFinished(() => fw.destroy());
    expect(fw).toBeInstanceOf(NativeUdpForwarder);
    const client = await udpSocket('udp4', V4);
    client.send('around', listener.port, V4);
    await waitFor(() => fw.stats().drops.loop === 1, 'the loop to be caught');
    expect(fw.stats()).toMatchObject({ flowsTotal: 1, datagramsClientToTarget: 1 });
    await waitFor(() => lines.some((l) => l.reason === 'loop'), 'the loop warning');
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
