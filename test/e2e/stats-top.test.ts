// `portpub top NAME` (and `stats --connections`) through the built CLI: each live TCP connection
// and UDP flow of the service, by the client address the test used, with the bytes it pushed.
import { describe, expect, it } from 'vitest';
import { parsePortLine } from '../helpers/cli.js';
import { connectTcp, echoServer, waitFor } from '../helpers/net.js';
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
        let got = 0;
        s.on('data', (d: Buffer) => (got += d.length));
        s.write(Buffer.alloc(n, 5));
        await waitFor(() => got === n, 'the echo', 10_000);
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

  it('lists UDP flows, by client, with their bytes', async () => {
    const o = observeEnv();
    const target = await udpEcho('udp4', '127.0.0.1');
    const pp = await o.start(['-p', `127.0.0.1::${target.port}/udp`, '--name', 'dns']);
    const { port } = parsePortLine(pp.lines[0]!);
    const a = await udpSocket('udp4', '127.0.0.1');
    const b = await udpSocket('udp4', '127.0.0.1');
    await request(a, 'aaaa', port, '127.0.0.1', { tries: 5 });
    await request(b, 'bbbbbbbb', port, '127.0.0.1', { tries: 5 });
    let rows: Row[] = [];
    await waitFor(
      async () => (rows = await top(o, ['top', 'dns'])).length === 2,
      'two flows',
      20_000,
    );
    expect(rows.find((r) => r.client === `127.0.0.1:${a.address().port}`)).toMatchObject({
      protocol: 'udp',
      host: `127.0.0.1:${port}`,
      target: `127.0.0.1:${target.port}`,
      bytesClientToTarget: 4,
      bytesTargetToClient: 4,
    });
    expect(rows.find((r) => r.client === `127.0.0.1:${b.address().port}`)).toMatchObject({
      bytesClientToTarget: 8,
      bytesTargetToClient: 8,
    });
  });

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
