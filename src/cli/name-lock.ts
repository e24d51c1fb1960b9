// A --name belongs to one running portpub at a time. The state files cannot ensure that: two
// portpubs started together both read "nobody has it", bind, and then both write a state with
// the name. So a name is claimed first with a file created exclusively in the state directory
// (`<statedir>/<name>.name`, holding the claimant's pid and its kernel start time), before
// anything is bound, and removed when that process ends. A claim whose process is no longer
// running (a portpub killed with SIGKILL; its pid perhaps reused since) is taken over, one
// taker at a time.
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nameConflict } from '../docker/names.js';
import { ensureStateDir, isAlive, processStartTime } from '../registry/state.js';

/** NameClaim is a held name; release() gives it up (idempotent, only if still ours). */
export interface NameClaim {
  release(): void;
}

/** namePath is where the claim of `name` lives (names follow Docker's rule: no `/`, no `..`). */
export function namePath(dir: string, name: string): string {
  return join(dir, `${name}.name`);
}

/**
 * claimName claims `name` for `pid` or throws Docker's conflict error (ERR_NAME_IN_USE, exit 1)
 * naming the portpub that holds it. `alive` says whether a pid runs (tests inject it).
 */
export function claimName(
  dir: string,
  name: string,
  pid: number = process.pid,
  alive: (pid: number, start: string | undefined) => boolean = claimantAlive,
): NameClaim {
  ensureStateDir(dir); // the state directory's checks (owner, no symlink) come first
  const path = namePath(dir, name);
  // The claim is written whole under a name of our own, then linked into place: link() fails
  // if the path exists, and a reader never sees a claim without its pid.
  const mine = `${path}.${pid}.new`;
  writeFileSync(mine, claimText(pid), { mode: 0o600 });
  try {
    // Each round either claims the name, finds a live holder, or removes one dead claim.
    for (let round = 0; round < 20; round++) {
      try {
        linkSync(mine, path);
        return claim(path, pid);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readClaim(path);
      if (holder?.pid === pid) return claim(path, pid);
      if (holder !== undefined && alive(holder.pid, holder.start)) {
        throw nameConflict(name, `portpub pid ${holder.pid}`);
      }
      if (!takeOver(path, holder, pid, alive)) pause(10);
    }
  } finally {
    unlinkQuietly(mine);
  }
  // Rounds of claims appearing and dying under us: someone else is at it; say so.
  throw nameConflict(name, 'another portpub starting now');
}

/** claimantAlive: the pid runs and, where the claim says, is the process that wrote it. */
function claimantAlive(pid: number, start: string | undefined): boolean {
  if (!isAlive(pid)) return false;
  const now = processStartTime(pid);
  return start === undefined || now === undefined || now === start;
}

function claimText(pid: number): string {
  const start = processStartTime(pid);
  return start === undefined ? `${pid}\n` : `${pid} ${start}\n`;
}

/**
 * takeOver removes a dead claimant's claim, holding `<path>.takeover` (created exclusively) so
 * that one process at a time does: under it the claim is read again and removed only if it is
 * still the dead one's (a claim is only ever removed under it, or by its live owner, so what was
 * read stays there). False when another process holds the takeover: try again shortly. A
 * takeover file whose writer died is removed.
 */
function takeOver(
  path: string,
  dead: Claim | undefined,
  pid: number,
  alive: (pid: number, start: string | undefined) => boolean,
): boolean {
  const lock = `${path}.takeover`;
  try {
    writeFileSync(lock, claimText(pid), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const taker = readClaim(lock);
    if (taker === undefined || !alive(taker.pid, taker.start)) unlinkQuietly(lock);
    return false;
  }
  try {
    const now = readClaim(path);
    if (now?.pid === dead?.pid && now?.start === dead?.start) unlinkQuietly(path);
  } finally {
    unlinkQuietly(lock);
  }
  return true;
}

function claim(path: string, pid: number): NameClaim {
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      if (readClaim(path)?.pid === pid) unlinkQuietly(path);
    },
  };
}

/** Claim is what a claim file says: the claimant's pid and, where known, its start time. */
interface Claim {
  pid: number;
  start?: string;
}

function readClaim(path: string): Claim | undefined {
  try {
    const [p, start] = readFileSync(path, 'utf8').trim().split(/\s+/);
    const n = Number(p);
    if (!Number.isInteger(n) || n <= 0) return undefined;
    return start === undefined ? { pid: n } : { pid: n, start };
  } catch {
    return undefined;
  }
}

/** pause blocks for ms (the claim is taken before anything is served, so nothing waits on it). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
