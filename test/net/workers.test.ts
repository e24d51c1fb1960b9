// --tcp-workers through the built CLI: the main process and its workers all accept from the same
// sockets, stop together (drained), never outlive the main process, and follow reloads.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { endedBy } from '../fixtures/tcp-helpers.js';
import { parsePortLine, runCli, startCli, type Running } from '../helpers/cli.js';
import {
  connectTcp,
  echoServer,
  freePort,
  roundTrip,
  tcpServer,
  waitFor,
  withDeadline,
} from '../helpers/net.js';

/**
 * marked lists the processes whose environment carries PORTPUB_TEST_MARK=mark: a portpub the
 * test started and every worker it forked (they inherit the environment, and keep it if orphaned).
 */
function marked(mark: string): number[] {
  const needle = `PORTPUB_TEST_MARK=${mark}\0`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(needle)) pids.push(+entry);
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** mark returns a fresh mark whose processes are all killed when the test ends. */
function mark(): { env: Record<string, string>; mark: string } {
  const m = randomUUID();
  onTestFinished(() => {
    for (const pid of marked(m)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  return { env: { PORTPUB_TEST_MARK: m }, mark: m };
}

/** closeLines are the JSON 'connection closed' lines on portpub's stderr so far. */
function closeLines(run: Running): Record<string, unknown>[] {
  return run
    .stderr()
    .split('\n')
    .filter((l) => l.includes('"msg":"connection closed"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** servedBy is the set of processes that closed connections: 0 is the main one, n worker n. */
function servedBy(run: Running, binding?: string): Set<number> {
  return new Set(
    closeLines(run)
      .filter((l) => binding === undefined || l.binding === binding)
      .map((l) => (typeof l.worker === 'number' ? l.worker : 0)),
  );
}

/**
 * echoUntilAWorkerServes makes short echo connections (at most 400, within 15 s) until a
 * worker has served one of them; each must echo correctly. The kernel picks which process
 * accepts, so a single connection proves nothing either way.
 */
async function echoUntilAWorkerServes(run: Running, port: number, binding: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    const socket = await connectTcp(port);
    expect(await roundTrip(socket, `hello ${i}`)).toBe(`hello ${i}`);
    socket.end();
    await withDeadline(
      new Promise((resolve) => socket.once('close', resolve)),
      5_000,
      'the client socket to close',
    );
    if (i % 10 === 9) {
      // close lines come a moment after the client's close; look every few connections
      await new Promise((resolve) => setTimeout(resolve, 20));
      if ([...servedBy(run, binding)].some((w) => w > 0)) return;
    }
  }
  await waitFor(
    () => [...servedBy(run, binding)].some((w) => w > 0),
    `a worker to serve a connection on ${binding}`,
    2_000,
  );
}

/**
 * startWorkers runs portpub with --tcp-workers n in front of a fresh echo server and waits until
 * all n processes exist; `port` is the published one, `procs()` the processes still alive.
 */
async function startWorkers(
  n: number,
  extra: string[] = [],
): Promise<{ run: Running; port: number; procs: () => number[] }> {
  const { env, mark: m } = mark();
  const target = await echoServer();
  const run = await startCli(
    ['-p', `127.0.0.1::${target.port}`, '--tcp-workers', String(n), ...extra],
    1,
    15_000,
    { env },
  );
  await waitFor(() => marked(m).length === n, `portpub's ${n} processes`, 10_000);
  return { run, port: parsePortLine(run.lines[0]!).port, procs: () => marked(m) };
}

/** openEchoing opens count connections and checks that each echoes (so each is paired). */
async function openEchoing(port: number, count: number): Promise<net.Socket[]> {
  const open = await Promise.all(Array.from({ length: count }, () => connectTcp(port)));
  for (const [i, socket] of open.entries()) {
    expect(await roundTrip(socket, `open ${i}`)).toBe(`open ${i}`);
  }
  return open;
}

describe('--tcp-workers', () => {
  it('serves from the main process and its workers; SIGTERM drains and stops them all', async () => {
    const { run, port, procs } = await startWorkers(3, ['--log-format', 'json']);
    await echoUntilAWorkerServes(run, port, `127.0.0.1:${port}/tcp`);

    // open connections finish after the signal, wherever they were accepted
    const open = await openEchoing(port, 20);
    const before = closeLines(run).length;
    run.child.kill('SIGTERM');
    await waitFor(() => run.stderr().includes('stopping: draining'), 'the drain to start');
    for (const [i, socket] of open.entries()) {
      expect(await roundTrip(socket, `draining ${i}`)).toBe(`draining ${i}`);
      socket.end();
    }
    const result = await withDeadline(run.exited, 15_000, 'portpub to exit');
    expect(result.code).toBe(0);
    expect(closeLines(run).length - before).toBe(20);
    await waitFor(() => procs().length === 0, 'every worker to exit', 5_000);
  });

  it('a second signal cuts connections in every process at once', async () => {
    const { run, port, procs } = await startWorkers(3, ['--drain-timeout', '1h']);
    const open = await openEchoing(port, 20);
    // A cut is a reset (issue 11, defect 6): never a FIN that would look like a clean end.
    const cut = open.map((socket) => endedBy(socket, 15_000));
    run.child.kill('SIGTERM');
    await waitFor(() => run.stderr().includes('stopping: draining'), 'the drain to start');
    run.child.kill('SIGTERM');
    expect((await withDeadline(run.exited, 10_000, 'portpub to exit')).code).toBe(0);
    expect(await withDeadline(Promise.all(cut), 5_000, 'every held connection to be cut')).toEqual(
      open.map(() => 'reset'),
    );
    await waitFor(() => procs().length === 0, 'every worker to exit', 5_000);
  });

  it('workers exit when the main process is killed outright', async () => {
    const { run, procs } = await startWorkers(2);
    run.child.kill('SIGKILL');
    await withDeadline(run.exited, 5_000, 'portpub to die');
    await waitFor(() => procs().length === 0, 'the orphaned worker to exit', 5_000);
  });

  it('a bind failure leaves no worker behind (exit 1, Docker message)', async () => {
    const { env, mark: m } = mark();
    const busy = await tcpServer(() => undefined);
    const free = await freePort();
    const result = await runCli(
      [
        '-p',
        `127.0.0.1:${free}:80`,
        '-p',
        `127.0.0.1:${busy.port}:80`,
        '--tcp-workers',
        '3',
        '--log-level',
        'silent',
      ],
      15_000,
      { env },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `failed to bind host port 127.0.0.1:${busy.port}/tcp: address already in use`,
    );
    expect(result.stdout).toBe('');
    await waitFor(() => marked(m).length === 0, 'no portpub process left', 5_000);
    // nothing listens on the port the first -p had bound
    const again = net.createServer();
    onTestFinished(() => void again.close());
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(free, '127.0.0.1', resolve);
    });
  });

  it('reloads: a removed port is let go by every process, an added one is served by workers', async () => {
    const { env, mark: m } = mark();
    const dir = mkdtempSync(join(tmpdir(), 'portpub-workers-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const target = await echoServer();
    const [removed, added] = [await freePort(), await freePort()];
    const file = join(dir, 'portpub.yaml');
    const config = (hostPort: number) =>
      `services:\n  web:\n    ports:\n      - "127.0.0.1:${hostPort}:${target.port}"\n`;
    writeFileSync(file, config(removed));
    const run = await startCli(
      ['up', '-f', file, '--tcp-workers', '3', '--log-format', 'json'],
      1,
      15_000,
      { env: { ...env, XDG_RUNTIME_DIR: dir } },
    );
    await waitFor(() => marked(m).length === 3, 'the main process and 2 workers', 10_000);
    await echoUntilAWorkerServes(run, removed, `127.0.0.1:${removed}/tcp`);

    writeFileSync(file, config(added));
    run.child.kill('SIGHUP');
    await waitFor(() => run.stderr().includes('"msg":"reloaded"'), 'the reload', 10_000);
    // no process holds the removed port any more: it can be bound at once
    const taken = net.createServer();
    onTestFinished(() => void taken.close());
    await new Promise<void>((resolve, reject) => {
      taken.once('error', reject);
      taken.listen(removed, '127.0.0.1', resolve);
    });
    await echoUntilAWorkerServes(run, added, `127.0.0.1:${added}/tcp`);
    expect((await run.stop()).code).toBe(0);
    await waitFor(() => marked(m).length === 0, 'every worker to exit', 5_000);
  });

  it('rejects a count below 1 (exit 2)', async () => {
    const result = await runCli(['-p', '8080:80', '--tcp-workers', '0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--tcp-workers takes a whole number >= 1');
  });
});
