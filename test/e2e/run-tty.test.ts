// `portpub run -t`, through the built CLI, in a network of its own and on the host's: the command
// gets a terminal of its own (util-linux's script allocates it), its exit status and the signals
// `stop` sends are its own, `-it` reads the user's terminal (typing and Ctrl-C reach the command
// through its terminal), and what docker run refuses is refused before anything starts.
import { describe, expect, it } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { waitFor, withDeadline } from '../helpers/net.js';
import {
  alive,
  killMarkedOnFinish,
  onTerminal,
  processesWith,
  record,
  records,
  requireNetns,
  requireScript,
  runEnv,
} from '../fixtures/netns-run.js';

const NETWORKS = [
  { name: 'own network', extra: [] as string[] },
  { name: '--network host', extra: ['--network', 'host'] },
];

/** ON_TTY prints which of stdin, stdout and stderr are terminals, then a word with a quote in it. */
const ON_TTY = `for fd in 0 1 2; do if test -t $fd; then echo "$fd:tty"; else echo "$fd:no"; fi; done; echo "it's" >&2; exit 3`;

describe('portpub run -t', { timeout: 90_000 }, () => {
  it.for(NETWORKS)(
    'the command runs on a terminal of its own, its exit status passed on: $name',
    async ({ extra }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      const base = ['run', '--log-level', 'warn', ...extra];
      const withTty = await runCli([...base, '-t', '--', 'sh', '-c', ON_TTY], 30_000, {
        env: e.env,
      });
      // A terminal's line ends, and stderr on the same terminal as stdout, as under docker run -t.
      expect(withTty.stdout).toBe(`0:tty\r\n1:tty\r\n2:tty\r\nit's\r\n`);
      expect(withTty.code).toBe(3);
      const without = await runCli([...base, '--', 'sh', '-c', ON_TTY], 30_000, { env: e.env });
      expect(without.stdout).toBe('0:no\n1:no\n2:no\n');
      expect(without.stderr).toContain("it's\n");
      expect(without.code).toBe(3);
    },
  );

  it.for(NETWORKS)(
    "a command that cannot run fails as without -t: 127 and portpub's line: $name",
    async ({ extra }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      const r = await runCli(
        ['run', '--log-level', 'warn', ...extra, '-t', 'no-such-command'],
        30_000,
        {
          env: e.env,
        },
      );
      expect(r.code).toBe(127);
      expect(r.stderr).toContain('portpub: no-such-command: command not found');
    },
  );

  it.for(NETWORKS)(
    "-d -t: stop's SIGTERM reaches the command, whose own exit status is kept: $name",
    async ({ extra }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      // One that handles SIGTERM (exit 7), one that dies of it (143).
      const trapper = `trap 'echo got TERM; exit 7' TERM; echo up; while :; do sleep 0.1; done`;
      for (const [name, cmd] of [
        ['trapper', ['sh', '-c', trapper]],
        ['sleeper', ['sleep', '60']],
      ] as const) {
        const d = await runCli(
          ['run', '-d', '-t', ...extra, '--name', name, '--', ...cmd],
          30_000,
          {
            env: e.env,
          },
        );
        expect(d.code, d.stderr).toBe(0);
      }
      await waitFor(
        async () =>
          (await runCli(['logs', 'trapper'], 15_000, { env: e.env })).stdout.includes('up'),
        'the trapper to trap',
        20_000,
      );
      const stop = await runCli(['stop', 'trapper', 'sleeper'], 30_000, { env: e.env });
      expect(stop.code, stop.stderr).toBe(0);
      expect(record(e.dir, 'trapper').state).toMatchObject({ status: 'exited', exitCode: 7 });
      expect(record(e.dir, 'sleeper').state).toMatchObject({ status: 'exited', exitCode: 143 });
      const logs = await runCli(['logs', 'trapper'], 15_000, { env: e.env });
      expect(logs.stdout).toContain('got TERM\r\n');
    },
  );

  it.for(NETWORKS)(
    '-d -t without -i: a read of the terminal waits, as under docker run -dt: $name',
    async ({ extra }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      // script(1) fed from /dev/null would pass an end-of-file on, and the read would end at once.
      const cmd = ['sh', '-c', 'echo ready; read x; echo "read:$?"'];
      const d = await runCli(
        ['run', '-d', '-t', ...extra, '--name', 'reader', '--', ...cmd],
        30_000,
        {
          env: e.env,
        },
      );
      expect(d.code, d.stderr).toBe(0);
      await waitFor(
        async () =>
          (await runCli(['logs', 'reader'], 15_000, { env: e.env })).stdout.includes('ready'),
        'the reader to start',
        20_000,
      );
      expect(record(e.dir, 'reader').state.status).toBe('running');
      const stop = await runCli(['stop', 'reader'], 30_000, { env: e.env });
      expect(stop.code, stop.stderr).toBe(0);
      // Still in its read when SIGTERM came: it died of it, and never printed what read returned.
      expect(record(e.dir, 'reader').state).toMatchObject({ status: 'exited', exitCode: 143 });
      expect((await runCli(['logs', 'reader'], 15_000, { env: e.env })).stdout).not.toContain(
        'read:',
      );
    },
  );

  it.for(NETWORKS)(
    '-t: a second stop signal kills a command that survives the first: $name',
    async ({ extra }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      const cmd = ['sh', '-c', `trap 'echo term' TERM; echo ready; while :; do sleep 0.1; done`];
      const run = await startCli(
        ['run', '--log-level', 'warn', '-t', ...extra, '--', ...cmd],
        1,
        30_000,
        {
          env: e.env,
        },
      );
      let out = run.lines.join('\n');
      run.child.stdout?.on('data', (d: string) => (out += d));
      run.child.kill('SIGTERM');
      // Two signals sent at once could arrive as one: the second goes once the first has been heard.
      await waitFor(() => out.includes('term'), 'the command to trap the first SIGTERM', 20_000);
      run.child.kill('SIGTERM');
      const r = await withDeadline(run.exited, 20_000, 'portpub to exit after a second SIGTERM');
      expect(r.code).toBe(137);
    },
  );

  // The ways a service ends at once or outright: its command must not stay behind.
  const STOPS = [
    { how: 'stop -t 1', sigkill: false, args: ['stop', '-t', '1'] },
    { how: 'stop -t 0', sigkill: false, args: ['stop', '-t', '0'] },
    { how: 'portpub SIGKILLed, then stop', sigkill: true, args: ['stop'] },
  ];
  it.for(NETWORKS.flatMap((n) => STOPS.map((s) => ({ ...n, ...s }))))(
    '-d -t: $how leaves nothing of a command that ignores SIGTERM and SIGHUP: $name',
    async ({ extra, sigkill, args }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      const marker = `stubborn-${process.pid}-${Date.now()}`;
      killMarkedOnFinish(marker);
      // On the host's network script's session keeps the command out of portpub's process group.
      const cmd = `trap '' TERM HUP; echo up; while :; do sleep 0.1; done`;
      const d = await runCli(
        ['run', '-d', '-t', ...extra, '--name', 'stubborn', '--', 'sh', '-c', cmd, marker],
        30_000,
        { env: e.env },
      );
      expect(d.code, d.stderr).toBe(0);
      await waitFor(
        async () =>
          (await runCli(['logs', 'stubborn'], 15_000, { env: e.env })).stdout.includes('up'),
        'the command to trap',
        20_000,
      );
      expect(processesWith(marker).length).toBeGreaterThan(0);
      if (sigkill) {
        // As the OOM killer or a kill -9 would: the portpub dies without a word.
        const pid = record(e.dir, 'stubborn').state.pid!;
        process.kill(pid, 'SIGKILL');
        await waitFor(() => !alive(pid), 'the portpub to be gone', 10_000);
      }
      const stop = await runCli([...args, 'stubborn'], 30_000, { env: e.env });
      expect(stop.code, stop.stderr).toBe(0);
      expect(record(e.dir, 'stubborn').state).toMatchObject({ status: 'exited', exitCode: 137 });
      // What SIGKILL ended may take a moment to be reaped; nothing may stay.
      await waitFor(() => processesWith(marker).length === 0, 'no process of the command', 10_000);
    },
  );

  it.for(NETWORKS)(
    '-it without a terminal on stdin is refused before anything starts, exit 1: $name',
    async ({ extra }, ctx) => {
      requireNetns(ctx);
      const e = runEnv();
      const r = await runCli(['run', ...extra, '-it', '--name', 'notty', '--', 'true'], 30_000, {
        env: e.env,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('the input device is not a TTY');
      expect(records(e.dir)).toEqual([]);
    },
  );

  it('without script(1) on PATH, -t is refused with what to install, exit 1', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const r = await runCli(['run', '-t', '--name', 'noscript', '--', 'true'], 30_000, {
      env: { ...e.env, PATH: '/nonexistent' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('-t: script was not found on PATH');
    expect(r.stderr).toContain('util-linux');
    expect(records(e.dir)).toEqual([]);
  });

  it.for(NETWORKS)(
    '-it on a terminal: typing and Ctrl-C reach the command through its terminal: $name',
    async ({ extra }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      const command = `trap 'echo got INT; exit 5' INT; echo ready; read line; echo "read:$line"; while :; do sleep 0.1; done`;
      const t = onTerminal(
        ['run', '-it', '--log-level', 'warn', ...extra, '--', 'sh', '-c', command],
        e,
      );
      await waitFor(() => t.output().includes('ready'), 'the command to start', 20_000);
      t.child.stdin.write('hello\r');
      await waitFor(() => t.output().includes('read:hello'), 'the typed line to be read', 20_000);
      t.child.stdin.write('\x03');
      await waitFor(
        () => t.output().includes('got INT'),
        'the Ctrl-C to reach the command',
        20_000,
      );
      t.child.stdin.end();
      // The command's own exit status: it handled the one SIGINT its terminal sent.
      expect(await withDeadline(t.exited, 20_000, 'portpub to exit')).toBe(5);
      expect(t.output().match(/got INT/g)).toHaveLength(1);
    },
  );
});
