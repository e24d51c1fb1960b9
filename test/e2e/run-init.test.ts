// `portpub run --init`, as `docker run --init`: tini is PID 1 in the service's namespaces and
// reaps the processes orphaned there, which under the agent alone stay zombies until the service
// stops. The service is otherwise the same: its exit code, exec, stop, start -a, a terminal.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/net.js';
import { needs } from '../helpers/udp.js';
import {
  onTerminal,
  record,
  records,
  requireNetns,
  requireScript,
  runEnv,
  type RunEnv,
} from '../fixtures/netns-run.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 30_000, { env: e.env });

function requireTini(ctx: Parameters<typeof requireNetns>[0]): void {
  requireNetns(ctx);
  const found = spawnSync('sh', ['-c', 'command -v tini']).status === 0;
  needs(ctx, [!found && 'tini (Debian package tini)']);
}

/** Process is one process below a portpub, as the host sees it. */
interface Proc {
  pid: number;
  comm: string;
  state: string;
}

/** below lists every process below `pid` (children first, depth first), with its state. */
function below(pid: number): Proc[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((c) => c !== '')
      .map(Number);
  } catch {
    return [];
  }
  return children.flatMap((c) => {
    try {
      const stat = readFileSync(`/proc/${c}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
      return [{ pid: c, comm, state }, ...below(c)];
    } catch {
      return []; // gone meanwhile
    }
  });
}

// A shell that leaves an orphan (the subshell's sleep, whose parent ends at once) that ends soon
// after, then waits as long as the test needs.
const ORPHAN = ['sh', '-c', '(sleep 0.2 &); echo up; exec sleep 60'];

describe('portpub run --init', () => {
  it('reaps an orphan that the agent alone leaves a zombie; exec, stop, inspect', async (ctx) => {
    requireTini(ctx);
    const e = runEnv();
    for (const [name, init] of [
      ['plain', []],
      ['inited', ['--init']],
    ] as const) {
      const run = await cli(e, 'run', '-d', ...init, '--name', name, '--', ...ORPHAN);
      expect(run.code, run.stderr).toBe(0);
    }
    const pid = (name: string) => record(e.dir, name).state.pid!;
    await waitFor(() => records(e.dir).every((r) => r.state.pid !== undefined), 'both up', 20_000);
    // Without an init the orphan, once it has ended, stays a zombie: what the check below sees.
    await waitFor(
      () => below(pid('plain')).some((p) => p.comm === 'sleep' && p.state === 'Z'),
      "the plain service's zombie",
      20_000,
    );
    // With one, tini is PID 1 (the unshare's child) and the orphan is reaped: only the
    // command's own sleep is left, never a zombie.
    // (Until the shell has become `sleep 60` and its subshell and the orphan have ended, a
    // `sh` is in the tree or two sleeps are.)
    await waitFor(
      () => {
        const t = below(pid('inited'));
        return t.filter((p) => p.comm === 'sleep').length === 1 && !t.some((p) => p.comm === 'sh');
      },
      'the orphan of the --init service to end',
      20_000,
    );
    const tree = below(pid('inited'));
    expect(tree.map((p) => p.comm).slice(0, 2)).toEqual(['unshare', 'tini']);
    expect(tree.filter((p) => p.state === 'Z')).toEqual([]);

    const exec = await cli(e, 'exec', 'inited', 'sh', '-c', 'echo in $(hostname)');
    expect(exec).toMatchObject({
      code: 0,
      stdout: `in ${record(e.dir, 'inited').id.slice(0, 12)}\n`,
    });
    const inspect = async (name: string) =>
      JSON.parse((await cli(e, 'inspect', '-f', '{{json .HostConfig}}', name)).stdout) as Record<
        string,
        unknown
      >;
    expect((await inspect('inited')).Init).toBe(true);
    expect('Init' in (await inspect('plain'))).toBe(false);
    for (const name of ['plain', 'inited']) {
      expect(await cli(e, 'stop', name)).toMatchObject({ code: 0, stdout: `${name}\n` });
      expect(record(e.dir, name).state).toMatchObject({ status: 'exited', exitCode: 143 });
    }
    // Started again, it runs under tini again (the record keeps --init).
    expect(await cli(e, 'start', 'inited')).toMatchObject({ code: 0 });
    await waitFor(() => below(pid('inited'))[1]?.comm === 'tini', 'tini after start', 20_000);
    expect(await cli(e, 'stop', 'inited')).toMatchObject({ code: 0 });
  });

  it("passes the command's exit code in the foreground; -i on a terminal is refused", async (ctx) => {
    requireTini(ctx);
    requireScript(ctx);
    const e = runEnv();
    expect(
      await cli(e, 'run', '--init', '--rm', '--', 'sh', '-c', 'echo hi; exit 3'),
    ).toMatchObject({ code: 3, stdout: 'hi\n' });
    // With -i on a terminal tini would take the terminal from portpub: refused, nothing run.
    const term = onTerminal(['run', '--init', '-it', '--rm', '--', 'sh', '-c', 'echo ran'], e);
    expect(await term.exited).toBe(2);
    expect(term.output()).toContain('--init cannot be used with -i on a terminal');
    expect(term.output()).not.toContain('ran');
    expect(records(e.dir)).toEqual([]);
    // -t alone (stdin not the terminal) runs under tini.
    const tty = await cli(
      e,
      'run',
      '--init',
      '-t',
      '--rm',
      '--',
      'sh',
      '-c',
      'test -t 1 && exit 7',
    );
    expect(tty.code, tty.stderr).toBe(7);
  });

  it('without tini: exit 1, saying what to install, nothing created', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const r = await runCli(['run', '--init', '--', 'true'], 30_000, {
      env: { ...e.env, PATH: '/nonexistent' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--init: no init found in PATH: install tini');
    expect(records(e.dir)).toEqual([]);
    // On the host's network no init is needed (nor run): the command runs as without --init.
    const host = await runCli(
      ['run', '--init', '--network', 'host', '--rm', '--', '/bin/sh', '-c', 'exit 4'],
      30_000,
      { env: { ...e.env, PATH: '/nonexistent' } },
    );
    expect(host.code, host.stderr).toBe(4);
  });
});
