// Processes for the benchmark: start a subject or target in its own process group and stop it
// by that PID (SIGTERM to the group, SIGKILL after 3 s), run a bounded client to its one JSON
// result line, and read a process tree's CPU time and memory from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** CLK_TCK: /proc/PID/stat counts in clock ticks, 100 per second on every Linux we run on. */
const CLK_TCK = 100;

/** Proc is one long-running process this benchmark started (a subject or a target). */
export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  log: string;
}

/** live holds every process group started and not yet stopped, for the exit-time sweep. */
const live = new Set<number>();

/** StartOptions: where output goes, and whether fd 3 must exist (docker-proxy reports on it). */
export interface StartOptions {
  log: string;
  fd3?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** startProcess starts cmd in its own process group; resolves once spawned (or failed). */
export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: StartOptions,
): Promise<Proc> {
  const out = openSync(opts.log, 'a');
  const fds: number[] = [out];
  if (opts.fd3) fds.push(openSync('/dev/null', 'w'));
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', out, out, ...fds.slice(1)],
      env: opts.env ?? process.env,
    });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const p: Proc = { name, pid: child.pid ?? -1, child, exited: null, log: opts.log };
  if (p.pid > 0) live.add(p.pid);
  child.on('exit', (code, signal) => (p.exited = { code, signal }));
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(p));
    child.once('error', (e) => {
      live.delete(p.pid);
      reject(new Error(`${name}: ${e.message}`));
    });
  });
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** stopProcess sends SIGTERM to p's process group, SIGKILL after graceMs, and waits for it. */
export async function stopProcess(p: Proc, graceMs = 3000): Promise<void> {
  if (p.pid <= 0) return;
  try {
    process.kill(-p.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  for (const t0 = Date.now(); groupAlive(p.pid) && Date.now() - t0 < graceMs;) await sleep(20);
  if (groupAlive(p.pid)) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  for (const t0 = Date.now(); p.exited === null && Date.now() - t0 < 2000;) await sleep(10);
  live.delete(p.pid);
}

/** killAllSync is the last resort on exit or a signal: SIGKILL to every group still live. */
export function killAllSync(): void {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  live.clear();
}

/** ClientRun is the outcome of a client process run to completion. */
export interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** runClient runs a client to completion, killed (the whole group) after timeoutMs. */
export function runClient(cmd: string, args: string[], timeoutMs: number): Promise<ClientRun> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid ?? -1;
    if (pid > 0) live.add(pid);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    const finish = (code: number | null): void => {
      clearTimeout(timer);
      live.delete(pid);
      resolve({ code, stdout, stderr, timedOut });
    };
    child.on('error', (e) => {
      stderr += e.message;
      finish(-1);
    });
    child.on('close', (code) => finish(code));
  });
}

/** Interactive is a client driven by stdin lines that answers with JSON lines (idle holder). */
export interface Interactive {
  pid: number;
  send(line: string): void;
  /** next resolves the next JSON line, or null when the process exits or ms pass first. */
  next(ms: number): Promise<Record<string, unknown> | null>;
  stderr(): string;
  kill(): void;
}

/** startInteractive starts an interactive client in its own process group. */
export function startInteractive(cmd: string, args: string[]): Interactive {
  const child = spawn(cmd, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const pid = child.pid ?? -1;
  if (pid > 0) live.add(pid);
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  let err = '';
  let exited = false;
  let wake: (() => void) | undefined;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a result line
      }
    }
    wake?.();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdin.on('error', () => {});
  child.on('exit', () => {
    exited = true;
    live.delete(pid);
    wake?.();
  });
  return {
    pid,
    send: (line) => {
      if (!exited) child.stdin.write(line + '\n');
    },
    next: async (ms) => {
      const deadline = Date.now() + ms;
      while (lines.length === 0 && !exited && Date.now() < deadline) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.max(1, deadline - Date.now()));
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = undefined;
      }
      return lines.shift() ?? null;
    },
    stderr: () => err,
    kill: () => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
      live.delete(pid);
    },
  };
}

/** lastJson parses the last JSON line of a client's stdout, or throws with its stderr. */
export function lastJson(r: ClientRun, what: string): Record<string, unknown> {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    const why = r.timedOut ? 'timed out' : `exit ${r.code}`;
    throw new Error(`${what}: ${why}: ${(r.stderr || r.stdout).trim().slice(-300)}`);
  }
}

interface ProcEntry {
  ppid: number;
  ticks: number;
  kthread: boolean;
}

/** PF_KTHREAD marks a kernel thread in /proc/PID/stat's flags. */
const PF_KTHREAD = 0x00200000;

/** procTable reads pid -> parent and utime+stime (+ reaped children's) from /proc/PID/stat. */
function procTable(): Map<number, ProcEntry> {
  const table = new Map<number, ProcEntry>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let st: string;
    try {
      st = readFileSync(`/proc/${d}/stat`, 'latin1');
    } catch {
      continue;
    }
    // Fields after the command name "(...)": f[0] is field 3 (state), f[11..14] utime..cstime.
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const n = (i: number): number => Number(f[i] ?? 0);
    table.set(Number(d), {
      ppid: n(1),
      ticks: n(11) + n(12) + n(13) + n(14),
      kthread: (n(6) & PF_KTHREAD) !== 0,
    });
  }
  return table;
}

/** treePids is root and all its descendants. */
function treePids(root: number, table = procTable()): number[] {
  const kids = new Map<number, number[]>();
  for (const [pid, e] of table) {
    const list = kids.get(e.ppid) ?? [];
    list.push(pid);
    kids.set(e.ppid, list);
  }
  const out: number[] = [];
  const todo = table.has(root) ? [root] : [];
  while (todo.length > 0 && out.length < 100_000) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(kids.get(pid) ?? []));
  }
  return out;
}

/** treeCpuSeconds is the CPU time the tree used so far (utime+stime, reaped children too). */
export function treeCpuSeconds(root: number): number {
  const table = procTable();
  let ticks = 0;
  for (const pid of treePids(root, table)) ticks += table.get(pid)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

/** treeRssKiB sums VmRSS over the tree, from /proc/PID/status. */
export function treeRssKiB(root: number): number {
  let kib = 0;
  for (const pid of treePids(root)) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      kib += Number(m?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return kib;
}

/**
 * outsideTicks is the CPU ticks so far (utime+stime, reaped children's too) of every process
 * outside root's tree. Kernel threads are left out: they also serve the benchmark's own traffic
 * (softirq work, for one).
 */
export function outsideTicks(root: number): Map<number, number> {
  const table = procTable();
  const mine = new Set(treePids(root, table));
  const out = new Map<number, number>();
  for (const [pid, e] of table) if (!mine.has(pid) && !e.kthread) out.set(pid, e.ticks);
  return out;
}

/**
 * ticksUsed is what the processes of `now` used since `before`: a process new since then counts
 * whole, one that exited since is not seen (unless its parent, outside too, reaped it).
 */
export function ticksUsed(before: Map<number, number>, now: Map<number, number>): number {
  let ticks = 0;
  for (const [pid, t] of now) ticks += Math.max(0, t - (before.get(pid) ?? 0));
  return ticks;
}

/**
 * LoadWatch watches the CPU of every process outside this benchmark (other load spoils the
 * numbers: busy CPUs even wake up faster): quiet() waits for it to settle before a measurement,
 * and used() says how much there was since mark().
 */
export class LoadWatch {
  private readonly first: Map<number, number>;
  private readonly began = Date.now();
  private from: Map<number, number>;
  private fromAt = Date.now();

  constructor(private readonly root = process.pid) {
    this.first = outsideTicks(root);
    this.from = this.first;
  }

  /** mark starts a measurement window. */
  mark(): void {
    this.from = outsideTicks(this.root);
    this.fromAt = Date.now();
  }

  /** used is the CPU-seconds outside processes used since mark(), and over how many seconds. */
  used(): { cpuSeconds: number; seconds: number } {
    return this.since(this.from, this.fromAt);
  }

  /** total is the same since the watch began. */
  total(): { cpuSeconds: number; seconds: number } {
    return this.since(this.first, this.began);
  }

  private since(from: Map<number, number>, at: number): { cpuSeconds: number; seconds: number } {
    const ticks = ticksUsed(from, outsideTicks(this.root));
    return { cpuSeconds: ticks / CLK_TCK, seconds: (Date.now() - at) / 1000 };
  }

  /**
   * quiet waits until outside processes use under `cores` of one core over a 0.5 s window, for
   * at most maxMs, and says whether they did.
   */
  async quiet(cores = 0.1, maxMs = 10_000): Promise<boolean> {
    const until = Date.now() + maxMs;
    for (;;) {
      const before = outsideTicks(this.root);
      await sleep(500);
      if (ticksUsed(before, outsideTicks(this.root)) / CLK_TCK / 0.5 < cores) return true;
      if (Date.now() >= until) return false;
    }
  }
}
