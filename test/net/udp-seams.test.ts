// The seams UdpForwarder offers other layers: the live view (connections()) and the target dial
// seam (options.dial), on real loopback sockets. The live view runs against both engines; the
// dialer is the TypeScript forwarder's alone (a binding with a dialer is served in TypeScript).
import dgram from 'node:dgram';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { UdpDialer } from '../../src/forwarder.js';
import { engines, requireNative, udpForward } from '../helpers/engines.js';
import {
  closeQuietly,
  echoServer,
  forward,
  portOf,
  request,
  udpSocket,
  waitFor,
} from '../helpers/udp.js';

const V4 = '127.0.0.1';

/** connectedSocket makes the socket a dialer hands over: connected to host:port. */
async function connectedSocket(port: number, host = V4): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  onTestFinished(() => closeQuietly(s));
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.connect(port, host, () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s;
}

/** deferred is a promise the test settles. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

requireNative();

describe.each(engines)('UDP connections() (%s engine)', (engine) => {
  it('lists one entry per live flow with its addresses, times and bytes', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const before = Date.now();
    const { fw, port } = await udpForward(engine, V4, { targetHost: V4, targetPort: echo.port });
    expect(fw.protocol).toBe('udp');
    expect(fw.connections()).toEqual([]);
    const a = await udpSocket('udp4', V4);
    const b = await udpSocket('udp4', V4);
    const sourceA = (await request(a, 'aaa', port, V4)).msg.toString();
    await request(b, 'b', port, V4);
    await request(b, 'bb', port, V4);
    if (engine === 'native') {
      // Its per-flow counters are written by its thread just after the send (README, "Engines").
      const clientA = `${V4}:${portOf(a)}`;
      await waitFor(
        () =>
          fw.connections().find((c) => c.client === clientA)?.bytesTargetToClient ===
          sourceA.length,
        'the reply to be counted',
      );
    }
    const list = fw.connections();
    expect(list).toHaveLength(2);
    const byClient = new Map(list.map((c) => [c.client, c]));
    const ca = byClient.get(`${V4}:${portOf(a)}`)!;
    expect(ca).toMatchObject({
      protocol: 'udp',
      host: `${V4}:${port}`,
      targetLocal: `${V4}:${sourceA}`,
      target: `${V4}:${echo.port}`,
      bytesClientToTarget: 3,
      bytesTargetToClient: sourceA.length,
      state: 'open',
    });
    // The native engine's clock counts whole milliseconds: its times may lie 1 ms outside.
    const ms = engine === 'native' ? 1 : 0;
    expect(ca.openedAt).toBeGreaterThanOrEqual(before - ms);
    expect(ca.lastActivityAt).toBeGreaterThanOrEqual(ca.openedAt);
    expect(ca.lastActivityAt).toBeLessThanOrEqual(Date.now() + ms);
    // The same flow opened at the same time in every listing (the page keys flows by it).
    await new Promise((r) => setTimeout(r, 3));
    expect(fw.connections().find((c) => c.client === ca.client)!.openedAt).toBe(ca.openedAt);
    expect(byClient.get(`${V4}:${portOf(b)}`)).toMatchObject({ bytesClientToTarget: 3 });
  });
});

// JS-only: the native engine takes no dialer (src/engine serves such a binding in TypeScript).
describe('UdpForwarderOptions.dial', () => {
  it('takes each flow target socket from the dialer, queueing what arrives before it', async () => {
    const echo = await echoServer('udp4', V4, 'port');
    const pending = deferred<dgram.Socket>();
    let dials = 0;
    const dial: UdpDialer = () => {
      dials++;
      return pending.promise;
    };
    // targetPort 9 (discard) is only a name: with a dialer the forwarder never dials it.
    const { fw, port } = await forward(V4, { targetHost: V4, targetPort: 9, dial });
    const client = await udpSocket('udp4', V4);
    const replies: string[] = [];
    client.on('message', (m) => replies.push(m.toString()));
    // 70 datagrams while the dial is pending: 64 wait (the queue's bound), 6 are dropped.
    for (let i = 0; i < 70; i++) client.send(`q${i}`, port, V4);
    await waitFor(() => fw.stats().drops['queue-full'] === 6, 'the queue to overflow by 6');
    expect(fw.connections()).toMatchObject([{ state: 'connecting', targetLocal: '', target: '' }]);
    const socket = await connectedSocket(echo.port);
    pending.resolve(socket);
    await waitFor(() => replies.length === 64, '64 replies', 10_000);
    // Every datagram reached the target from the dialer's socket.
    expect(new Set(echo.sources)).toEqual(new Set([portOf(socket)]));
    expect(echo.sources).toHaveLength(64);
    // A flow's later datagrams use the same socket; one dial per flow.
    expect((await request(client, 'later', port, V4)).msg.toString()).toBe(String(portOf(socket)));
    expect(dials).toBe(1);
    expect(fw.connections()).toMatchObject([
      { state: 'open', targetLocal: `${V4}:${portOf(socket)}`, target: `${V4}:${echo.port}` },
    ]);
    expect(fw.stats()).toMatchObject({ flowsTotal: 1, datagramsClientToTarget: 65 });
  });

  it('counts a dial that fails as flow-setup drops and ends the flow', async () => {
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: 9,
      dial: () => Promise.reject(new Error('agent gone')),
    });
    const client = await udpSocket('udp4', V4);
    client.send('x', port, V4);
    await waitFor(() => fw.stats().drops['flow-setup'] === 1, 'the drop');
    expect(fw.stats()).toMatchObject({ flowsActive: 0, flowsTotal: 1 });
  });

  it('fails a flow whose dialer hands back a socket that is not connected', async () => {
    const loose = dgram.createSocket('udp4');
    onTestFinished(() => closeQuietly(loose));
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: 9,
      dial: () => Promise.resolve(loose),
    });
    const client = await udpSocket('udp4', V4);
    client.send('x', port, V4);
    await waitFor(() => fw.stats().drops['flow-setup'] === 1, 'the drop');
    expect(fw.stats().flowsActive).toBe(0);
  });

  it('closes a socket the dialer delivers after the forwarder was destroyed', async () => {
    const echo = await echoServer('udp4', V4);
    const pending = deferred<dgram.Socket>();
    const { fw, port } = await forward(V4, {
      targetHost: V4,
      targetPort: 9,
      dial: () => pending.promise,
    });
    const client = await udpSocket('udp4', V4);
    client.send('x', port, V4);
    await waitFor(() => fw.stats().flowsTotal === 1, 'the flow to open');
    fw.destroy();
    const socket = await connectedSocket(echo.port);
    const closed = new Promise<void>((resolve) => socket.once('close', resolve));
    pending.resolve(socket);
    await closed;
    expect(echo.sources).toEqual([]);
  });

  it('rejects a dial option that is not a function', async () => {
    await expect(
      forward(V4, { targetHost: V4, targetPort: 9, dial: 'x' as unknown as UdpDialer }),
    ).rejects.toMatchObject({ code: 'ERR_USAGE', message: /^dial: expected a function/ });
  });
});
