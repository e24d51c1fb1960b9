// portpub must never relay a datagram into itself (issue 13, defect 1): a datagram whose source
// is one of this process's own target-side flow sockets is dropped and counted as 'loop'.
// Without the guard, `-p 127.0.0.1:15353:15353/udp` and one datagram made 54,558 flows in 3.5 s.
// Against both engines (each guards its own flows).
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createUdpForwarder, udpBindOptions } from '../../src/engine/index.js';
import type { Forwarder } from '../../src/forwarder.js';
import { bindUdp } from '../../src/udp/bind.js';
import type { UdpStats } from '../../src/udp/forwarder.js';
import { engines, requireNative, type Engine } from '../helpers/engines.js';
import { udpSocket, waitFor } from '../helpers/udp.js';

const V4 = '127.0.0.1';

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
  return { logger: pino({ level: 'warn', base: undefined }, sink), lines };
}

async function listener(engine: Engine): Promise<Awaited<ReturnType<typeof bindUdp>>> {
  const l = await bindUdp(V4, 0, udpBindOptions({ targetHost: V4 }, engine));
  onTestFinished(() => l.close());
  return l;
}

function forwarder(
  engine: Engine,
  l: Awaited<ReturnType<typeof bindUdp>>,
  targetPort: number,
  logger?: pino.Logger,
): Forwarder<UdpStats> {
  const options = { targetHost: V4, targetPort, ...(logger ? { logger } : {}) };
  const fw = createUdpForwarder(l, options, engine);
  onTestFinished(() => fw.destroy());
  return fw;
}

requireNative();

describe.each(engines)('UDP loop guard (%s engine)', (engine) => {
  it('two forwarders pointing at each other: one datagram, one flow, one loop drop', async () => {
    const la = await listener(engine);
    const lb = await listener(engine);
    const { logger, lines } = captureLogger();
    const a = forwarder(engine, la, lb.port);
    const b = forwarder(engine, lb, la.port, logger);
    const client = await udpSocket('udp4', V4);
    client.send('once', la.port, V4);
    await waitFor(() => b.stats().drops.loop === 1, "b to drop a's datagram as a loop", 5_000);
    expect(a.stats()).toMatchObject({ flowsTotal: 1, datagramsClientToTarget: 1 });
    expect(b.stats()).toMatchObject({ flowsTotal: 0, datagramsClientToTarget: 0 });
    expect(a.stats().drops.loop).toBe(0);
    // The native engine's counters lead its log lines (events reach TypeScript in batches).
    await waitFor(() => lines.some((l) => l.reason === 'loop'), 'the loop warning');
    const warned = lines.filter((l) => l.reason === 'loop');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ client: a.connections()[0]!.targetLocal });
  });

  it('a forwarder whose target is its own listener drops the looped datagram', async () => {
    const l = await listener(engine);
    const fw = forwarder(engine, l, l.port);
    const client = await udpSocket('udp4', V4);
    for (let i = 0; i < 3; i++) client.send(`n${i}`, l.port, V4);
    await waitFor(() => fw.stats().drops.loop === 3, 'three loop drops', 5_000);
    // One flow, the client's; its datagrams came back and stopped there.
    expect(fw.stats()).toMatchObject({ flowsTotal: 1, flowsActive: 1, datagramsClientToTarget: 3 });
  });
});
