// Discoverable bindings: each running portpub writes `<dir>/<pid>.json` so `portpub port` can find
// it; files of processes that died without cleaning up are detected and removed by readers.
// Synchronous on purpose: the files are tiny, and removeState must work in a process 'exit' handler.
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants as fsConstants,
  chmodSync,
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open as openAsync, rename as renameAsync } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PortpubError, EXIT_RUNTIME } from '../errors.js';
import { PROTOCOLS, type Protocol } from '../docker/spec.js';
import type { Binding } from '../docker/report.js';
import { ERR_NOT_PORTPUB, ERR_STATE_DIR } from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_NOT_PORTPUB, ERR_STATE_DIR };

/** State is what one running portpub publishes about itself. */
export interface State {
  pid: number;
  /** ISO 8601 time the process started serving. */
  startedAt: string;
  /** Name given with the run (for a plain `-p` run); services carry their own in `bindings`. */
  name?: string;
  /** Absolute path of the config file being served, if any. */
  configFile?: string;
  bindings: Binding[];
  /** Compose project name (`portpub up`); service names are scoped by it. */
  project?: string;
  /** `portpub up`: every published service, with what its bindings cannot say. */
  services?: ServiceState[];
  /**
   * Kernel start time of `pid` (`/proc/<pid>/stat` field 22), filled in by writeState where /proc
   * exists, so a reader can tell the writer from an unrelated process that later got the same pid.
   */
  procStart?: string;
  /** Command line of `pid` (`/proc/<pid>/cmdline`, split at NULs), filled in like procStart. */
  cmdline?: string[];
  /** `portpub up`: the outcome of the latest SIGHUP reload, for `portpub reload` to report. */
  lastReload?: ReloadReport;
}

/** ReloadReport is one reload's outcome; `seq` counts reloads since the process started. */
export interface ReloadReport {
  seq: number;
  ok: boolean;
  added?: number;
  removed?: number;
  kept?: number;
  error?: string;
}

/** ServiceState is one service of a `portpub up`: its target, `expose:` ports and container_name. */
export interface ServiceState {
  name: string;
  containerName?: string;
  targetHost: string;
  /** `expose:` ports: reachable by links (`portpub env`), not published. */
  expose: { port: number; protocol: Protocol }[];
}

const STATE_FILE = /^([1-9][0-9]*)\.json$/;
const TEMP_FILE = /^\.([1-9][0-9]*)\.[0-9a-f]+\.tmp$/;
/** SOCK_FILE is a control socket, observe/control.ts controlPath: `<pid>.sock`. */
const SOCK_FILE = /^([1-9][0-9]*)\.sock$/;

/** STATE_DIR_ENV names the state directory outright (absolute path), before XDG_RUNTIME_DIR. */
export const STATE_DIR_ENV = 'PORTPUB_STATE_DIR';

/**
 * stateDir is where state files live, the first that applies:
 *   1. `$PORTPUB_STATE_DIR` (absolute);
 *   2. `$XDG_RUNTIME_DIR/portpub` (absolute: per-user, tmpfs, cleared at logout);
 *   3. `/run/portpub` for root, `/run/user/<uid>/portpub` where that runtime directory exists and
 *      is the user's own (XDG_RUNTIME_DIR is often unset under sudo, su or cron);
 *   4. `<os.tmpdir()>/portpub-<uid>`.
 * No other user can create the first three for you; the last one anyone can create first, to
 * keep portpub out, and ensureStateDir then refuses it and says how to choose another. It only
 * computes the path; `runtimeDir` stands in for looking at /run (tests).
 */
export function stateDir(
  env: NodeJS.ProcessEnv = process.env,
  runtimeDir: (uid: number) => string | undefined = ownRuntimeDir,
): string {
  const named = env[STATE_DIR_ENV];
  if (named && named.startsWith('/')) return named;
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && runtime.startsWith('/')) return join(runtime, 'portpub');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const own = typeof process.getuid === 'function' ? runtimeDir(uid) : undefined;
  if (own !== undefined) return join(own, 'portpub');
  return join(tmpdir(), `portpub-${uid}`);
}

/**
 * ownRuntimeDir is a directory only `uid` (and root) can create entries in: `/run` for root,
 * else `/run/user/<uid>` when it exists, is a real directory, belongs to uid and is not open
 * to others (what systemd-logind makes at login).
 */
function ownRuntimeDir(uid: number): string | undefined {
  const dir = uid === 0 ? '/run' : `/run/user/${uid}`;
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== uid) return undefined;
    if (uid !== 0 && (st.mode & 0o077) !== 0) return undefined;
    accessSync(dir, fsConstants.W_OK);
    return dir;
  } catch {
    return undefined;
  }
}

/**
 * ensureStateDir creates `dir` with mode 0700 if needed and checks that it is a real directory
 * (not a symlink) owned by this user, tightening its mode to 0700 if it is looser. In a shared
 * /tmp anyone could have created the directory first; another owner is refused with ERR_STATE_DIR.
 */
export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw refusal(dir, err);
  }
  checkStateDir(dir);
}

/**
 * writeState writes `<dir>/<pid>.json` atomically: a temp file in the same directory (mode 0600),
 * flushed, then renamed over the final name, so a reader sees the old file or the new, never half.
 */
export function writeState(dir: string, state: State): void {
  ensureStateDir(dir);
  const text = `${JSON.stringify(proven(state), null, 2)}\n`;
  writeFileAtomic(stateFile(dir, state.pid), text, state.pid);
}

/** proven adds what lets a reader tell the writer from a later process with its pid. */
function proven(state: State): State {
  const procStart = state.procStart ?? processStartTime(state.pid);
  const cmdline = state.cmdline ?? processCommandLine(state.pid);
  return {
    ...state,
    ...(procStart !== undefined ? { procStart } : {}),
    ...(cmdline !== undefined ? { cmdline } : {}),
  };
}

/**
 * writeStateInSteps is writeState for a running service (after a reload): the text is built a
 * slice of bindings at a time with the event loop let go in between, and written, flushed and
 * renamed off it, so a file of 65,535 mappings (some 20 MB) does not stall the relays (issue 11).
 * The same file as writeState's, read the same way.
 */
export async function writeStateInSteps(dir: string, state: State): Promise<void> {
  ensureStateDir(dir);
  const record: State = { ...proven(state), bindings: [] };
  const parts: string[] = [];
  for (let i = 0; i < state.bindings.length; i += STEP_BINDINGS) {
    const slice = state.bindings.slice(i, i + STEP_BINDINGS).map((b) => JSON.stringify(b));
    parts.push(slice.join(',\n    '));
    await new Promise((r) => setImmediate(r));
  }
  const head = JSON.stringify(record, null, 2);
  const list = parts.length === 0 ? '[]' : `[\n    ${parts.join(',\n    ')}\n  ]`;
  const text = `${head.replace('"bindings": []', () => `"bindings": ${list}`)}\n`;
  const path = stateFile(dir, state.pid);
  const tmp = tempPath(path, state.pid);
  const file = await openAsync(tmp, 'wx', 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await renameAsync(tmp, path);
  } catch (err) {
    removeQuietly(tmp);
    throw err;
  }
}

/** STEP_BINDINGS: how many bindings writeStateInSteps serialises between two turns of the loop. */
const STEP_BINDINGS = 2048;

/**
 * writeFileAtomic replaces `path` with `text` so a reader sees the old file or the new, never
 * half: a temp file beside it (mode 0600), flushed, then renamed over `path`; the temp file is
 * removed if the rename fails. The temp file is `.<owner>.<hex>.tmp`, named after the writing
 * process, so readStates can tell a dead writer's leftover in the state dir.
 */
export function writeFileAtomic(path: string, text: string, owner: number = process.pid): void {
  const tmp = tempPath(path, owner);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    removeQuietly(tmp);
    throw err;
  }
}

/** tempPath names a temp file beside path for the writing process owner (TEMP_FILE's shape). */
function tempPath(path: string, owner: number): string {
  return join(dirname(path), `.${owner}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * removeState deletes `<dir>/<pid>.json` at exit; a file already gone is not an error, and
 * neither is one this user may not remove (EACCES, EPERM): that happens when the directory was
 * refused at start, so the file was never written, and an exit must not fail over it.
 */
export function removeState(dir: string, pid: number): void {
  try {
    removeQuietly(stateFile(dir, pid));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
  }
}

/**
 * readStates returns the state of every live portpub, oldest first. Files whose process is gone
 * (`kill(pid, 0)` says ESRCH, or the pid now belongs to a process started at another time) and
 * files that are not valid state are deleted, as are temp files left by dead writers and the
 * control sockets (`<pid>.sock`) of dead pids. A missing directory means nothing is running; one
 * this user may not use (another owner, no permission to read it) is ERR_STATE_DIR, saying what
 * to do. `except` leaves out (and does not read) the state of that pid: a caller's own.
 */
export function readStates(dir: string, { except }: { except?: number } = {}): State[] {
  if (!checkStateDir(dir, { missingOk: true })) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw refusal(dir, err);
  }

  const live: State[] = [];
  for (const name of names) {
    const temp = TEMP_FILE.exec(name);
    if (temp) {
      if (!isAlive(Number(temp[1]))) removeQuietly(join(dir, name));
      continue;
    }
    const sock = SOCK_FILE.exec(name);
    if (sock) {
      // Only a dead pid's: a live one's socket may belong to a portpub not yet in a state file.
      if (!isAlive(Number(sock[1]))) removeQuietly(join(dir, name));
      continue;
    }
    const match = STATE_FILE.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid === except) continue; // the caller's own (a large one is not read for nothing)
    const path = join(dir, name);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
      throw err;
    }
    const state = parseState(text, pid);
    if (!state || !isAlive(pid) || !sameProcess(state)) {
      removeQuietly(path);
      continue;
    }
    live.push(state);
  }
  return live.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.pid - b.pid);
}

function stateFile(dir: string, pid: number): string {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new PortpubError(ERR_STATE_DIR, `invalid pid for a state file: ${pid}`, EXIT_RUNTIME);
  }
  return join(dir, `${pid}.json`);
}

/**
 * checkStateDir refuses, with ERR_STATE_DIR and what to do, a state directory that is not a real
 * directory of this user's or that this user may not look into; it tightens a looser mode to
 * 0700. With `missingOk`, a directory that does not exist is false (nothing is running), not an
 * error.
 */
export function checkStateDir(dir: string, { missingOk = false } = {}): boolean {
  let st;
  try {
    st = lstatSync(dir);
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw refusal(dir, err);
  }
  const refuse = (why: string): never => {
    throw new PortpubError(
      ERR_STATE_DIR,
      `refusing state directory ${dir}: ${why}. ${chooseAnother(dir)}`,
      EXIT_RUNTIME,
    );
  };
  if (!st.isDirectory()) refuse(st.isSymbolicLink() ? 'it is a symbolic link' : 'not a directory');
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  if (uid !== undefined && st.uid !== uid) refuse(`owned by uid ${st.uid}, not ${uid}`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return true;
}

/**
 * refusal turns a permission error on the state directory (EACCES, EPERM) into ERR_STATE_DIR
 * with what to do; any other error is returned as it is.
 */
function refusal(dir: string, err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e.code !== 'EACCES' && e.code !== 'EPERM') return err;
  return new PortpubError(
    ERR_STATE_DIR,
    `refusing state directory ${dir}: this user may not read it (${e.code}). ${chooseAnother(dir)}`,
    EXIT_RUNTIME,
  );
}

/**
 * chooseAnother says what to do about a refused state directory: in a shared /tmp another user
 * may have made it first, so point at a directory only this user can create.
 */
function chooseAnother(dir: string): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const runUser = uid === undefined ? undefined : `/run/user/${uid}`;
  let suggestion = '';
  try {
    if (runUser && lstatSync(runUser).uid === uid) suggestion = ` (here: ${runUser})`;
  } catch {
    // no per-user runtime directory on this host
  }
  return (
    `Another user may have created it to keep portpub out. Set XDG_RUNTIME_DIR to your ` +
    `runtime directory${suggestion}, or ${STATE_DIR_ENV} to a directory only you can write, ` +
    `the same for every portpub command; or remove ${dir} if it is yours to remove`
  );
}

/** isAlive is `kill(pid, 0)`: ESRCH means gone; EPERM means alive but someone else's. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** processGone: no such process, or only its zombie (killed, not yet reaped by its parent). */
export function processGone(pid: number): boolean {
  return !isAlive(pid) || zombie(pid);
}

/** zombie: the process has ended, and its parent has not reaped it yet. */
export function zombie(pid: number): boolean {
  return processStat(pid)?.[0] === 'Z';
}

/** ProcessRef names one process: its pid, and its kernel start time against pid reuse. */
export interface ProcessRef {
  pid: number;
  start?: string;
}

/** thisProcess is this process's ProcessRef. */
export function thisProcess(): ProcessRef {
  const start = processStartTime(process.pid);
  return start === undefined ? { pid: process.pid } : { pid: process.pid, start };
}

/**
 * provenAlive says whether `ref` is a live process, and the same one: not a zombie, and, where
 * both start times are known, not a later process given the same pid.
 */
export function provenAlive(ref: ProcessRef): boolean {
  if (!Number.isSafeInteger(ref.pid) || ref.pid <= 0 || processGone(ref.pid)) return false;
  const now = processStartTime(ref.pid);
  return ref.start === undefined || now === undefined || now === ref.start;
}

/** sameProcess: where both are known, the pid's kernel start time must still be the recorded one. */
function sameProcess(state: State): boolean {
  if (state.procStart === undefined) return true;
  const now = processStartTime(state.pid);
  return now === undefined || now === state.procStart;
}

/**
 * processStat is `/proc/<pid>/stat` from field 3 (state) on: [0] state, [2] pgrp, [19] starttime.
 * The command name (field 2) may contain spaces and parentheses, so fields are counted from the
 * last ')'. Undefined for no such process, or where there is no /proc.
 */
export function processStat(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** PidFile is one file named after a process's pid in a directory of them: its lines. */
export interface PidFile {
  pid: number;
  lines: string[];
  path: string;
}

/**
 * pidFiles reads a directory of files named by pid (what `exec` started, who is attached with
 * `start -a`): each one's lines; a missing directory, other names and unreadable files are none.
 */
export function pidFiles(d: string): PidFile[] {
  let names: string[];
  try {
    names = readdirSync(d);
  } catch {
    return [];
  }
  return names.flatMap((name): PidFile[] => {
    const pid = Number(name);
    const path = join(d, name);
    if (!Number.isSafeInteger(pid) || pid <= 0) return [];
    try {
      return [{ pid, lines: readFileSync(path, 'utf8').split('\n'), path }];
    } catch {
      return [];
    }
  });
}

/** processStartTime is field 22 (starttime, clock ticks since boot) of `/proc/<pid>/stat`. */
export function processStartTime(pid: number): string | undefined {
  return processStat(pid)?.[19];
}

/** processCommandLine reads `/proc/<pid>/cmdline` as its arguments; undefined without /proc. */
export function processCommandLine(pid: number): string[] | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  return raw.replace(/\0$/, '').split('\0');
}

/**
 * provePortpub throws ERR_NOT_PORTPUB unless `state.pid` is provably the process that wrote
 * `state`: its recorded kernel start time and command line both match the live process's. A pid
 * is reused after a process dies, so anything about to be signalled must pass this first; a state
 * file that lacks either record proves nothing.
 */
export function provePortpub(state: State): void {
  const refuse = (why: string): never => {
    throw new PortpubError(
      ERR_NOT_PORTPUB,
      `pid ${state.pid} is not a portpub that can be proven: ${why}; nothing was signalled`,
      EXIT_RUNTIME,
    );
  };
  if (state.procStart === undefined || state.cmdline === undefined) {
    refuse(
      'its state file does not record the process start time and command line, so it cannot ' +
        'be told from an unrelated process that got the same pid',
    );
  }
  const start = processStartTime(state.pid);
  if (start === undefined) refuse('no such process');
  if (start !== state.procStart) refuse('that pid now belongs to a process started later');
  const now = processCommandLine(state.pid);
  if (now === undefined || now.join('\0') !== state.cmdline!.join('\0')) {
    refuse('its command line is not the one its state file recorded');
  }
}

function parseState(text: string, pid: number): State | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const s = v as Record<string, unknown>;
  const optionalString = (x: unknown) => x === undefined || typeof x === 'string';
  if (
    s.pid !== pid ||
    typeof s.startedAt !== 'string' ||
    !optionalString(s.name) ||
    !optionalString(s.configFile) ||
    !optionalString(s.procStart) ||
    !(
      s.cmdline === undefined ||
      (Array.isArray(s.cmdline) && s.cmdline.every((a) => typeof a === 'string'))
    ) ||
    !Array.isArray(s.bindings) ||
    !s.bindings.every(isBinding) ||
    !optionalString(s.project) ||
    !(s.services === undefined || (Array.isArray(s.services) && s.services.every(isServiceState)))
  ) {
    return undefined;
  }
  return v as State;
}

function isBinding(v: unknown): v is Binding {
  if (typeof v !== 'object' || v === null) return false;
  const b = v as Record<string, unknown>;
  return (
    (b.name === undefined || typeof b.name === 'string') &&
    typeof b.hostIp === 'string' &&
    Number.isInteger(b.hostPort) &&
    typeof b.targetHost === 'string' &&
    Number.isInteger(b.targetPort) &&
    (PROTOCOLS as readonly unknown[]).includes(b.protocol)
  );
}

function isServiceState(v: unknown): v is ServiceState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return (
    typeof s.name === 'string' &&
    (s.containerName === undefined || typeof s.containerName === 'string') &&
    typeof s.targetHost === 'string' &&
    Array.isArray(s.expose) &&
    s.expose.every(
      (e: unknown) =>
        typeof e === 'object' &&
        e !== null &&
        Number.isInteger((e as Record<string, unknown>).port) &&
        (PROTOCOLS as readonly unknown[]).includes((e as Record<string, unknown>).protocol),
    )
  );
}

/** removeQuietly deletes a file; one already gone is not an error. */
export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
