// portpub run --restart, as docker run --restart: a service whose command ends is run again by the
// same portpub after Docker's delays, on either network, in the foreground and the background;
// a stop ends it, during a run or a wait, and nothing restarts it after.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';
import { alive, record, requireNetns, runEnv, type RunEnv } from '../fixtures/netns-run.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 30_000, { env: e.env });

/** runs counts the `run` lines the command wrote to the service's log: one per run. */
async function runs(e: RunEnv, name: string): Promise<number> {
  const out = (await cli(e, 'logs', name)).stdout;
  return out.split('\n').filter((l) => l === 'run').length;
}

/** detach runs `run -d ARGS --name NAME -- sh -c SCRIPT` and expects it to start. */
async function detach(e: RunEnv, name: string, args: string[], script: string): Promise<void> {
  const d = await cli(e, 'run', '-d', ...args, '--name', name, '--', 'sh', '-c', script);
  expect(d.code, d.stderr).toBe(0);
}

const NETWORKS = [
  { name: 'a network of its own', args: [] as string[] },
  { name: '--network host', args: ['--network', 'host'] },
];

describe('portpub run --restart', { timeout: 120_000 }, () => {
  it.for(NETWORKS)('on-failure:N runs a failing command N more times: $name', async (net, ctx) => {
    if (net.args.length === 0) requireNetns(ctx);
    const e = runEnv();
    await detach(e, 'flaky', ['--restart', 'on-failure:2', ...net.args], 'echo run; exit 3');
    await waitFor(
      () => record(e.dir, 'flaky').state.status === 'exited',
      'flaky to stay down',
      20_000,
    );
    expect(await runs(e, 'flaky')).toBe(3);
    const seen = await cli(
      e,
      'inspect',
      '-f',
      '{{.RestartCount}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy}}',
      'flaky',
    );
    expect(seen).toMatchObject({ code: 0, stdout: '2 3 {on-failure 2}\n' });
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(3\) .+ flaky\n$/);

    // In the foreground too: the runs' output, then the last one's exit status.
    const fg = await cli(
      e,
      'run',
      '--restart',
      'on-failure:1',
      ...net.args,
      '--',
      'sh',
      '-c',
      'echo run; exit 4',
    );
    expect(fg).toMatchObject({ code: 4, stdout: 'run\nrun\n' });
  });

  it.for(NETWORKS)(
    'always runs it again until a stop, which ends a wait too: $name',
    async (net, ctx) => {
      if (net.args.length === 0) requireNetns(ctx);
      const e = runEnv();
      await detach(e, 'loop', ['--restart', 'always', ...net.args], 'echo run; exit 0');
      const first = record(e.dir, 'loop').state.pid!;
      // From the fifth restart on it waits 1.6 s and more: ps catches it waiting, as Docker shows it.
      await waitFor(
        () => (record(e.dir, 'loop').state.restartCount ?? 0) >= 5,
        'five restarts',
        20_000,
      );
      await waitFor(
        async () => /Restarting \(0\) .+ loop\n$/.test((await cli(e, 'ps')).stdout),
        'ps to show it restarting',
        20_000,
      );
      // Read once per try: between two reads a wait may end and a run begin.
      let waiting = record(e.dir, 'loop');
      await waitFor(
        () => (waiting = record(e.dir, 'loop')).state.restarting === true,
        'the record to show the wait',
        20_000,
      );
      expect(waiting.state).toMatchObject({ status: 'running', pid: first });
      // As Docker's: inspect says restarting, with no pid; exec is refused with its words.
      await waitFor(
        async () =>
          (
            await cli(
              e,
              'inspect',
              '-f',
              '{{.State.Status}} {{.State.Restarting}} {{.State.Pid}}',
              'loop',
            )
          ).stdout === 'restarting true 0\n',
        'inspect to show the wait',
        20_000,
      );
      await waitFor(
        async () =>
          (await cli(e, 'exec', 'loop', 'true')).stderr.includes(
            'is restarting, wait until the container is running',
          ),
        'exec to be refused during the wait',
        20_000,
      );
      // start -a too, as Docker's daemon refuses an attach then: exit 1, nothing else done.
      await waitFor(
        async () => {
          const r = await cli(e, 'start', '-a', 'loop');
          return (
            r.code === 1 &&
            r.stdout === '' &&
            r.stderr.includes('container loop is restarting, wait until the container is running')
          );
        },
        'start -a to be refused during the wait',
        20_000,
      );
      // One run before each restart: the one it waits to start has not written yet.
      expect(await runs(e, 'loop')).toBeGreaterThanOrEqual(waiting.state.restartCount!);

      expect(await cli(e, 'stop', 'loop')).toMatchObject({ code: 0, stdout: 'loop\n' });
      const stopped = record(e.dir, 'loop');
      expect(stopped.state.status).toBe('exited');
      expect(stopped.state.restarting).toBeUndefined();
      expect(alive(first)).toBe(false);
      const after = await runs(e, 'loop');
      // start runs it again, the count starting over, as docker start does.
      expect(await cli(e, 'start', 'loop')).toMatchObject({ code: 0 });
      await waitFor(async () => (await runs(e, 'loop')) > after, 'a run after start', 20_000);
      expect(await cli(e, 'stop', 'loop')).toMatchObject({ code: 0 });
    },
  );

  it('binds a fixed -p port again for the next run', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const port = await reservePorts(1);
    const dir = mkdtempSync(join(tmpdir(), 'portpub-restart-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    // The first run fails at once; the second one stays.
    const flag = join(dir, 'ran');
    const script = `echo run; if [ -e '${flag}' ]; then exec sleep 60; fi; : > '${flag}'; exit 3`;
    await detach(e, 'rebind', ['--restart', 'on-failure', '-p', `127.0.0.1:${port}:5000`], script);
    await waitFor(async () => (await runs(e, 'rebind')) === 2, 'the second run', 20_000);
    await waitFor(
      async () => (await cli(e, 'port', 'rebind', '5000')).stdout === `127.0.0.1:${port}\n`,
      'the port bound again',
      20_000,
    );
    expect(record(e.dir, 'rebind').state).toMatchObject({ status: 'running', restartCount: 1 });
    expect(await cli(e, 'stop', 'rebind')).toMatchObject({ code: 0 });
  });

  it('refuses --restart with --rm, and a policy Docker does not know, exit 2', async () => {
    const e = runEnv();
    const both = await cli(e, 'run', '--rm', '--restart', 'always', '--', 'true');
    expect(both).toMatchObject({ code: 2, stdout: '' });
    expect(both.stderr).toContain('conflicting options: cannot specify both --restart and --rm');
    const bad = await cli(e, 'run', '--restart', 'sometimes', '--', 'true');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("invalid restart policy: unknown policy 'sometimes'");
    // --rm with the default policy is fine.
    expect(
      await cli(e, 'run', '--rm', '--restart', 'no', '--network', 'host', '--', 'true'),
    ).toMatchObject({ code: 0 });
  });
});
