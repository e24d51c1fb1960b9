// The commands that follow (logs -f, stats, top, start -a) end once whoever reads their output
// goes away, as Docker's CLI ends killed by SIGPIPE (`portpub logs -f web | grep -m1 ready`), with
// SIGPIPE's status, 141; the service they followed runs on (src/cli/reader-gone.ts). A foreground
// run's command gets the SIGPIPE its write to that reader would have got (src/cli/run-output.ts).
// Each runs as users run it, in a shell pipeline into `head -n 1`, whose status pipefail gives.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { echoServer, waitFor } from '../helpers/net.js';
import {
  killMarkedOnFinish,
  record,
  requireNetns,
  runEnv,
  type RunEnv,
} from '../fixtures/netns-run.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 30_000, { env: e.env });

/** intoHead runs `portpub ARGS | head -n 1` under bash's pipefail: the status is portpub's. */
async function intoHead(
  e: RunEnv,
  args: string[],
): Promise<{ code: number | null; out: string; err: string }> {
  const shell = spawnCli(
    ['-c', 'set -o pipefail; "$@" | head -n 1', 'bash', process.execPath, BIN, ...args],
    {
      env: e.env,
      argv0: ['bash'],
    },
  );
  const end = await withTimeout(
    shell.exited,
    30_000,
    `portpub ${args.join(' ')} | head -n 1 to end`,
  );
  return { code: end.code, out: end.stdout, err: end.stderr };
}

describe('a following command whose reader goes away', { timeout: 90_000 }, () => {
  it('logs -f and start -a end with 141; the service runs on, nobody attached', async () => {
    const e = runEnv();
    const marker = `reader-gone-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const script = `// ${marker}\nconsole.log("up"); setInterval(() => console.log("tick"), 100);`;
    const run = await cli(
      e,
      'run',
      '-d',
      '--rm',
      '--network',
      'host',
      '--name',
      'ticker',
      '--',
      process.execPath,
      '-e',
      script,
    );
    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.trim();
    await waitFor(
      async () => (await cli(e, 'logs', 'ticker')).stdout.includes('tick\n'),
      'ticker up',
      20_000,
    );

    expect(await intoHead(e, ['logs', '-f', 'ticker'])).toMatchObject({ code: 141, err: '' });
    expect(await intoHead(e, ['start', '-a', 'ticker'])).toMatchObject({
      code: 141,
      out: 'tick\n',
      err: '',
    });
    // The attacher went, leaving no registration: the service's end is its own again.
    expect(readdirSync(join(e.dir, 'containers', id, 'attached'))).toEqual([]);
    expect(record(e.dir, 'ticker').state.status).toBe('running');
    expect((await cli(e, 'ps')).stdout).toMatch(/Up .+ ticker\n$/);
    expect(await cli(e, 'stop', 'ticker')).toMatchObject({ code: 0 });
    expect((await cli(e, 'ps', '-a')).stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('run in the foreground: the command gets SIGPIPE, on either network', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    for (const network of [[], ['--network', 'host']]) {
      const yes = await intoHead(e, ['run', '--rm', ...network, '--', 'yes']);
      expect(yes, network.join(' ')).toMatchObject({ code: 141, out: 'y\n' });
    }
    // A command that ignores SIGPIPE (node does) is told by its failing write: it ends too.
    const marker = `reader-gone-node-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const script = `// ${marker}\nsetInterval(() => console.log("y"), 5);`;
    const ignorer = await intoHead(e, ['run', '--rm', '--', process.execPath, '-e', script]);
    expect(ignorer.out).toBe('y\n');
    expect(ignorer.code, ignorer.err).not.toBe(0);
    expect((await cli(e, 'ps', '-a')).stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('run in the foreground: a reader gone ends a --restart always service too', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    // Docker's CLI dies of that SIGPIPE; a foreground portpub, the service itself, ends with it
    // rather than run `yes` again for nobody.
    const yes = await intoHead(e, ['run', '--name', 'again', '--restart', 'always', '--', 'yes']);
    expect(yes).toMatchObject({ code: 141, out: 'y\n' });
    expect(record(e.dir, 'again').state).toMatchObject({ status: 'exited', exitCode: 141 });
  });

  it("run in the foreground: portpub's own lines meeting a closed stderr end nothing", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    // Its stderr's reader gone before it starts: portpub's INFO lines fail, the command, which
    // never writes there, runs to its end.
    const run = spawnCli(['run', '--rm', '--', 'sh', '-c', 'sleep 1; echo done'], { env: e.env });
    run.child.stderr?.destroy();
    const end = await withTimeout(run.exited, 30_000, 'the run to end');
    expect(end).toMatchObject({ code: 0, stdout: 'done\n' });
  });

  it('stats and top end with 141 at their next frame', async () => {
    const e = runEnv();
    const echo = await echoServer();
    const fwd = spawnCli(['--name', 'fwd', '-p', `127.0.0.1::${echo.port}`], { env: e.env });
    await waitFor(() => fwd.stdout().includes('->'), 'the forwarder serving', 20_000);
    for (const view of ['stats', 'top']) {
      const r = await intoHead(e, [view, '--interval', '50ms', 'fwd']);
      expect(r, view).toMatchObject({ code: 141, err: '' });
      expect(r.out).toMatch(/^SERVICE /);
    }
    fwd.child.kill('SIGTERM');
    expect((await withTimeout(fwd.exited, 20_000, 'the forwarder to stop')).code).toBe(0);
  });
});
