// Plain `portpub -d -p ...` through the built CLI (issue 14): it prints an id once every port is
// bound and serves in the background; ps (PORTS column), ps -a, port, env, logs and stop see it; a
// bind failure reaches the foreground as the same message and exit code, leaving nothing; stop
// never signals a pid it cannot prove to be that portpub.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { echoServer, roundTrip, track, waitFor } from '../helpers/net.js';
import { alive, record, records, runEnv, type RunEnv } from '../fixtures/netns-run.js';
import { processStartTime } from '../../src/registry/state.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 20_000, { env: e.env });

/** published reads `portpub port NAME`'s one line: the host port. */
async function published(e: RunEnv, name: string): Promise<number> {
  const r = await cli(e, 'port', name);
  expect(r.code).toBe(0);
  const m = /-> 127\.0\.0\.1:(\d+)\n$/.exec(r.stdout);
  if (!m) throw new Error(`unexpected portpub port output: ${r.stdout}`);
  return Number(m[1]);
}

describe('portpub -d -p', { timeout: 60_000 }, () => {
  it('serves in the background: ps, port, logs, stop, ps -a', async () => {
    const e = runEnv();
    const echo = await echoServer();
    const r = await cli(e, '-d', '--name', 'web', '-p', `127.0.0.1::${echo.port}`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    const rec = record(e.dir, 'web');
    expect(rec.id).toBe(r.stdout.trim());
    expect(rec.state.status).toBe('running');
    const pid = rec.state.pid!;
    expect(alive(pid)).toBe(true);

    // Every port is bound when the foreground returns: traffic flows at once.
    const port = await published(e, 'web');
    const socket = track(net.connect(port, '127.0.0.1'));
    expect(await roundTrip(socket, 'ping')).toBe('ping');
    socket.destroy();

    // `portpub env NAME` answers from its state file, as for a foreground --name run.
    const env = await cli(e, 'env', 'web');
    expect(env.code).toBe(0);
    expect(env.stdout).toContain(`export WEB_PORT='tcp://127.0.0.1:${echo.port}'\n`);

    const ps = await cli(e, 'ps');
    expect(ps.code).toBe(0);
    const lines = ps.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^CONTAINER ID +COMMAND +CREATED +STATUS +PORTS +NAMES$/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(rec.id.slice(0, 12));
    expect(lines[1]).toContain(`127.0.0.1:${port}->${echo.port}/tcp`);
    expect(lines[1]).toMatch(/"portpub -d --name w…" .* Up .* web$/);

    const logs = await cli(e, 'logs', 'web');
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('"msg":"listening"');
    expect(logs.stdout).toContain(`${echo.port}/tcp -> 127.0.0.1:${port}\n`);

    const stop = await cli(e, 'stop', 'web');
    expect(stop.stderr).toBe('');
    expect(stop).toMatchObject({ code: 0, stdout: 'web\n' });
    // Gone, so nothing of it holds the port (a refused-connect check would race with whoever
    // binds the released ephemeral port next on a shared machine).
    expect(alive(pid)).toBe(false);
    expect(record(e.dir, 'web').state).toMatchObject({ status: 'exited', exitCode: 0 });
    expect((await cli(e, 'ps')).stdout.trimEnd().split('\n')).toHaveLength(1);
    const all = await cli(e, 'ps', '-a');
    expect(all.stdout).toMatch(/Exited \(0\) .* web\n$/);
    expect((await cli(e, 'logs', 'web')).stdout).toContain('"msg":"stopped"');

    const rm = await cli(e, 'rm', 'web');
    expect(rm).toMatchObject({ code: 0, stdout: 'web\n' });
    expect(records(e.dir)).toEqual([]);
  });

  it('a bind failure in the background is the foreground message and exit code', async () => {
    const e = runEnv();
    const holder = track(net.createServer());
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const held = (holder.address() as net.AddressInfo).port;

    const fg = await cli(e, '-p', `127.0.0.1:${held}:80`);
    expect(fg.code).toBe(1);
    const line = fg.stderr.split('\n').filter((l) => l.startsWith('portpub:'));
    expect(line).toEqual([
      `portpub: failed to bind host port 127.0.0.1:${held}/tcp: address already in use`,
    ]);

    const bg = await cli(e, '-d', '--name', 'web', '-p', `127.0.0.1:${held}:80`);
    expect(bg).toMatchObject({ code: 1, stdout: '', stderr: `${line[0]}\n` });
    // Nothing half-started: no record holds the name, no portpub serves it.
    expect(records(e.dir)).toEqual([]);
    const again = await cli(e, 'ps', '-a');
    expect(again.stdout.trimEnd().split('\n')).toHaveLength(1);
  });

  it('bad input exits 2 before anything starts; a taken name is the Conflict error', async () => {
    const e = runEnv();
    const bad = await cli(e, '-d', '-p', 'nonsense');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('nonsense');
    expect(bad.stdout).toBe('');
    expect(records(e.dir)).toEqual([]);

    const echo = await echoServer();
    const first = await cli(e, '-d', '--name', 'web', '-p', `127.0.0.1::${echo.port}`);
    expect(first.code).toBe(0);
    const second = await cli(e, '-d', '--name', 'web', '-p', `127.0.0.1::${echo.port}`);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      /^portpub: Conflict\. The container name "\/web" is already in use/,
    );
    expect(records(e.dir)).toHaveLength(1);
  });

  it('stop refuses a recorded pid it cannot prove to be that portpub', async () => {
    const e = runEnv();
    const echo = await echoServer();
    const r = await cli(e, '-d', '--name', 'web', '-p', `127.0.0.1::${echo.port}`);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();

    // A decoy of the test's own, alive, that the record is made to name (its start time too, so
    // the record looks live): a pid reused by another program.
    const decoy = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      stdio: 'ignore',
    });
    onTestFinished(() => void decoy.kill('SIGKILL'));
    const decoyPid = decoy.pid!;
    await waitFor(() => processStartTime(decoyPid) !== undefined, 'the decoy started');
    const path = join(e.dir, 'containers', id, 'config.json');
    const saved = readFileSync(path, 'utf8');
    const forged = JSON.parse(saved) as { state: Record<string, unknown> };
    forged.state.pid = decoyPid;
    forged.state.procStart = processStartTime(decoyPid);
    writeFileSync(path, JSON.stringify(forged));

    const stop = await cli(e, 'stop', '-t', '1', 'web');
    expect(stop.code).toBe(1);
    expect(stop.stderr).toContain(`pid ${decoyPid}`);
    expect(stop.stderr).toContain('nothing was signalled');
    expect(alive(decoyPid)).toBe(true);

    // With the true record back, stop ends the real one.
    writeFileSync(path, saved);
    const real = await cli(e, 'stop', 'web');
    expect(real.code).toBe(0);
    expect(alive(record(e.dir, 'web').state.pid!)).toBe(false);
  });
});
