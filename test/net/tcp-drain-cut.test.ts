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
  it('cuts an upload in flight with a reset on both sides', async () => {
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
    let received = 0;
    far.on('data', (d: Buffer) => (received += d.length));
    const farSaw = endedBy(far);
    const clientSaw = endedBy(client);
    void sendPattern(client, 512 * MiB, 8).catch(() => undefined);
    await waitFor(() => received > 4 * MiB, 'the upload to be under way');
    await withDeadline(publisher.close(50), 5_000, 'close with a 50 ms drain');
    expect(await farSaw).toBe('reset');
    expect(await clientSaw).toBe('reset');
  });

  it('cuts a download in flight with a reset on both sides', async () => {
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
    let received = 0;
    client.on('data', (d: Buffer) => (received += d.length));
    const farSaw = endedBy(far);
    const clientSaw = endedBy(client);
    void sendPattern(far, 512 * MiB, 9).catch(() => undefined);
    await waitFor(() => received > 4 * MiB, 'the download to be under way');
    await withDeadline(publisher.close(50), 5_000, 'close with a 50 ms drain');
    expect(await clientSaw).toBe('reset');
    expect(await farSaw).toBe('reset');
  });
});
