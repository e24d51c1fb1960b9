// `portpub stats` and `portpub top` through the built CLI: bytes pushed through a real portpub
// show up, exactly, in what the commands print; names select; nothing running is exit 1.
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN, parsePortLine } from '../helpers/cli.js';
import { connectTcp, echoServer, pushEcho, track, waitFor, withDeadline } from '../helpers/net.js';
import { echoServer as udpEcho, needs, request, udpSocket } from '../helpers/udp.js';
import { loadNative } from '../../src/engine/load.js';
import { jsonLines, observeEnv, type ObserveEnv } from '../fixtures/observe-env.js';

const SCRIPT = '/usr/bin/script';
/** Both TCP engines report the same counters; the native one where it built. */
const ENGINES = ['js', 'native'];
const native = loadNative().binding !== undefined;

interface Row {
  pid: number;
  service: string;
  binding: string;
  target: string;
  protocol: string;
  active: number;
  total: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  rateClientToTarget: number | null;
  drops: number;
}

/** statsJson runs `stats --no-stream --format json` once. */
async function statsJson(o: ObserveEnv, names: string[] = []): Promise<Row[]> {
  const r = await o.run([
    'stats',
    ...names,
    '--no-stream',
    '--format',
    'json',
    '--interval',
    '50ms',
  ]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return jsonLines<Row>(r.stdout);
}

/** until polls `stats` until check passes on its rows (counters settle asynchronously). */
async function until(
  o: ObserveEnv,
  check: (rows: Row[]) => boolean,
  what: string,
  names?: string[],
) {
  let rows: Row[] = [];
  await waitFor(async () => check((rows = await statsJson(o, names))), what, 20_000);
  return rows;
}

/** pushTcp sends n bytes through and reads them back from the echo target. */
async function pushTcp(port: number, n: number) {
  const socket = await connectTcp(port);
  await pushEcho(socket, n, 7);
  return socket;
}

describe('portpub stats', () => {
  it.for(ENGINES)(
    'shows the bytes pushed each way, and the open connection (%s engine)',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      const o = observeEnv();
      const echo = await echoServer();
      const pp = await o.start([
        '-p',
        `127.0.0.1::${echo.port}`,
        '--name',
        'web',
        '--engine',
        engine,
      ]);
      const { port } = parsePortLine(pp.lines[0]!);
      const socket = await pushTcp(port, 123_457);
      const rows = await until(
        o,
        (r) => r[0]?.bytesTargetToClient === 123_457,
        'stats to show 123457 bytes',
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        pid: pp.child.pid,
        service: 'web',
        binding: `127.0.0.1:${port}`,
        target: `127.0.0.1:${echo.port}`,
        protocol: 'tcp',
        active: 1,
        total: 1,
        bytesClientToTarget: 123_457,
        bytesTargetToClient: 123_457,
        drops: 0,
      });
      expect(typeof rows[0]!.rateClientToTarget).toBe('number');

      // The table: the same numbers in docker's units; the connection closed, active drops to 0.
      socket.end();
      await until(o, (r) => r[0]?.active === 0, 'the connection to close');
      const table = await o.run(['stats', 'web', '--no-stream', '--interval', '50ms']);
      expect(table.code).toBe(0);
      const [header, line, ...rest] = table.stdout.trimEnd().split('\n');
      expect(header).toMatch(/^SERVICE +BINDING +PROTO +ACTIVE +TOTAL +TO TARGET +TO CLIENT /);
      expect(rest).toEqual([]);
      expect(line!.split(/ {3,}/)).toEqual([
        'web',
        `127.0.0.1:${port} -> 127.0.0.1:${echo.port}`,
        'tcp',
        '0',
        '1',
        '123kB',
        '123kB',
        '0B/s',
        '0B/s',
        '0',
      ]);
    },
  );

  it.for(ENGINES)(
    'counts UDP flows and bytes (%s engine), and keeps the control socket owner-only',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      const o = observeEnv();
      const echo = await udpEcho('udp4', '127.0.0.1');
      const pp = await o.start(['-p', `127.0.0.1::${echo.port}/udp`, '--engine', engine]);
      const { port } = parsePortLine(pp.lines[0]!);
      const sock = await udpSocket('udp4', '127.0.0.1');
      for (const payload of ['one', 'three']) {
        await request(sock, payload, port, '127.0.0.1', { tries: 5 });
      }
      const rows = await until(o, (r) => r[0]?.bytesTargetToClient === 8, 'UDP bytes');
      expect(rows[0]).toMatchObject({
        service: `pid ${pp.child.pid}`,
        protocol: 'udp',
        active: 1,
        total: 1,
        bytesClientToTarget: 8,
        bytesTargetToClient: 8,
      });
      const sockPath = join(o.env.XDG_RUNTIME_DIR!, 'portpub', `${pp.child.pid}.sock`);
      const st = statSync(sockPath);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
      await pp.stop();
      expect(() => statSync(sockPath)).toThrow(/ENOENT/);
    },
  );

  it('sums the counters of every --tcp-workers process', async () => {
    const o = observeEnv();
    const echo = await echoServer();
    const pp = await o.start(['-p', `127.0.0.1::${echo.port}`, '--tcp-workers', '3']);
    const { port } = parsePortLine(pp.lines[0]!);
    const sockets = [];
    for (let i = 1; i <= 8; i++) sockets.push(await pushTcp(port, 1000 * i));
    const rows = await until(o, (r) => r[0]?.total === 8, 'eight connections counted');
    expect(rows[0]).toMatchObject({
      active: 8,
      total: 8,
      bytesClientToTarget: 36_000,
      bytesTargetToClient: 36_000,
    });
    // Workers that die take their connections, not their counts: totals never go down.
    const pid = pp.child.pid!;
    const workers = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ');
    expect(workers).toHaveLength(2);
    for (const w of workers) process.kill(Number(w), 'SIGKILL');
    const after = await until(
      o,
      (r) => r[0]!.active < 8 || workers.every((w) => !existsSync(`/proc/${w}`)),
      'the workers gone',
    );
    expect(after[0]).toMatchObject({
      total: 8,
      bytesClientToTarget: 36_000,
      bytesTargetToClient: 36_000,
    });
  });

  it('selects by NAME, and says what runs when a NAME matches nothing', async () => {
    const o = observeEnv();
    const echo = await echoServer();
    await o.start(['-p', `127.0.0.1::${echo.port}`, '--name', 'alpha']);
    await o.start(['-p', `127.0.0.1::${echo.port}`, '--name', 'beta']);
    const both = await statsJson(o);
    expect(both.map((r) => r.service).sort()).toEqual(['alpha', 'beta']);
    expect((await statsJson(o, ['beta'])).map((r) => r.service)).toEqual(['beta']);
    const r = await o.run(['stats', 'nope', '--no-stream']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such service: nope \(running: (alpha, beta|beta, alpha)\)/);
  });

  it('exits 1 when no portpub runs, and 2 on a bad option', async () => {
    const o = observeEnv();
    const r = await o.run(['stats', '--no-stream']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no running portpub found/);
    const bad = await o.run(['stats', '--format', 'xml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--format/);
  });

  it('streams plain tables when stdout is not a terminal, until SIGINT', async () => {
    const o = observeEnv();
    const echo = await echoServer();
    const pp = await o.start(['-p', `127.0.0.1::${echo.port}`, '--name', 'live']);
    const child = spawn(process.execPath, [BIN, 'stats', '--interval', '50ms'], {
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await waitFor(() => out.split('SERVICE').length > 3, 'three tables', 15_000);
    expect(out).not.toContain('\x1b[');
    expect(out).toMatch(/\nlive +127\.0\.0\.1:\d+ -> /);
    // The portpub stops: the table goes empty (a header alone) and stats carries on.
    await pp.stop();
    await waitFor(() => /\n\nSERVICE [^\n]*\n\n/.test(out), 'an empty table', 15_000);
    expect(child.exitCode).toBe(null);
    child.kill('SIGINT');
    expect(await withDeadline(exited, 10_000, 'stats to exit')).toBe(0);
  });

  it('redraws in place on a terminal', async (t) => {
    needs(t, [!existsSync(SCRIPT) && `script (${SCRIPT}, util-linux)`]);
    const o = observeEnv();
    const echo = await echoServer();
    await o.start(['-p', `127.0.0.1::${echo.port}`, '--name', 'tty']);
    // script(1) runs the command on a pseudo-terminal: stdout is a TTY there.
    const cmd = `exec ${process.execPath} ${BIN} stats --interval 50ms`;
    const child = spawn(SCRIPT, ['-qfec', cmd, '/dev/null'], {
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await waitFor(() => out.split('\x1b[H\x1b[2J').length > 3, 'three redraws', 15_000);
    const frames = out.split('\x1b[H\x1b[2J').slice(1, -1);
    for (const f of frames) expect(f).toMatch(/^SERVICE .*\r?\ntty +127\.0\.0\.1:\d+ -> /);
    child.kill('SIGTERM');
    await withDeadline(exited, 10_000, 'script to exit');
  });

  it('answers bad control requests with an error, and drops a client that floods it', async () => {
    const o = observeEnv();
    const echo = await echoServer();
    const pp = await o.start(['-p', `127.0.0.1::${echo.port}`]);
    const path = join(o.env.XDG_RUNTIME_DIR!, 'portpub', `${pp.child.pid}.sock`);
    const c = track(createConnection(path));
    c.on('error', () => undefined);
    let got = '';
    c.setEncoding('utf8').on('data', (d: string) => (got += d));
    c.write('nonsense\n{"op":"dance"}\n{"op":"stats"}\n');
    await waitFor(() => got.split('\n').length > 3, 'three answers', 10_000);
    const [a, b, snap] = got
      .split('\n')
      .map((l) => JSON.parse(l || 'null') as Record<string, unknown>);
    expect(a).toEqual({ error: 'request is not JSON' });
    expect(b).toEqual({ error: 'unknown op: "dance"' });
    expect(snap).toMatchObject({ pid: pp.child.pid, bindings: [{ protocol: 'tcp' }] });
    const closed = new Promise((resolve) => c.once('close', resolve));
    c.write('x'.repeat(5000));
    await withDeadline(closed, 10_000, 'the flooding client to be dropped');
    // The process serves on, and answers the next client.
    expect(await statsJson(o)).toHaveLength(1);
  });
});
