import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { killExecs, recordExec } from '../../src/registry/execs.js';
import { alive } from '../fixtures/netns-run.js';
import { waitFor } from '../helpers/net.js';

/** sleeper starts a process to be recorded, killed when the test ends whatever happens. */
function sleeper(detached: boolean): number {
  const child = spawn('sleep', ['30'], { detached, stdio: 'ignore' });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  return child.pid!;
}

describe('recordExec, killExecs', () => {
  it('kill what was recorded, its group with it, only while the start time proves it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portpub-execs-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const id = 'a'.repeat(64);
    const execs = join(dir, 'containers', id, 'execs');

    // No record: nothing is written (a removed one must not come back as a directory).
    recordExec(id, process.pid, dir);
    expect(existsSync(join(dir, 'containers', id))).toBe(false);

    mkdirSync(join(dir, 'containers', id), { recursive: true });
    const leader = sleeper(true);
    const member = sleeper(false);
    recordExec(id, leader, dir);
    recordExec(id, member, dir);
    // A pid whose recorded start time is not its own (the kernel gave the number out again).
    writeFileSync(join(execs, String(process.pid)), 'not-my-start');
    expect(readdirSync(execs).sort()).toEqual([leader, member, process.pid].map(String).sort());

    const sent: [number, string][] = [];
    killExecs(id, dir, (pid, signal) => {
      sent.push([pid, signal]);
      process.kill(pid, signal);
    });
    // The leader by its group; the other leads none (ESRCH), so it alone; this process never.
    expect(sent).toContainEqual([-leader, 'SIGKILL']);
    expect(sent).toContainEqual([-member, 'SIGKILL']);
    expect(sent).toContainEqual([member, 'SIGKILL']);
    expect(sent.some(([pid]) => Math.abs(pid) === process.pid)).toBe(false);
    await waitFor(() => !alive(leader) && !alive(member), 'both killed', 5_000);
    expect(readdirSync(execs)).toEqual([]);
  });

  it("kills the group a leader left behind (sh -c 'worker &'), and forgets a lone process gone", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portpub-execs-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const id = 'b'.repeat(64);
    mkdirSync(join(dir, 'containers', id), { recursive: true });
    const execs = join(dir, 'containers', id, 'execs');
    // A session leader that starts a worker in its group, says its pid and waits to be told to end.
    const sh = spawn('sh', ['-c', 'sleep 30 & echo $!; read x'], {
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let worker = 0;
    onTestFinished(() => {
      sh.kill('SIGKILL');
      if (worker > 0 && alive(worker)) process.kill(worker, 'SIGKILL');
    });
    const said = await new Promise<string>((resolve) =>
      sh.stdout.once('data', (d) => resolve(String(d))),
    );
    worker = Number(said.trim());
    recordExec(id, sh.pid!, dir);
    const lone = sleeper(false);
    recordExec(id, lone, dir);
    sh.stdin.end('\n');
    await waitFor(() => !alive(sh.pid!), 'the leader to end', 5_000);
    process.kill(lone, 'SIGKILL');
    // Reaped, not only dead: a zombie still shows its start time.
    await waitFor(() => !existsSync(`/proc/${lone}`), 'the lone one to be reaped', 5_000);
    expect(alive(worker)).toBe(true);
    // A later exec forgets the lone one (nothing of it is left) but keeps the leader's group.
    recordExec(id, process.pid, dir);
    expect(readdirSync(execs).sort()).toEqual([sh.pid!, process.pid].map(String).sort());
    rmSync(join(execs, String(process.pid)));
    killExecs(id, dir);
    await waitFor(() => !alive(worker), 'the worker killed with its group', 5_000);
    expect(readdirSync(execs)).toEqual([]);
  });
});
