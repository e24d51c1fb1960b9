// The TCP forwarder's timeouts, limits, close and destroy, counters and log lines, against both
// engines (test/helpers/engines.ts).
import { describe, expect, it } from 'vitest';
import type { TcpStats } from '../../src/tcp/forwarder.js';
import {
  captureLogger,
  connectOutcome,
  connectTcp,
  echoServer,
  outcome,
  readToEnd,
  roundTrip,
  tcpServer,
  waitFor,
  withDeadline,
} from '../helpers/net.js';
import { engines, requireNative } from '../helpers/engines.js';
import { closeLines, forwardWith } from '../fixtures/tcp-helpers.js';

requireNative();

describe.each(engines)('timeouts and limits (%s engine)', (engine) => {
  const forward = forwardWith(engine);

  it('idleTimeoutMs closes a pair with no traffic, and not one that is busy', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { idleTimeoutMs: 300, logger });
    const client = await connectTcp(port);
    const done = outcome(client, 10_000);
    // Busy for twice the timeout: a round trip every 100 ms keeps the pair alive.
    const started = Date.now();
    for (let i = 0; i < 7; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await roundTrip(client, `ping ${i}`)).toBe(`ping ${i}`);
    }
    expect(client.destroyed).toBe(false);
    const quietFrom = Date.now();
    const result = await done;
    expect(result).toMatchObject({ ended: true, error: undefined });
    expect(Date.now() - quietFrom).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    // The native engine's counters lead its close lines (events reach TypeScript in batches).
    await waitFor(() => closeLines(lines).length >= 1, 'the close log line');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'idle-timeout' });
    await waitFor(() => target.sockets.size === 0, 'the target connection to close');
  });

  it('halfCloseLingerMs ends a half-closed pair whose other side stays silent', async () => {
    const target = await tcpServer(() => undefined);
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { halfCloseLingerMs: 300, logger });
    const client = await connectTcp(port);
    const far = await target.next();
    const farGot = readToEnd(far); // reads the client's FIN, then stays silent and open
    const done = outcome(client, 10_000);
    const started = Date.now();
    client.end('last words');
    const result = await done;
    expect(result.error).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    // The native engine's counters lead its close lines (events reach TypeScript in batches).
    await waitFor(() => closeLines(lines).length >= 1, 'the close log line');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'linger-timeout' });
    expect(String(await farGot)).toBe('last words');
  });

  it('halfCloseLingerMs does not cut a reply that keeps flowing after the FIN', async () => {
    const target = await tcpServer((s) => {
      s.resume();
      s.on('end', () => {
        // Reply in six parts 100 ms apart: 600 ms in all, twice the linger.
        let i = 0;
        const next = (): void => {
          if (i === 6) return void s.end();
          s.write(`part ${i++};`);
          setTimeout(next, 100);
        };
        next();
      });
    });
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { halfCloseLingerMs: 300, logger });
    const client = await connectTcp(port);
    const done = outcome(client, 10_000);
    client.end('request');
    const result = await done;
    expect(result).toMatchObject({ ended: true, error: undefined });
    expect(String(result.received)).toBe('part 0;part 1;part 2;part 3;part 4;part 5;');
    await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
    // The native engine's counters lead its close lines (events reach TypeScript in batches).
    await waitFor(() => closeLines(lines).length >= 1, 'the close log line');
    expect(closeLines(lines)[0]).toMatchObject({ how: 'end' });
  });

  it('maxConnections resets clients beyond the cap, logs once, and serves again below it', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { maxConnections: 2, logger });
    const a = await connectTcp(port);
    const b = await connectTcp(port);
    expect(await roundTrip(a, 'a')).toBe('a');
    expect(await roundTrip(b, 'b')).toBe('b');
    for (let i = 0; i < 3; i++) {
      expect(await connectOutcome(port)).toMatchObject({ error: 'ECONNRESET' });
    }
    expect(fw.stats()).toMatchObject({ connectionsRejected: 3, connectionsTotal: 2 });
    await waitFor(() => lines.some((l) => /maxConnections/.test(l.msg)), 'the refusal line');
    expect(lines.filter((l) => /maxConnections/.test(l.msg))).toHaveLength(1);
    const aClosed = outcome(a);
    a.end();
    await aClosed;
    await waitFor(() => fw.stats().connectionsActive === 1, 'the first pair to finish');
    const c = await connectTcp(port);
    expect(await roundTrip(c, 'c')).toBe('c');
  });

  it('close() stops accepting and resolves only once the open pair has finished', async () => {
    const target = await echoServer();
    const { fw, port } = await forward(target);
    const client = await connectTcp(port);
    expect(await roundTrip(client, 'before')).toBe('before');
    let closed = false;
    const closing = fw.close().then(() => (closed = true));
    expect(fw.close()).toBe(fw.close()); // idempotent: the same promise
    const refused = await connectTcp(port).catch((e: NodeJS.ErrnoException) => e.code);
    expect(refused).toBe('ECONNREFUSED');
    expect(await roundTrip(client, 'still open')).toBe('still open');
    expect(closed).toBe(false);
    const done = outcome(client);
    client.end();
    await withDeadline(closing, 5_000, 'close() to resolve');
    expect(await done).toMatchObject({ ended: true });
    expect(fw.stats().connectionsActive).toBe(0);
  });

  it('destroy() cuts every pair at once and resolves a pending close()', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    const clients = await Promise.all([connectTcp(port), connectTcp(port)]);
    for (const c of clients) expect(await roundTrip(c, 'x')).toBe('x');
    const closing = fw.close();
    const ends = clients.map((c) => outcome(c));
    fw.destroy();
    fw.destroy();
    expect(fw.stats().connectionsActive).toBe(0);
    await withDeadline(closing, 1_000, 'close() to resolve');
    for (const r of await Promise.all(ends)) expect(r.ended || r.error !== undefined).toBe(true);
    await waitFor(() => target.sockets.size === 0, 'the target connections to close');
    await waitFor(() => closeLines(lines).length >= 2, 'the close log lines');
    expect(closeLines(lines).map((l) => l.how)).toEqual(['destroyed', 'destroyed']);
  });

  it('counts connections and bytes; logs each open at debug and each close at info', async () => {
    const target = await echoServer();
    const { logger, lines } = captureLogger();
    const { fw, port } = await forward(target, { logger });
    for (const msg of ['one', 'two!']) {
      const c = await connectTcp(port);
      const done = outcome(c);
      c.end(msg);
      expect(String((await done).received)).toBe(msg);
    }
    await waitFor(() => fw.stats().connectionsActive === 0, 'both pairs to finish');
    const stats: TcpStats = fw.stats();
    expect(stats).toEqual({
      connectionsActive: 0,
      connectionsTotal: 2,
      connectionsRejected: 0,
      connectFailures: 0,
      bytesClientToTarget: 7,
      bytesTargetToClient: 7,
      connectionsLooped: 0,
      // Shared reads are the TypeScript relay's own (optional in TcpStats; native has none).
      ...(engine === 'js' ? { sharedReadsCaptured: 0, sharedReadsRestored: 0 } : {}),
    });
    expect(lines.filter((l) => l.msg === 'connection opened' && l.level === 20)).toHaveLength(2);
    // The native engine's counters lead its close lines (events reach TypeScript in batches).
    await waitFor(() => closeLines(lines).length >= 2, 'the close log line');
    const closes = closeLines(lines);
    expect(closes).toHaveLength(2);
    expect(closes[1]).toMatchObject({
      level: 30,
      how: 'end',
      bytesClientToTarget: 4,
      bytesTargetToClient: 4,
    });
    expect(closes[1]!.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(typeof closes[1]!.durationMs).toBe('number');
  });
});
