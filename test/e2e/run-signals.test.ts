// How a `portpub run` service hears signals and faults, through the built CLI: one Ctrl-C on a
// terminal is one SIGINT for the command (as under docker run), with or without -i; the agent's
// death takes the service down with a clear line and lets its ports go.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { childrenOf } from '../../src/netns/enter.js';
import { runCli, startCli } from '../helpers/cli.js';
import { waitFor, withDeadline } from '../helpers/net.js';
import {
  exchange,
  holders,
  onTerminal,
  record,
  records,
  requireNetns,
  requireScript,
  runEnv,
  service,
  type RunEnv,
} from '../fixtures/netns-run.js';

/**
 * COUNTER counts the SIGINTs it gets; the first starts a 1 s exit, time for a second one sent for
 * the same Ctrl-C (the defect: the terminal's and portpub's own) to arrive, and it prints the count.
 */
const COUNTER = `
let n = 0;
process.on('SIGINT', () => {
  n++;
  if (n === 1) setTimeout(() => { console.log('SIGINTS ' + n); process.exit(0); }, 1000);
});
console.log('up');
setInterval(() => {}, 1000);
`;

describe('portpub run: signals', { timeout: 90_000 }, () => {
  it.for([
    { name: 'run', extra: [] as string[], stdin: '' },
    { name: 'run -i', extra: ['-i'], stdin: '' },
    // On the host's network the command shares portpub's process group (to read the terminal),
    // so the terminal's Ctrl-C reaches it itself, whatever stdin is.
    { name: 'run --network host', extra: ['--network', 'host'], stdin: '' },
    { name: 'run --network host </dev/null', extra: ['--network', 'host'], stdin: ' </dev/null' },
  ])(
    'one Ctrl-C on a terminal is one SIGINT for the command: $name',
    async ({ extra, stdin }, ctx) => {
      requireNetns(ctx);
      requireScript(ctx);
      const e = runEnv();
      const t = onTerminal(
        ['run', ...extra, '--name', 'tty', '--', process.execPath, '-e', COUNTER],
        e,
        stdin,
      );
      // The service runs and portpub listens for signals once its record says running.
      // On the host's network there is no record: the command's `up` is the sign.
      const host = extra.includes('host');
      await waitFor(
        () => t.output().includes('up') && (host || records(e.dir)[0]?.state.status === 'running'),
        'the service to run',
        20_000,
      );
      t.child.stdin.write('\x03');
      await waitFor(
        () => t.output().includes('SIGINTS'),
        'the command to count its signals',
        20_000,
      );
      expect(t.output()).toMatch(/SIGINTS 1\r?\n/);
      t.child.stdin.end();
      expect(await withDeadline(t.exited, 20_000, 'portpub to exit')).toBe(0);
    },
  );
});

/** agentOf finds the namespace agent of the portpub at pid: its unshare's one child. */
function agentOf(pid: number): number {
  const unshare = childrenOf(pid).filter((c) =>
    readFileSync(`/proc/${c}/cmdline`, 'utf8').startsWith('unshare\0'),
  );
  expect(unshare).toHaveLength(1);
  const agent = childrenOf(unshare[0]!);
  expect(agent).toHaveLength(1);
  return agent[0]!;
}

async function hostPort(e: RunEnv, name: string): Promise<number> {
  const out = (await runCli(['port', name, '7000'], 15_000, { env: e.env })).stdout;
  return Number(/:(\d+)\n$/.exec(out)![1]);
}

describe('portpub run: the agent dies', { timeout: 90_000 }, () => {
  it('takes the service down with a clear line, exit 1, the port let go', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const run = await startCli(
      ['run', '--name', 'fragile', '-p', '127.0.0.1::7000', '--', ...service('tcp=7000')],
      1,
      20_000,
      { env: e.env },
    );
    const port = await hostPort(e, 'fragile');
    expect(await exchange(port, 'x')).toBe('ns:x');
    process.kill(agentOf(run.child.pid!), 'SIGKILL');
    const r = await withDeadline(run.exited, 20_000, 'portpub to exit');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the namespace agent died: the service is down');
    // unshare's own complaint when its child dies of SIGKILL says nothing to the user.
    expect(r.stderr).not.toContain('unshare:');
    expect(holders(port, e)).toEqual([]);
    expect(record(e.dir, 'fragile').state).toMatchObject({ status: 'exited', exitCode: 1 });
  });

  it('detached: the same line in its log, Exited (1), the port let go', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const d = await runCli(
      ['run', '-d', '--name', 'bgfragile', '-p', '127.0.0.1::7000', '--', ...service('tcp=7000')],
      20_000,
      { env: e.env },
    );
    expect(d.code).toBe(0);
    const port = await hostPort(e, 'bgfragile');
    process.kill(agentOf(record(e.dir, 'bgfragile').state.pid!), 'SIGKILL');
    await waitFor(
      () => record(e.dir, 'bgfragile').state.status === 'exited',
      'the record to say exited',
      20_000,
    );
    expect(record(e.dir, 'bgfragile').state.exitCode).toBe(1);
    const logs = (await runCli(['logs', 'bgfragile'], 15_000, { env: e.env })).stdout;
    expect(logs).toContain('the namespace agent died: the service is down');
    expect(logs).not.toContain('unshare:');
    await waitFor(() => holders(port, e).length === 0, 'the port let go', 15_000);
  });
});
