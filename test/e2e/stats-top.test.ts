// `portpub top NAME` (and `stats --connections`) through the built CLI: each live TCP connection
// and UDP flow of the service, by the client address the test used, with the bytes it pushed.
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parsePortLine } from '../helpers/cli.js';
import { connectTcp, echoServer, pushEcho, waitFor } from '../helpers/net.js';
import { echoServer as udpEcho, request, udpSocket } from '../helpers/udp.js';
import { loadNative } from '../../src/engine/load.js';
import { jsonLines, observeEnv, type ObserveEnv } from '../fixtures/observe-env.js';

interface Row {
  service: string;
  protocol: string;
  client: string;
  host: string;
  targetLocal: string;
  target: string;
  ageMs: number;
  idleMs: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  state: string;
}

async function top(o: ObserveEnv, args: string[]): Promise<Row[]> {
  const r = await o.run([...args, '--no-stream', '--format', 'json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return jsonLines<Row>(r.stdout);
}

/** Both TCP engines serve the same live view; the native one where it built. */
const native = loadNative().binding !== undefined;

describe('portpub top', () => {
  it.for(['js', 'native'])(
    'lists each TCP connection (%s engine) with addresses, bytes and state',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      const o = observeEnv();
      const target = await echoServer();
      const pp = await o.start([
        '-p',
        `127.0.0.1::${target.port}`,
        '--name',
        'web',
        '--engine',
        engine,
      ]);
      const { port } = parsePortLine(pp.lines[0]!);
      const sizes = [1_111, 22_222];
      const sockets = [];
      for (const n of sizes) {
        const s = await connectTcp(port);
        await pushEcho(s, n, 5);
        sockets.push(s);
      }
      let rows: Row[] = [];
      await waitFor(
        async () =>
          (rows = await top(o, ['top', 'web'])).filter((r) => r.bytesTargetToClient > 0).length ===
          2,
        'two connections with their bytes',
        20_000,
      );
      for (const [i, s] of sockets.entries()) {
        const row = rows.find((r) => r.client === `127.0.0.1:${s.localPort}`)!;
        expect(row).toMatchObject({
          service: 'web',
          protocol: 'tcp',
          host: `127.0.0.1:${port}`,
          target: `127.0.0.1:${target.port}`,
          bytesClientToTarget: sizes[i],
          bytesTargetToClient: sizes[i],
          state: 'open',
        });
        // The target-side socket is the one the target accepted.
        const remote = [...target.sockets].map((t) => `127.0.0.1:${t.remotePort}`);
        expect(remote).toContain(row.targetLocal);
        expect(row.ageMs).toBeGreaterThanOrEqual(row.idleMs);
      }
      // The same, as a table (stats --connections is top over every running portpub).
      const table = await o.run(['stats', '--connections', '--no-stream']);
      expect(table.stdout.split('\n')[0]).toMatch(
        /^SERVICE +PROTO +CLIENT +HOST +TARGET SIDE +AGE +IDLE +TO TARGET +TO CLIENT +STATE$/,
      );
      expect(table.stdout).toContain(`127.0.0.1:${sockets[0]!.localPort}`);
    },
  );

  it('lists the connections every --tcp-workers process serves', async () => {
    const o = observeEnv();
    const target = await echoServer();
    const pp = await o.start([
      '-p',
      `127.0.0.1::${target.port}`,
      '--name',
      'many',
      '--tcp-workers',
      '3',
    ]);
    const { port } = parsePortLine(pp.lines[0]!);
    const clients = [];
    for (let i = 0; i < 8; i++) clients.push(await connectTcp(port));
    let rows: Row[] = [];
    await waitFor(
      async () => (rows = await top(o, ['top', 'many'])).length === 8,
      'eight connections listed',
      20_000,
    );
    expect(rows.map((r) => r.client).sort()).toEqual(
      clients.map((c) => `127.0.0.1:${c.localPort}`).sort(),
    );
  });

  it.for(['js', 'native'])(
    'lists UDP flows (%s engine), by client, with their addresses, bytes and age',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      const o = observeEnv();
      const target = await udpEcho('udp4', '127.0.0.1');
      const pp = await o.start([
        '-p',
        `127.0.0.1::${target.port}/udp`,
        '--name',
        'dns',
        '--engine',
        engine,
      ]);
      const { port } = parsePortLine(pp.lines[0]!);
      const a = await udpSocket('udp4', '127.0.0.1');
      const b = await udpSocket('udp4', '127.0.0.1');
      const sent = Date.now();
      await request(a, 'aaaa', port, '127.0.0.1', { tries: 5 });
      await request(b, 'bbbbbbbb', port, '127.0.0.1', { tries: 5 });
      const answered = Date.now();
      let rows: Row[] = [];
      let asked = 0;
      await waitFor(
        async () => {
          asked = Date.now();
          rows = await top(o, ['top', 'dns']);
          return rows.length === 2 && rows.every((r) => r.bytesTargetToClient > 0);
        },
        'two flows with their replies counted',
        20_000,
      );
      const done = Date.now();
      const ra = rows.find((r) => r.client === `127.0.0.1:${a.address().port}`)!;
      const rb = rows.find((r) => r.client === `127.0.0.1:${b.address().port}`)!;
      expect(ra).toMatchObject({
        service: 'dns',
        protocol: 'udp',
        host: `127.0.0.1:${port}`,
        target: `127.0.0.1:${target.port}`,
        bytesClientToTarget: 4,
        bytesTargetToClient: 4,
        state: 'open',
      });
      expect(rb).toMatchObject({ bytesClientToTarget: 8, bytesTargetToClient: 8 });
      // Each flow's target-side socket is the source the target saw, one per client.
      const sources = target.sources.map((p) => `127.0.0.1:${p}`);
      expect(sources).toContain(ra.targetLocal);
      expect(sources).toContain(rb.targetLocal);
      expect(ra.targetLocal).not.toBe(rb.targetLocal);
      // Ages lie in the test's own window (a millisecond of rounding either way).
      for (const r of [ra, rb]) {
        expect(r.ageMs).toBeGreaterThanOrEqual(asked - answered - 1);
        expect(r.ageMs).toBeLessThanOrEqual(done - sent + 1);
        expect(r.ageMs).toBeGreaterThanOrEqual(r.idleMs);
      }
    },
  );

  it.for(['js', 'native'])(
    'shows a connection the client half-closed as half-closed (%s engine)',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      const o = observeEnv();
      // A target that reads to the client's FIN and keeps its own side open.
      const targetEnded: net.Socket[] = [];
      const server = net.createServer({ allowHalfOpen: true }, (s) => {
        s.on('end', () => targetEnded.push(s));
        s.resume();
      });
      onTestFinished(() => {
        for (const t of targetEnded) t.destroy();
        server.close();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const targetPort = (server.address() as net.AddressInfo).port;
      const pp = await o.start([
        '-p',
        `127.0.0.1::${targetPort}`,
        '--name',
        'half',
        '--engine',
        engine,
      ]);
      const { port } = parsePortLine(pp.lines[0]!);
      const s = await connectTcp(port);
      s.end('bye');
      await waitFor(() => targetEnded.length === 1, "the client's FIN at the target", 10_000);
      let rows: Row[] = [];
      await waitFor(
        async () => (rows = await top(o, ['top', 'half'])).some((r) => r.state === 'half-closed'),
        'the connection shown half-closed',
        20_000,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        client: `127.0.0.1:${s.localPort}`,
        bytesClientToTarget: 3,
        state: 'half-closed',
      });
    },
  );

  it.for(['js', 'native'])(
    'keeps showing connections that drain after a stop signal (%s engine)',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      const o = observeEnv();
      const target = await echoServer();
      const pp = await o.start([
        '-p',
        `127.0.0.1::${target.port}`,
        '--name',
        'slow',
        '--engine',
        engine,
        '--drain-timeout',
        '60s',
      ]);
      const { port } = parsePortLine(pp.lines[0]!);
      const s = await connectTcp(port);
      await pushEcho(s, 3_333, 1);
      await waitFor(
        async () => (await top(o, ['top', 'slow']))[0]?.bytesTargetToClient === 3_333,
        'the connection counted',
        20_000,
      );
      pp.child.kill('SIGTERM');
      await waitFor(() => pp.stderr().includes('stopping: draining'), 'the drain to start', 10_000);
      const rows = await top(o, ['top', 'slow']);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        client: `127.0.0.1:${s.localPort}`,
        bytesClientToTarget: 3_333,
        bytesTargetToClient: 3_333,
        state: 'draining',
      });
      // The binding's counters stay with it while it drains.
      const stats = jsonLines<{ active: number; total: number }>(
        (await o.run(['stats', 'slow', '--no-stream', '--format', 'json'])).stdout,
      );
      expect(stats).toHaveLength(1);
      expect(stats[0]).toMatchObject({ active: 1, total: 1 });
      s.end();
      const exit = await pp.exited;
      expect(exit.code).toBe(0);
    },
  );

  it('needs a NAME that runs', async () => {
    const o = observeEnv();
    const target = await echoServer();
    await o.start(['-p', `127.0.0.1::${target.port}`, '--name', 'web']);
    const none = await o.run(['top']);
    expect(none.code).toBe(2);
    const wrong = await o.run(['top', 'db', '--no-stream']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/no such service: db \(running: web\)/);
  });
});
