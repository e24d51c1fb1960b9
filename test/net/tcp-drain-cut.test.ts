// The drain timeout's cut, end to end through the publisher with each engine: both ends of an
// upload or a download still in flight see a reset, never a clean end (issue 11, defect 6).
import { describe, expect, it, onTestFinished } from 'vitest';
import { parsePublish } from '../../src/docker/spec.js';
import { startPublisher } from '../../src/publish/publisher.js';
import { connectTcp, sendPattern, tcpServer, waitFor, withDeadline } from '../helpers/net.js';
import { MiB, endedBy } from '../fixtures/tcp-helpers.js';
import { engines, requireNative } from '../helpers/engines.js';

requireNative();

describe.each(engines)('drain timeout (%s engine)', (engine) => {
  it.for(['upload', 'download'] as const)(
    'cuts the %s in flight with a reset on both sides',
    async (direction) => {
      const target = await tcpServer(() => undefined);
      const publisher = await startPublisher({
        publish: parsePublish(`127.0.0.1::${target.port}`).map((mapping) => ({
          mapping,
          targetHost: '127.0.0.1',
        })),
        engine,
      });
      onTestFinished(() => publisher.destroy());
      const client = await connectTcp(publisher.bindings[0]!.hostPort);
      const far = await target.next();
      const [from, to] = direction === 'upload' ? [client, far] : [far, client];
      let received = 0;
      to.on('data', (d: Buffer) => (received += d.length));
      const farSaw = endedBy(far);
      const clientSaw = endedBy(client);
      void sendPattern(from, 512 * MiB, direction === 'upload' ? 8 : 9).catch(() => undefined);
      await waitFor(() => received > 4 * MiB, `the ${direction} to be under way`);
      await withDeadline(publisher.close(50), 5_000, 'close with a 50 ms drain');
      expect(await farSaw).toBe('reset');
      expect(await clientSaw).toBe('reset');
    },
  );
});
