// The benchmark's watch on other load (test/bench/proc.ts): what counts as outside the run, and
// how the CPU used between two samples is summed.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseOptions } from '../bench/options.js';
import { outsideTicks, ticksUsed } from '../bench/proc.js';
import { waitFor } from '../helpers/net.js';

/** started spawns a process leading a group of its own, killed with its children at the end. */
function started(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  onTestFinished(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  });
  return child;
}

/** ticksOf is a process's own utime+stime from /proc. */
function ticksOf(pid: number): number {
  const st = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

describe('bench load watch', () => {
  it('is on by default, off with --ignore-load, and off in --smoke', () => {
    expect(parseOptions([]).ignoreLoad).toBe(false);
    expect(parseOptions(['--quick']).ignoreLoad).toBe(false);
    expect(parseOptions(['--ignore-load']).ignoreLoad).toBe(true);
    expect(parseOptions(['--smoke']).ignoreLoad).toBe(true);
  });

  it('sums what each process used since the first sample; a new one counts whole', () => {
    const before = new Map([
      [1, 10],
      [2, 5],
    ]);
    const now = new Map([
      [1, 15],
      [2, 4], // a reused pid whose count went down: never negative
      [3, 7],
    ]);
    expect(ticksUsed(before, now)).toBe(12);
  });

  it("counts a busy process outside the run's tree, and leaves the tree itself out", async () => {
    // The "run": a shell with a child of its own. The busy loop is its sibling, outside it.
    const run = started('sh', ['-c', 'sleep 60 & wait']);
    const busy = started(process.execPath, ['-e', 'for (;;) {}']);
    await waitFor(
      () => {
        try {
          return readFileSync(`/proc/${run.pid}/task/${run.pid}/children`, 'latin1').trim() !== '';
        } catch {
          return false;
        }
      },
      "the run's child to start",
      10_000,
    );
    const grandchild = Number(
      readFileSync(`/proc/${run.pid}/task/${run.pid}/children`, 'latin1').trim(),
    );
    const first = outsideTicks(run.pid!);
    const busyFirst = ticksOf(busy.pid!);
    expect(first.has(busy.pid!)).toBe(true);
    expect(first.has(process.pid)).toBe(true);
    expect(first.has(run.pid!)).toBe(false);
    expect(first.has(grandchild)).toBe(false);
    // Kernel threads are left out (kthreadd is pid 2 on Linux).
    expect(first.has(2)).toBe(false);
    await waitFor(() => ticksOf(busy.pid!) >= busyFirst + 5, 'the busy loop to use CPU', 20_000);
    const now = outsideTicks(run.pid!);
    // Sampled before busyFirst and after the loop had used 5 ticks more: at least 5 apart.
    const busyUsed = now.get(busy.pid!)! - first.get(busy.pid!)!;
    expect(busyUsed).toBeGreaterThanOrEqual(5);
    expect(ticksUsed(first, now)).toBeGreaterThanOrEqual(busyUsed);
  });
});
