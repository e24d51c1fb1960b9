// A --name belongs to one running portpub at a time. The state files cannot ensure that: two
// portpubs started together both read "nobody has it", bind, and then both write a state with
// the name. So a name is claimed first with a file created exclusively in the state directory
// (`<statedir>/<name>.name`, holding the claimant's pid), before anything is bound, and removed
// when that process ends. A claim whose pid is no longer running (a portpub killed with
// SIGKILL) is taken over.
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nameConflict } from '../docker/names.js';
import { ensureStateDir } from '../registry/state.js';

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
  alive: (pid: number) => boolean = pidAlive,
): NameClaim {
  ensureStateDir(dir); // the state directory's checks (owner, no symlink) come first
  const path = namePath(dir, name);
  // The claim is written whole under a name of our own, then linked into place: link() fails
  // if the path exists, and a reader never sees a claim without its pid.
  const mine = `${path}.${pid}.new`;
  writeFileSync(mine, `${pid}\n`, { mode: 0o600 });
  try {
    // Each round either claims the name, finds a live holder, or removes one dead claim.
    for (let round = 0; round < 8; round++) {
      try {
        linkSync(mine, path);
        return claim(path, pid);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readPid(path);
      if (holder === pid) return claim(path, pid);
      if (holder !== undefined && alive(holder)) throw nameConflict(name, `portpub pid ${holder}`);
      takeOver(path, holder, pid);
    }
  } finally {
    unlinkQuietly(mine);
  }
  // Eight rounds of claims appearing and dying under us: someone else is at it; say so.
  throw nameConflict(name, 'another portpub starting now');
}

/**
 * takeOver removes the claim of a pid that is no longer running. It is moved aside first (rename
 * is atomic), so of two processes taking over at once only one removes it; the other, finding a
 * fresh claim in what it moved, puts that claim back.
 */
function takeOver(path: string, dead: number | undefined, pid: number): void {
  const aside = `${path}.${pid}.stale`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // gone already: try again
    throw err;
  }
  if (readPid(aside) !== dead) {
    try {
      linkSync(aside, path); // a live claim moved by mistake: back into place
    } catch {
      // A third claimant took the path meanwhile; the rounds of claimName sort it out.
    }
  }
  unlinkQuietly(aside);
}

function claim(path: string, pid: number): NameClaim {
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      if (readPid(path) === pid) unlinkQuietly(path);
    },
  };
}

function readPid(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** pidAlive: a pid runs if signal 0 reaches it, or it exists under another user (EPERM). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
