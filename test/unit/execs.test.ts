import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { killExecs, recordExec } from '../../src/registry/execs.js';
import { waitFor } from '../helpers/net.js';

/** sleeper starts a process to be recorded, killed when the test ends whatever happens. */
function sleeper(detached: boolean): number {
  const child = spawn('sleep', ['30'], { detached, stdio: 'ignore' });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  return child.pid!;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
});
