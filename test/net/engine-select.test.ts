// The per-binding engine choice of src/engine: which forwarder createTcpForwarder and
// createUdpForwarder return for each kind of binding, and how publish/ binds UDP for it.
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTcpForwarder, createUdpForwarder, udpBindOptions } from '../../src/engine/index.js';
import { loadNative } from '../../src/engine/load.js';
import { NativeTcpForwarder } from '../../src/engine/native-tcp.js';
import { NativeUdpForwarder } from '../../src/engine/native-udp.js';
import { TcpForwarder } from '../../src/tcp/forwarder.js';
import { listenTcp } from '../../src/tcp/listener.js';
import { bindUdp } from '../../src/udp/bind.js';
import { UdpForwarder } from '../../src/udp/forwarder.js';
import { captureLogger, track } from '../helpers/net.js';

const V4 = '127.0.0.1';
const loaded = loadNative();

async function tcpListener(): Promise<net.Server> {
  const server = await listenTcp(V4, 0);
  track(server, (s) => s.close());
  return server;
}

describe.skipIf(loaded.binding === undefined)('engine choice per binding', () => {
  it('TCP: native for an IP-literal target; TypeScript for js, a hostname or a dialer', async () => {
    const { logger, lines } = captureLogger();
    const base = { targetHost: V4, targetPort: 9, logger };
    const native = track(createTcpForwarder(await tcpListener(), base, 'auto'));
    expect(native).toBeInstanceOf(NativeTcpForwarder);
    expect(track(createTcpForwarder(await tcpListener(), base, 'js'))).toBeInstanceOf(TcpForwarder);
    const byName = { ...base, targetHost: 'localhost' };
    expect(track(createTcpForwarder(await tcpListener(), byName, 'native'))).toBeInstanceOf(
      TcpForwarder,
    );
    const dial = (): Promise<net.Socket> => Promise.reject(new Error('unused'));
    expect(track(createTcpForwarder(await tcpListener(), { ...base, dial }))).toBeInstanceOf(
      TcpForwarder,
    );
    const why = lines.filter((l) => l.msg === 'binding served by the TypeScript engine');
    expect(why.map((l) => l.why)).toEqual([
      'the target is a hostname (the native engine dials IP addresses)',
      'the target is reached through a dialer',
    ]);
  });

  it('UDP: one wildcard socket for either engine; the native one for a literal or a name', async () => {
    // One socket whatever serves it: a socket per address would let another user into the port.
    for (const choice of ['auto', 'js', 'native'] as const) {
      expect(udpBindOptions({ targetHost: V4 }, choice)).toEqual({ single: true });
      expect(udpBindOptions({ targetHost: 'localhost' }, choice)).toEqual({ single: true });
    }
    const single = await bindUdp('0.0.0.0', 0, udpBindOptions({ targetHost: V4 }));
    onTestFinished(() => single.close());
    expect(single.sockets).toHaveLength(1);
    const fw = createUdpForwarder(single, { targetHost: V4, targetPort: 9 });
    onTestFinished(() => fw.destroy());
    expect(fw).toBeInstanceOf(NativeUdpForwarder);
    // A hostname target: the native engine looks it up itself (NativeUdpForwarder).
    const named = await bindUdp(V4, 0, { single: true });
    onTestFinished(() => named.close());
    const byName = createUdpForwarder(named, { targetHost: 'localhost', targetPort: 9 });
    onTestFinished(() => byName.destroy());
    expect(byName).toBeInstanceOf(NativeUdpForwarder);
    const other = await bindUdp(V4, 0, { single: true });
    onTestFinished(() => other.close());
    const js = createUdpForwarder(other, { targetHost: 'localhost', targetPort: 9 }, 'js');
    onTestFinished(() => js.destroy());
    expect(js).toBeInstanceOf(UdpForwarder);
  });
});
