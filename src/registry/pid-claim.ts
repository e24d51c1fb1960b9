// A file that one live process holds at a time: the --name claim (cli/name-lock.ts) and the lock
// on a service's record (registry/containers.ts). A claim holds the claimant's pid and its kernel
// start time. It is written whole under a name of the claimant's own, then linked into place:
// link() fails if the path exists, and a reader never sees a claim without its pid. A claim whose
// process is no longer running (killed with SIGKILL, its pid perhaps reused since) is taken over,
// one taker at a time.
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { processStartTime, provenAlive, type ProcessRef } from './state.js';

/** Claim is what a claim file says: the claimant's pid and, where known, its start time. */
export type Claim = ProcessRef;

/** Alive says whether the process that wrote a claim still runs (tests inject it). */
export type Alive = (pid: number, start: string | undefined) => boolean;

export interface ClaimOptions {
  alive?: Alive;
  /**
   * Called for each round in which a live process holds the path (`holder`), or another process
   * is removing a dead one's claim (undefined): return to try again, throw to give up.
   */
  busy: (holder: Claim | undefined) => void;
  /** Rounds before claimFile gives up and returns false (default: no limit). */
  rounds?: number;
}

/**
 * claimFile claims `path` for `pid` and returns true (also when `pid` already holds it), or false
 * after `rounds` rounds of claims appearing and dying under it. Errors other than the path being
 * taken (ENOENT: its directory is gone) are thrown.
 */
export function claimFile(
  path: string,
  pid: number,
  { alive = claimantAlive, busy, rounds = Infinity }: ClaimOptions,
): boolean {
  const mine = `${path}.${pid}.new`;
  writeFileSync(mine, claimText(pid), { mode: 0o600 });
  try {
    // Each round either claims the path, finds a live holder, or removes one dead claim.
    for (let round = 0; round < rounds; round++) {
      try {
        linkSync(mine, path);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readAt(path);
      // Released between the link and the read: nothing to take over (removing by path now
      // could remove a claim linked since), so try again at once.
      if (holder === ABSENT) continue;
      if (holder?.pid === pid) return true;
      if (holder !== undefined && alive(holder.pid, holder.start)) busy(holder);
      else if (!takeOver(path, holder, pid, alive)) busy(undefined);
    }
  } finally {
    unlinkQuietly(mine);
  }
  return false;
}

/** releaseFile removes the claim at `path` if `pid` still holds it. */
export function releaseFile(path: string, pid: number): void {
  const holder = readAt(path);
  if (holder !== ABSENT && holder?.pid === pid) unlinkQuietly(path);
}

/** ABSENT is readAt's word for no file at the path, told apart from a file that says no pid. */
const ABSENT = 'absent';

/** readAt reads a claim file: the claim, undefined if it says no pid, ABSENT if there is none. */
function readAt(path: string): Claim | undefined | typeof ABSENT {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? ABSENT : undefined;
  }
  const [p, start] = text.trim().split(/\s+/);
  const n = Number(p);
  if (!Number.isInteger(n) || n <= 0) return undefined;
  return start === undefined ? { pid: n } : { pid: n, start };
}

/** pause blocks the thread for ms. */
export function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * claimantAlive: the pid runs (not as a zombie) and, where the claim says, is the process that
 * wrote it.
 */
function claimantAlive(pid: number, start: string | undefined): boolean {
  return provenAlive(start === undefined ? { pid } : { pid, start });
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
function takeOver(path: string, dead: Claim | undefined, pid: number, alive: Alive): boolean {
  const lock = `${path}.takeover`;
  // Written whole, then linked into place as a claim is: a reader never finds it without its pid
  // (and removes it as a dead taker's).
  const mine = `${lock}.${pid}.new`;
  writeFileSync(mine, claimText(pid), { mode: 0o600 });
  try {
    linkSync(mine, lock);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const taker = readAt(lock);
    if (taker !== ABSENT && (taker === undefined || !alive(taker.pid, taker.start))) {
      unlinkQuietly(lock);
    }
    return false;
  } finally {
    unlinkQuietly(mine);
  }
  try {
    // Gone already (its owner was alive after all, or another taker was first): nothing to do.
    const now = readAt(path);
    if (now !== ABSENT && now?.pid === dead?.pid && now?.start === dead?.start) unlinkQuietly(path);
  } finally {
    unlinkQuietly(lock);
  }
  return true;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
