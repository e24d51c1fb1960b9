// Issue 13 item 4 through the built CLI: a --name is claimed before anything is bound, so of two
// portpubs started together with one name exactly one serves and the other gets Docker's
// conflict error (exit 1); a claim left by a killed portpub is taken over.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN, runCli, startCli, type CliResult } from '../helpers/cli.js';
import { withDeadline } from '../helpers/net.js';

function stateDirForTest(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-race-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'state');
}

/** A portpub that serves an ephemeral loopback port (nothing is dialled: no client comes). */
const SERVE = ['-p', '127.0.0.1::80', '--target', '127.0.0.2', '--log-level', 'warn'];

interface Started {
  /** Resolves with the first stdout line, or undefined once the process has exited without one. */
  served: Promise<string | undefined>;
  exited: Promise<CliResult>;
  kill(signal: NodeJS.Signals): void;
}

function start(args: string[], env: Record<string, string>): Started {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const served = new Promise<string | undefined>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0]);
    });
    void exited.then(() => resolve(undefined));
  });
  return { served, exited, kill: (signal) => child.kill(signal) };
}

describe('portpub --name: one holder at a time', () => {
  it('two started together with one --name: exactly one serves, the other is a Conflict (exit 1)', async () => {
    const env = { PORTPUB_STATE_DIR: stateDirForTest() };
    const both = [
      start(['--name', 'race', ...SERVE], env),
      start(['--name', 'race', ...SERVE], env),
    ];
    const lines = await withDeadline(
      Promise.all(both.map((p) => p.served)),
      20_000,
      'both portpubs to serve or exit',
    );
    const winner = lines.findIndex((l) => l !== undefined);
    expect(winner, 'one serves').toBeGreaterThanOrEqual(0);
    expect(
      lines.filter((l) => l !== undefined),
      'only one serves',
    ).toHaveLength(1);
    const loser = await withDeadline(both[1 - winner]!.exited, 20_000, 'the loser to exit');
    expect(loser.code).toBe(1);
    expect(loser.stdout).toBe('');
    expect(loser.stderr).toMatch(
      /^portpub: Conflict\. The container name "\/race" is already in use by portpub pid \d+\. /m,
    );
    // portpub port race finds one portpub, not "several".
    const port = await runCli(['port', 'race'], 15_000, { env });
    expect(port.code).toBe(0);
    expect(port.stdout).toBe(`${lines[winner]}\n`);
    both[winner]!.kill('SIGTERM');
    expect((await withDeadline(both[winner]!.exited, 20_000, 'the winner to stop')).code).toBe(0);
    // The claim went with it: the name is free again.
    expect(existsSync(join(env.PORTPUB_STATE_DIR, 'race.name'))).toBe(false);
  });

  it('a name claimed by a live process that has not written its state yet is in use', async () => {
    const dir = stateDirForTest();
    mkdirSync(dir, { recursive: true });
    // This test's own process stands for a portpub still binding: a claim, no state file yet.
    writeFileSync(join(dir, 'web.name'), `${process.pid}\n`);
    const r = await runCli(['--name', 'web', ...SERVE], 15_000, {
      env: { PORTPUB_STATE_DIR: dir },
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `portpub: Conflict. The container name "/web" is already in use by portpub pid ${process.pid}.`,
    );
    expect(readFileSync(join(dir, 'web.name'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('a claim left by a killed portpub is taken over', async () => {
    const dir = stateDirForTest();
    const env = { PORTPUB_STATE_DIR: dir };
    const first = await startCli(['--name', 'web', ...SERVE], 1, 15_000, { env });
    const firstPid = first.child.pid!;
    // The claim: the pid and its kernel start time (so a reused pid is not taken for it).
    expect(readFileSync(join(dir, 'web.name'), 'utf8')).toMatch(new RegExp(`^${firstPid} \\d+\n$`));
    const killed = await first.stop('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(dir, 'web.name')), 'SIGKILL leaves the claim').toBe(true);
    const second = await startCli(['--name', 'web', ...SERVE], 1, 15_000, { env });
    expect(readFileSync(join(dir, 'web.name'), 'utf8')).toMatch(
      new RegExp(`^${second.child.pid} \\d+\n$`),
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });

  it("a leading / is trimmed as Docker's daemon trims it: /web is web", async () => {
    const dir = stateDirForTest();
    const env = { PORTPUB_STATE_DIR: dir };
    const run = await startCli(['--name', '/web', ...SERVE], 1, 15_000, { env });
    const port = await runCli(['port', 'web'], 15_000, { env });
    expect(port.stdout).toBe(`${run.lines[0]}\n`);
    const again = await runCli(['--name', 'web', ...SERVE], 15_000, { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('Conflict. The container name "/web" is already in use');
    expect((await run.stop('SIGTERM')).code).toBe(0);
  });
});
