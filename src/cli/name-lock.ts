// A --name belongs to one running portpub at a time. The state files cannot ensure that: two
// portpubs started together both read "nobody has it", bind, and then both write a state with
// the name. So a name is claimed first with a file created exclusively in the state directory
// (`<statedir>/<name>.name`, holding the claimant's pid and its kernel start time), before
// anything is bound, and removed when that process ends. A claim whose process is no longer
// running (a portpub killed with SIGKILL; its pid perhaps reused since) is taken over, one
// taker at a time (registry/pid-claim.ts).
import { join } from 'node:path';
import { nameConflict } from '../docker/names.js';
import { claimFile, pause, releaseFile, type Alive } from '../registry/pid-claim.js';
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
  alive?: Alive,
): NameClaim {
  ensureStateDir(dir); // the state directory's checks (owner, no symlink) come first
  const path = namePath(dir, name);
  const claimed = claimFile(path, pid, {
    ...(alive !== undefined ? { alive } : {}),
    busy: (holder) => {
      if (holder !== undefined) throw nameConflict(name, `portpub pid ${holder.pid}`);
      pause(10); // another process is removing a dead claim
    },
    rounds: 20,
  });
  // Rounds of claims appearing and dying under us: someone else is at it; say so.
  if (!claimed) throw nameConflict(name, 'another portpub starting now');
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      releaseFile(path, pid);
    },
  };
}
