// portpub start and restart, as docker start and docker restart: a stopped `run` service runs
// again from its record, in the background, on both networks; a running one is left alone; what
// cannot start says why and leaves nothing running.
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { connectTcp, roundTrip, track, waitFor } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';
import {
  alive,
  killMarkedOnFinish,
  processesWith,
  record,
  records,
  requireNetns,
  runEnv,
  service,
  type RunEnv,
} from '../fixtures/netns-run.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 30_000, { env: e.env });

/** ups counts the service's `up` lines in its log: one per run. */
async function ups(e: RunEnv, name: string): Promise<number> {
  const out = (await cli(e, 'logs', name)).stdout;
  return out.split('\n').filter((l) => l === 'up').length;
}

/** hostPort is where `portpub port NAME` says the service's 5000/tcp is published. */
async function hostPort(e: RunEnv, name: string): Promise<number> {
  const out = (await cli(e, 'port', name, '5000')).stdout;
  const m = /^127\.0\.0\.1:(\d+)\n$/.exec(out);
  expect(m, out).not.toBeNull();
  return Number(m![1]);
}

/** startWeb runs `web` detached, its 5000/tcp published on a port of its own, until it is up. */
async function startWeb(e: RunEnv): Promise<{ port: number; id: string }> {
  const port = await reservePorts(1);
  const run = await cli(
    e,
    'run',
    '-d',
    '--name',
    'web',
    '-p',
    `127.0.0.1:${port}:5000`,
    '--',
    ...service('tcp=5000', 'tag=web'),
  );
  expect(run.code, run.stderr).toBe(0);
  await waitFor(async () => (await ups(e, 'web')) === 1, 'web up', 20_000);
  return { port, id: run.stdout.trim() };
}

/** runScript runs `name` detached with `flags` (--rm, a network), a node script, until it is up. */
async function runScript(e: RunEnv, name: string, flags: readonly string[], script: string) {
  const run = await cli(
    e,
    'run',
    '-d',
    ...flags,
    '--name',
    name,
    '--',
    process.execPath,
    '-e',
    script,
  );
  expect(run.code, run.stderr).toBe(0);
  await waitFor(async () => (await ups(e, name)) === 1, `${name} up`, 20_000);
}

async function answers(port: number, tag: string): Promise<void> {
  const socket = track(await connectTcp(port));
  expect(await roundTrip(socket, 'ping')).toBe(`${tag}:ping`);
  socket.destroy();
}

describe('portpub start, restart', { timeout: 120_000 }, () => {
  it('starts a stopped service again: same record, address and log, ports served again', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const { port, id } = await startWeb(e);
    await answers(port, 'web');
    const first = record(e.dir, 'web');

    expect(await cli(e, 'stop', 'web')).toMatchObject({ code: 0, stdout: 'web\n' });
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(0\) .+ ago +web\n$/);

    const start = await cli(e, 'start', 'web');
    expect(start).toMatchObject({ code: 0, stdout: 'web\n', stderr: '' });
    const again = record(e.dir, 'web');
    expect(again).toMatchObject({ id, ip: first.ip, state: { status: 'running' } });
    expect(again.state.pid).not.toBe(first.state.pid);
    expect(again.state.exitCode).toBeUndefined();
    await waitFor(async () => (await ups(e, 'web')) === 2, 'web up again, in the same log', 20_000);
    expect(await hostPort(e, 'web')).toBe(port);
    await answers(port, 'web');
    expect((await cli(e, 'ps')).stdout).toMatch(/Up .+ +web\n$/);

    // A running service is left as it is, as docker start leaves it.
    expect(await cli(e, 'start', 'web')).toMatchObject({ code: 0, stdout: 'web\n' });
    expect(record(e.dir, 'web').state.pid).toBe(again.state.pid);

    // restart: stopped (SIGTERM first: the service says so), then started again.
    const restart = await cli(e, 'restart', '-t', '5', 'web');
    expect(restart).toMatchObject({ code: 0, stdout: 'web\n' });
    expect(alive(again.state.pid!)).toBe(false);
    await waitFor(async () => (await ups(e, 'web')) === 3, 'web up a third time', 20_000);
    expect((await cli(e, 'logs', 'web')).stdout).toContain('got SIGTERM\n');
    await answers(port, 'web');
    expect(await cli(e, 'stop', 'web')).toMatchObject({ code: 0 });
  });

  it('starts a --network host command again, and a foreground run in the background', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const marker = `start-host-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const sleeper = `// ${marker}\nconsole.log("up"); setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0));`;
    const host = await cli(
      e,
      'run',
      '-d',
      '--network',
      'host',
      '--name',
      'onhost',
      '--',
      process.execPath,
      '-e',
      sleeper,
    );
    expect(host.code, host.stderr).toBe(0);
    await waitFor(async () => (await ups(e, 'onhost')) === 1, 'onhost up', 20_000);
    expect(await cli(e, 'stop', 'onhost')).toMatchObject({ code: 0 });
    await waitFor(() => processesWith(marker).length === 0, 'the command gone', 10_000);
    expect(await cli(e, 'start', 'onhost')).toMatchObject({ code: 0, stdout: 'onhost\n' });
    await waitFor(async () => (await ups(e, 'onhost')) === 2, 'onhost up again', 20_000);
    expect(processesWith(marker).length).toBeGreaterThan(0);
    expect(await cli(e, 'stop', 'onhost')).toMatchObject({ code: 0 });
    await waitFor(() => processesWith(marker).length === 0, 'the command gone again', 10_000);

    // A foreground run's record stays once it ended (no --rm): start runs it in the background.
    const fg = await cli(e, 'run', '--name', 'once', '--', 'sh', '-c', 'echo up; exit 3');
    expect(fg).toMatchObject({ code: 3, stdout: 'up\n' });
    expect(await cli(e, 'start', 'once')).toMatchObject({ code: 0, stdout: 'once\n' });
    await waitFor(
      () => record(e.dir, 'once').state.status === 'exited',
      'the started run to end',
      20_000,
    );
    expect(record(e.dir, 'once').state.exitCode).toBe(3);
    expect(await ups(e, 'once')).toBe(2);
  });

  it('restarts a --rm service, on either network, and removes it only when it stops', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const marker = `restart-rm-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const sleeper = `// ${marker}\nconsole.log("up"); setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0));`;
    for (const [name, network] of [
      ['rmown', []],
      ['rmhost', ['--network', 'host']],
    ] as const) {
      await runScript(e, name, ['--rm', ...network], sleeper);
      const first = record(e.dir, name);

      // Docker's daemon keeps a --rm container through a restart: so does portpub.
      expect(await cli(e, 'restart', '-t', '5', name)).toMatchObject({
        code: 0,
        stdout: `${name}\n`,
      });
      await waitFor(async () => (await ups(e, name)) === 2, `${name} up again`, 20_000);
      const again = record(e.dir, name);
      expect(again).toMatchObject({ id: first.id, state: { status: 'running' } });
      expect(again.state.pid).not.toBe(first.state.pid);
      expect(again.state.keepOnStop).toBeUndefined();
      expect(alive(first.state.pid!)).toBe(false);

      // A stop is still the end of it.
      expect(await cli(e, 'stop', name)).toMatchObject({ code: 0 });
      expect(records(e.dir).some((r) => r.name === name)).toBe(false);
    }
    await waitFor(() => processesWith(marker).length === 0, 'the commands gone', 10_000);

    // What start cannot run again is refused before the stop, so it goes on serving.
    const plain = await cli(e, '-d', '--name', 'plain', '-p', `127.0.0.1::5000`);
    expect(plain.code, plain.stderr).toBe(0);
    const refused = await cli(e, 'restart', 'plain');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('plain is a portpub -d service');
    expect(record(e.dir, 'plain').state.status).toBe('running');
    expect(alive(record(e.dir, 'plain').state.pid!)).toBe(true);
    expect(await cli(e, 'stop', 'plain')).toMatchObject({ code: 0 });
  });

  it("start -a: this run's output, the signals passed on, its exit code, --rm too", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    // A stopped service: only this run's output, none of portpub's own lines, its exit code.
    const fg = await cli(e, 'run', '--name', 'once', '--', 'sh', '-c', 'echo up; exit 3');
    expect(fg).toMatchObject({ code: 3, stdout: 'up\n' });
    const attached = await cli(e, 'start', '-a', 'once');
    expect(attached).toMatchObject({ code: 3, stdout: 'up\n', stderr: '' });
    expect(await ups(e, 'once')).toBe(2);

    // docker start's refusal, and no stdin to attach: usage errors, nothing started.
    const two = await cli(e, 'start', '-a', 'once', 'once');
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('you cannot start and attach multiple containers at once');
    const stdin = await cli(e, 'start', '-i', 'once');
    expect(stdin.code).toBe(2);
    expect(stdin.stderr).toContain("run it in the foreground with 'portpub run -i'");
    expect(await ups(e, 'once')).toBe(2);

    // Joining a running --rm service, on either network: SIGINT reaches the command, which
    // exits 5; the record, kept until the exit code was read, is gone after.
    const marker = `attach-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const script =
      `// ${marker}\nconsole.log("up"); setInterval(() => console.log("tick"), 200);\n` +
      'process.on("SIGINT", () => { console.log("got SIGINT"); process.exit(5); });';
    for (const [name, network] of [
      ['attown', []],
      ['atthost', ['--network', 'host']],
    ] as const) {
      await runScript(e, name, ['--rm', ...network], script);
      const attach = spawnCli(['start', '-a', name], { env: e.env });
      // A tick shown: attached, its signal handlers in place.
      await waitFor(() => attach.stdout().includes('tick\n'), `${name} attached`, 20_000);
      attach.child.kill('SIGINT');
      const end = await withTimeout(attach.exited, 20_000, `start -a ${name} to exit`);
      expect(end.code, end.stderr).toBe(5);
      expect(end.stdout).toMatch(/^(tick\n)+got SIGINT\n$/);
      expect(end.stderr).toBe('');
      expect(records(e.dir).some((r) => r.name === name)).toBe(false);
    }
    await waitFor(() => processesWith(marker).length === 0, 'the commands gone', 10_000);
  });

  it('start -a: a signal that comes while the service starts reaches it once it runs', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const marker = `attach-early-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const script =
      'process.on("SIGINT", () => { console.log("got SIGINT"); process.exit(5); });\n' +
      `// ${marker}\nconsole.log("up"); setInterval(() => {}, 1000);\n`;
    for (const [name, network] of [
      ['early', []],
      ['earlyhost', ['--network', 'host']],
    ] as const) {
      await runScript(e, name, network, script);
      expect(await cli(e, 'stop', name)).toMatchObject({ code: 0 });
      const { id } = record(e.dir, name);
      const attach = spawnCli(['start', '-a', name], { env: e.env });
      // Its attacher's file is written once its signal handlers are in place, before the start:
      // the SIGINT lands while the service is starting (its portpub, a new node, is not up yet).
      const registered = join(e.dir, 'containers', id, 'attached', String(attach.child.pid));
      await waitFor(() => existsSync(registered), `${name}'s attacher registered`, 20_000);
      attach.child.kill('SIGINT');
      const end = await withTimeout(attach.exited, 20_000, `start -a ${name} to exit`);
      // The command got it: by its handler (5), or, still loading, by the signal itself (130).
      expect([5, 130], `${end.code} ${end.stdout} ${end.stderr}`).toContain(end.code);
      expect(record(e.dir, name).state).toMatchObject({ status: 'exited', exitCode: end.code });
    }
    await waitFor(() => processesWith(marker).length === 0, 'the commands gone', 10_000);
  });

  it('start -a killed after a --rm service ended: the record goes at the next listing', async () => {
    const e = runEnv();
    const marker = `attach-killed-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const script = `// ${marker}\nconsole.log("up"); setInterval(() => console.log("tick"), 200);`;
    await runScript(e, 'left', ['--rm', '--network', 'host'], script);
    const attach = spawnCli(['start', '-a', 'left'], { env: e.env });
    await waitFor(() => attach.stdout().includes('tick\n'), 'left attached', 20_000);
    // The attacher, stopped, cannot read the exit code: the service that ends is kept for it.
    attach.child.kill('SIGSTOP');
    expect(await cli(e, 'stop', 'left')).toMatchObject({ code: 0 });
    expect(record(e.dir, 'left').state).toMatchObject({ status: 'exited', exitCode: 143 });
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(143\) .+ ago +left\n$/);
    // Killed before it removed it: no listing shows it after, as none shows a --rm one in Docker.
    attach.child.kill('SIGKILL');
    await withTimeout(attach.exited, 20_000, 'start -a to die');
    expect((await cli(e, 'ps', '-a')).stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect(records(e.dir).some((r) => r.name === 'left')).toBe(false);
    expect(await cli(e, 'logs', 'left')).toMatchObject({
      code: 1,
      stderr: 'portpub: No such container: left\n',
    });
  });

  it('refuses what it cannot start, exit 1, and leaves nothing running', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const missing = await cli(e, 'start', 'nosuch');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('No such container: nosuch');

    // Its port taken meanwhile: Docker's bind words, then which service failed.
    const { port } = await startWeb(e);
    expect(await cli(e, 'stop', 'web')).toMatchObject({ code: 0 });
    const squatter = net.createServer();
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen(port, '127.0.0.1', resolve);
    });
    track(squatter, (s) => s.close());
    const busy = await cli(e, 'start', 'web');
    expect(busy.code).toBe(1);
    expect(busy.stdout).toBe('');
    expect(busy.stderr).toContain(`127.0.0.1:${port}`);
    expect(busy.stderr).toContain('address already in use');
    expect(busy.stderr).toContain('portpub: failed to start web');
    const failed = record(e.dir, 'web');
    expect(failed.state.status).toBe('exited');
    expect(failed.state.pid === undefined || !alive(failed.state.pid)).toBe(true);
    expect(await ups(e, 'web')).toBe(1);

    // A plain `portpub -d` serves its command line: start refuses it, naming what it is.
    const plain = await cli(e, '-d', '--name', 'plain', '-p', `127.0.0.1::5000`);
    expect(plain.code, plain.stderr).toBe(0);
    const refused = await cli(e, 'start', 'plain');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('plain is a portpub -d service');
    expect(await cli(e, 'stop', 'plain')).toMatchObject({ code: 0 });

    // A --rm service that cannot run again after restart's stop is removed, log and all: the
    // error says so, where it would point at the log of any other service.
    const script = join(dirname(e.dir), 'gone.sh');
    writeFileSync(script, '#!/bin/sh\necho up\nexec sleep 1000\n', { mode: 0o755 });
    const rm = await cli(e, 'run', '-d', '--rm', '--name', 'rmgone', '--', script);
    expect(rm.code, rm.stderr).toBe(0);
    await waitFor(async () => (await ups(e, 'rmgone')) === 1, 'rmgone up', 20_000);
    unlinkSync(script);
    const gone = await cli(e, 'restart', '-t', '5', 'rmgone');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`${script}: command not found`);
    expect(gone.stderr).toContain(
      'portpub: failed to start rmgone (its portpub ended with 127; run with --rm, it was removed)',
    );
    expect(records(e.dir).some((r) => r.name === 'rmgone')).toBe(false);
  });
});
