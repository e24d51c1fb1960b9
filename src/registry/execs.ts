// The processes `portpub exec` started in a `run --network host` service. In a network of its
// own a service has a PID namespace, and everything exec started there ends with it, as every
// process of a container ends with it; on the host's network nothing ties them to the service.
// So each is recorded here, as a file containers/ID/execs/PID holding its kernel start time (one
// file per process: execs started at once need no lock), and the service's end SIGKILLs them.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { containersDir } from './containers.js';
import { pidFiles, processStartTime, processStat, stateDir } from './state.js';

function execsDir(id: string, dir: string): string {
  return join(containersDir(dir), id, 'execs');
}

/** Kill is process.kill's shape, so that tests and callers may pass their own. */
type Kill = (pid: number, signal: NodeJS.Signals) => void;

/** Entry is one recorded process: its kernel start time, and whether it led a process group. */
interface Entry {
  pid: number;
  start: string;
  leader: boolean;
  path: string;
}

/**
 * recordExec notes that exec started `pid` in service `id` (nothing if it has ended already, or
 * the service's record is gone), and forgets those that cannot matter any more.
 */
export function recordExec(id: string, pid: number, dir: string = stateDir()): void {
  const stat = processStat(pid);
  const start = stat?.[19];
  if (stat === undefined || start === undefined) return;
  const d = execsDir(id, dir);
  try {
    // Not recursive: a record removed meanwhile must not come back as a stray directory.
    mkdirSync(d, { recursive: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return;
  }
  for (const entry of recorded(d)) {
    const now = processStartTime(entry.pid);
    // Its number given to another process, or a lone process gone: nothing left of it.
    if (now !== entry.start && (now !== undefined || !entry.leader))
      rmSync(entry.path, { force: true });
  }
  const leader = Number(stat[2]) === pid;
  writeFileSync(join(d, String(pid)), `${start}\n${leader ? 'leader' : ''}\n`);
}

/**
 * killExecs SIGKILLs what exec started in service `id`, and forgets it: each process whose start
 * time still proves it, with the process group it leads (exec -d starts it in a session of its
 * own), as docker stop ends a container's every process. A leader that has ended may have left
 * its group (a `sh -c 'worker &'`): while any process is in that group, Linux gives its number to
 * no new process, so with no process of that number alive the group, if any, is still this one.
 * A number another process has now is left alone.
 */
export function killExecs(
  id: string,
  dir: string = stateDir(),
  kill: Kill = (pid, signal) => process.kill(pid, signal),
): void {
  for (const entry of recorded(execsDir(id, dir))) {
    const now = processStartTime(entry.pid);
    if (now === entry.start || (now === undefined && entry.leader)) {
      try {
        kill(-entry.pid, 'SIGKILL');
      } catch {
        try {
          if (now !== undefined) kill(entry.pid, 'SIGKILL'); // it leads no group: it alone
        } catch {
          // gone meanwhile
        }
      }
    }
    rmSync(entry.path, { force: true });
  }
}

function recorded(d: string): Entry[] {
  return pidFiles(d).map(({ pid, lines: [start = '', leader = ''], path }) => ({
    pid,
    start,
    leader: leader === 'leader',
    path,
  }));
}
