// The processes `portpub exec` started in a `run --network host` service. In a network of its
// own a service has a PID namespace, and everything exec started there ends with it, as every
// process of a container ends with it; on the host's network nothing ties them to the service.
// So each is recorded here, as a file containers/ID/execs/PID holding its kernel start time (one
// file per process: execs started at once need no lock), and the service's end SIGKILLs them.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { containersDir } from './containers.js';
import { processStartTime, stateDir } from './state.js';

function execsDir(id: string, dir: string): string {
  return join(containersDir(dir), id, 'execs');
}

/** Kill is process.kill's shape, so that tests and callers may pass their own. */
type Kill = (pid: number, signal: NodeJS.Signals) => void;

/**
 * recordExec notes that exec started `pid` in service `id` (nothing if it has ended already, or
 * the service's record is gone), and forgets the ones that have ended since.
 */
export function recordExec(id: string, pid: number, dir: string = stateDir()): void {
  const start = processStartTime(pid);
  if (start === undefined) return;
  const d = execsDir(id, dir);
  try {
    // Not recursive: a record removed meanwhile must not come back as a stray directory.
    mkdirSync(d, { recursive: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return;
  }
  for (const entry of recorded(d)) {
    if (processStartTime(entry.pid) !== entry.start) rmSync(entry.path, { force: true });
  }
  writeFileSync(join(d, String(pid)), start);
}

/**
 * killExecs SIGKILLs what exec started in service `id`, and forgets it: each process whose start
 * time still proves it (a pid given to another process since is left alone), with the process
 * group it leads (exec -d starts it in a session of its own), as docker stop ends a container's
 * every process.
 */
export function killExecs(
  id: string,
  dir: string = stateDir(),
  kill: Kill = (pid, signal) => process.kill(pid, signal),
): void {
  for (const entry of recorded(execsDir(id, dir))) {
    if (processStartTime(entry.pid) === entry.start) {
      try {
        kill(-entry.pid, 'SIGKILL');
      } catch {
        try {
          kill(entry.pid, 'SIGKILL'); // it leads no group: the process alone
        } catch {
          // gone meanwhile
        }
      }
    }
    rmSync(entry.path, { force: true });
  }
}

function recorded(d: string): { pid: number; start: string; path: string }[] {
  let names: string[];
  try {
    names = readdirSync(d);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const pid = Number(name);
    const path = join(d, name);
    if (!Number.isSafeInteger(pid) || pid <= 0) return [];
    try {
      return [{ pid, start: readFileSync(path, 'utf8'), path }];
    } catch {
      return [];
    }
  });
}
