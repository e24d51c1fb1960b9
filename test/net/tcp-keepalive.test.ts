// Keepalive on both sockets of a pair, on either engine: 15 s, Go's and so docker-proxy's, so a
// peer that vanished without a FIN or reset is found out. The native engine sets the client's on
// the listener (accepted sockets inherit it) and the target's at connect (native/tcp-accept.c).
// What is checked is the kernel's own view: `ss -o` shows a keepalive timer, and its time left is
// the 15 s idle time, not Linux's default of two hours.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { engines, requireNative } from '../helpers/engines.js';
import { connectTcp, echoServer, roundTrip, waitFor } from '../helpers/net.js';
import { forwardWith } from '../fixtures/tcp-helpers.js';

requireNative();

/** keepaliveLeft is the keepalive timer's time left (s) of the one socket filter matches, if any. */
function keepaliveLeft(filter: string): number | undefined {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', filter], { encoding: 'utf8' });
  const m = /timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?(?:(\d+)ms)?,\d+\)/.exec(out);
  if (!m) return undefined;
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) + Number(m[3] ?? 0) / 1000;
}

describe.each(engines)('the %s engine', (engine) => {
  const forward = forwardWith(engine);

  it('keeps both sockets of a pair alive with 15 s probes', { timeout: 30_000 }, async () => {
    const target = await echoServer();
    const { port } = await forward(target);
    const client = await connectTcp(port);
    expect(await roundTrip(client, 'hello')).toBe('hello');
    // The forwarder's client-side socket is the one whose local port is the forwarder's; its
    // target-side socket, the one connected to the echo's port.
    const sides = { client: `sport = :${port}`, target: `dport = :${target.port}` };
    for (const [side, filter] of Object.entries(sides)) {
      let left: number | undefined;
      await waitFor(
        () => (left = keepaliveLeft(filter)) !== undefined,
        `${side} keepalive`,
        10_000,
      );
      expect(left, side).toBeGreaterThan(0);
      expect(left, side).toBeLessThanOrEqual(15);
    }
    client.destroy();
  });
});
