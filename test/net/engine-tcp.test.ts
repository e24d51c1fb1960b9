// The native TCP engine's own paths (native/tcp.c through src/engine/native-tcp.ts), beyond the
// behaviour every engine shares (tcp-forwarder, tcp-limits, tcp-resources, tcp-seams, tcp-teardown
// and tcp-drain-cut.test.ts run against it too): small reads copied and parked in the pipe, and
// descriptors with the pipe pool. Skipped, saying so, where the addon did not build or
// PORTPUB_TEST_ENGINES leaves it out; a run that requires it fails instead (test/helpers/engines.ts).
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativeTested, requireNative } from '../helpers/engines.js';
import {
  connectTcp,
  echoServer,
  hashIncoming,
  roundTrip,
  tcpServer,
  waitFor,
  withDeadline,
} from '../helpers/net.js';
import { forwardWith } from '../fixtures/tcp-helpers.js';

requireNative();

const forward = forwardWith('native');

/** openFds counts this process's open descriptors. */
const openFds = (): number => readdirSync('/proc/self/fd').length;

describe.runIf(nativeTested)('native TCP engine', () => {
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
