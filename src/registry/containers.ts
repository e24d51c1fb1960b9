// Records of `portpub run` services, as Docker keeps containers: one directory per service under
// `<state dir>/containers/<id>/` with its configuration and state (`config.json`), its output
// (`log`, when detached), its private /etc/hosts; beside it `<short id>.sock`, the Unix socket its
// linked peers dial. Records outlive the service (for `ps -a`, `logs`, `rm`); a record whose
// portpub died is shown as dead.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { EXIT_RUNTIME, PortpubError } from '../errors.js';
import { linkEnv, type EnvVar } from '../docker/links.js';
import type { Binding } from '../docker/report.js';
import type { RestartPolicy } from '../docker/restart.js';
import type { PortMapping } from '../docker/spec.js';
import { checkNameFree } from '../docker/names.js';
import { claimFile, pause, releaseFile } from './pid-claim.js';
import {
  checkStateDir,
  ensureStateDir,
  pidFiles,
  processGone,
  processStartTime,
  provenAlive,
  stateDir,
  zombie,
  type ProcessRef,
} from './state.js';
import {
  ERR_NO_SUCH_CONTAINER,
  ERR_NAME_IN_USE,
  ERR_BAD_NAME,
  ERR_CONTAINER_RUNNING,
  ERR_STATE_DIR,
} from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_NO_SUCH_CONTAINER, ERR_NAME_IN_USE, ERR_BAD_NAME, ERR_CONTAINER_RUNNING };
export { processGone, thisProcess } from './state.js';

/** ExposedPort is one port the service listens on inside, published or not. */
export interface ExposedPort {
  port: number;
  protocol: 'tcp' | 'udp' | 'sctp';
}

/**
 * ServiceKind is what a record serves: a `portpub run` command in its namespaces (absent in
 * records from before kinds), or a detached plain `portpub -d -p ...` / `portpub up -d`, which
 * publish ports only (no namespace, no link socket, no address of their own).
 */
export type ServiceKind = 'run' | 'serve' | 'up';

/** ContainerConfig is what `run` (or `-d`, `up -d`) was asked for, fixed at creation. */
export interface ContainerConfig {
  kind?: ServiceKind;
  /** `up -d`: the compose project, and its services that publish ports (for `down`). */
  project?: string;
  services?: string[];
  /** 64 hex digits; the short id (12) is the hostname. */
  id: string;
  name: string;
  command: string;
  args: string[];
  /** ISO 8601 creation time. */
  created: string;
  network: 'private' | 'host';
  /** The -e/--env-file variables, in Docker's order (the linked peers' `<ALIAS>_ENV_*`). */
  env: [string, string][];
  /** The same values as given, in order (a bare KEY unsets a default): the service's own. */
  userEnv: string[];
  /** The -p mappings (after -P), as parsed. */
  publish: PortMapping[];
  exposed: ExposedPort[];
  links: string[];
  /** The service's address as its linked peers see it (inside their namespaces). */
  ip: string;
  detach: boolean;
  autoRemove: boolean;
  interactive: boolean;
  /** run -t: the command runs on a terminal of its own (absent in older records: no). */
  tty?: boolean;
  /** run --init: tini is PID 1 in its namespaces (absent: no). */
  init?: boolean;
  /** run --hostname (else the short id), --add-host entries and -w (absent in older records). */
  hostname?: string;
  addHosts?: [string, string][];
  workdir?: string;
  /** run --restart (absent: no). */
  restart?: RestartPolicy;
  /** The serving options, for a detached portpub to pick up. */
  serve: Record<string, unknown>;
}

/** ContainerState is the running part, rewritten as the service starts and ends. */
export interface ContainerState {
  status: 'created' | 'running' | 'exited';
  /** The portpub process serving it, and that process's kernel start time. */
  pid?: number;
  procStart?: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  bindings?: Binding[];
  /**
   * A `run` command's environment as it started, for `exec`: in a network of its own the whole of
   * it, on the host's the variables portpub set over its own environment.
   */
  env?: [string, string][];
  /** A `run --network host` command's working directory, where `exec` runs by default. */
  cwd?: string;
  /**
   * A `run -t --network host` command's own pid and kernel start time: script gives it a session
   * of its own, out of the portpub's process group, so `stop` ends it by pid when the portpub
   * cannot (it was SIGKILLed), once the start time proves the pid is still that command.
   */
  commandPid?: number;
  commandStart?: string;
  /**
   * Set by `restart` from before its stop until its start, to its own pid and kernel start time:
   * a `--rm` service is then kept through the stop, as Docker's daemon keeps it through a restart,
   * for as long as that `restart` lives (one killed half-way keeps nothing).
   */
  keepOnStop?: ProcessRef;
  /**
   * Its command ended and its --restart policy starts it again: its portpub (pid, still running,
   * status still `running`, so that `stop` signals it) waits out the delay. Docker's Restarting.
   */
  restarting?: boolean;
  /** How many times the policy started it again since it was last started. Docker's RestartCount. */
  restartCount?: number;
}

export type ContainerRecord = ContainerConfig & { state: ContainerState };

/** kept says whether a live `restart` keeps this record through its stop (keepOnStop). */
function kept(record: ContainerRecord): boolean {
  const by = record.state.keepOnStop;
  // A record from before keepOnStop named its restarter held `true`: nothing proves it lives.
  return typeof by === 'object' && by !== null && provenAlive(by);
}

/** containersDir is `<state dir>/containers`. */
export function containersDir(dir: string = stateDir()): string {
  return join(dir, 'containers');
}

/** containerPath is a file of one service's directory. */
export function containerPath(
  id: string,
  file: 'config.json' | 'log' | 'hosts' | 'hostname' | 'link.sock',
  dir: string = stateDir(),
): string {
  // A Unix socket path has room for 107 bytes: the link socket sits higher, named by short id.
  if (file === 'link.sock') return join(containersDir(dir), `${id.slice(0, 12)}.sock`);
  return join(containersDir(dir), id, file);
}

/** newId is a container id as Docker makes them: 32 random bytes in hex. */
export function newId(): string {
  return randomBytes(32).toString('hex');
}

const ADJECTIVES = [
  'brave',
  'calm',
  'eager',
  'fond',
  'keen',
  'lucid',
  'merry',
  'proud',
  'quiet',
  'sharp',
  'swift',
  'tender',
  'vivid',
  'wise',
  'zen',
];
const NOUNS = [
  'ada',
  'babbage',
  'curie',
  'dijkstra',
  'euler',
  'fermi',
  'gauss',
  'hopper',
  'knuth',
  'lovelace',
  'noether',
  'pascal',
  'ritchie',
  'turing',
  'wozniak',
];

/** generateName makes a free `adjective_scientist` name, as Docker's name generator does. */
export function generateName(taken: ReadonlySet<string>): string {
  for (let i = 0; ; i++) {
    const [a, b] = randomBytes(2);
    const base = `${ADJECTIVES[a! % ADJECTIVES.length]}_${NOUNS[b! % NOUNS.length]}`;
    const name = i < 10 ? base : `${base}${i}`;
    if (!taken.has(name)) return name;
  }
}

/**
 * createContainer writes a new record after checking the name: a name held by any record, running
 * or not, is Docker's conflict error. The directory is the service's own (mode 0700 like the state
 * directory).
 */
export function createContainer(
  config: ContainerConfig,
  dir: string = stateDir(),
): ContainerRecord {
  ensureStateDir(dir);
  mkdirSync(containersDir(dir), { recursive: true, mode: 0o700 });
  const holders = () =>
    listContainers(dir).map((c) => ({ name: c.name, by: `container "${c.id}"` }));
  checkNameFree(config.name, holders());
  // The name is taken by creating `<name>.name` exclusively, so two runs cannot both get it; a
  // lock whose record is gone (removed by hand) is stale and taken over.
  const lock = join(containersDir(dir), `${config.name}.name`);
  try {
    writeFileSync(lock, config.id, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const owner = readFileSync(lock, 'utf8');
    const live = readRecord(owner, dir);
    checkNameFree(config.name, live ? [{ name: live.name, by: `container "${owner}"` }] : []);
    writeFileSync(lock, config.id, { mode: 0o600 });
  }
  mkdirSync(join(containersDir(dir), config.id), { mode: 0o700 });
  const record: ContainerRecord = { ...config, state: { status: 'created' } };
  writeRecord(record, dir);
  return record;
}

/** writeRecord replaces a record atomically (temp file, fsync, rename). */
export function writeRecord(record: ContainerRecord, dir: string = stateDir()): void {
  const final = containerPath(record.id, 'config.json', dir);
  const tmp = `${final}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(record, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, final);
}

/**
 * updateState merges `state` into a record's state and writes it back, holding the record's lock:
 * undefined if the record is gone.
 */
export function updateState(
  id: string,
  state: Partial<ContainerState>,
  dir: string = stateDir(),
): ContainerRecord | undefined {
  return locked(id, dir, () => {
    const record = readRecord(id, dir);
    if (!record) return undefined;
    const next = { ...record, state: { ...record.state, ...state } };
    writeRecord(next, dir);
    return next;
  });
}

/** How long a writer waits for a record's lock; a holder holds it for one read and one write. */
const LOCK_WAIT_MS = 10_000;

/**
 * locked runs `fn` holding the lock of record `id` (containers/ID/lock, a pid claim), so that two
 * processes updating one record at once (a service's portpub marking it running while `restart`
 * marks it kept through the stop) do not lose one's change to the other's read-modify-write.
 * Undefined, without running `fn`, once the record's directory is gone (removed under the lock).
 */
function locked<T>(id: string, dir: string, fn: () => T, wait = true): T | undefined {
  const path = join(containersDir(dir), id, 'lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  try {
    // Not waiting, a lock held now is a reason to leave it: busy does nothing, rounds run out.
    const claimed = claimFile(path, process.pid, {
      rounds: wait ? Infinity : 3,
      busy: (holder) => {
        if (!wait) return;
        if (Date.now() > deadline) {
          throw new PortpubError(
            ERR_STATE_DIR,
            `the record of service ${id.slice(0, 12)} stays locked by process ` +
              `${holder?.pid ?? 'unknown'} (${path})`,
            EXIT_RUNTIME,
          );
        }
        pause(2);
      },
    });
    if (!claimed) return undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return fn();
  } finally {
    releaseFile(path, process.pid);
  }
}

/**
 * markRunning records that this process now serves the record: its pid (with the kernel start
 * time, so `stop` can prove it), when it started, and what it bound.
 */
export function markRunning(
  id: string,
  bindings: ContainerState['bindings'],
  dir: string = stateDir(),
  startedAt: string = new Date().toISOString(),
): ContainerRecord | undefined {
  const procStart = processStartTime(process.pid);
  return updateState(
    id,
    {
      status: 'running',
      pid: process.pid,
      ...(procStart !== undefined ? { procStart } : {}),
      startedAt,
      bindings,
    },
    dir,
  );
}

/** readRecord reads one record by full id; undefined if it is gone or unreadable. */
export function readRecord(id: string, dir: string = stateDir()): ContainerRecord | undefined {
  try {
    return JSON.parse(
      readFileSync(containerPath(id, 'config.json', dir), 'utf8'),
    ) as ContainerRecord;
  } catch {
    return undefined;
  }
}

/** listContainers reads every record, oldest first. */
export function listContainers(dir: string = stateDir()): ContainerRecord[] {
  // Another user's directory: the one-line refusal that says what to do, not EACCES's stack.
  if (!checkStateDir(dir, { missingOk: true })) return [];
  let ids: string[];
  try {
    ids = readdirSync(containersDir(dir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  for (const name of ids) if (name.startsWith('.removing-')) removeAbandoned(name, dir);
  return ids
    .filter((id) => /^[0-9a-f]{64}$/.test(id))
    .map((id) => readRecord(id, dir))
    .filter((r): r is ContainerRecord => r !== undefined && !removedLeftover(r, dir))
    .sort((a, b) => a.created.localeCompare(b.created));
}

/**
 * removedLeftover removes, and says so, a --rm service that exited but was kept for an attacher
 * or a `restart` that died before it could remove it or start it again (`start -a` or `restart`
 * killed with SIGKILL): Docker's daemon removes a --rm container whoever was attached, so no
 * listing shows one. One that a live `restart` keeps, or whose attacher lives, stays; so does one
 * that cannot be removed now (its lock held), until the next listing. All of that is checked again
 * on the record as it is under its lock: a `start` may have made it `created` since it was read.
 */
function removedLeftover(record: ContainerRecord, dir: string): boolean {
  const leftover = (r: ContainerRecord | undefined): r is ContainerRecord =>
    r?.state.status === 'exited' && autoRemovable(r, dir);
  if (!leftover(record)) return false;
  try {
    return removeRecord(record, dir, leftover, false);
  } catch {
    return false;
  }
}

/** autoRemovable: run with --rm, and neither a live `restart` nor a live attacher keeps it. */
function autoRemovable(record: ContainerRecord, dir: string): boolean {
  return record.autoRemove === true && !kept(record) && !attached(record.id, dir);
}

/**
 * removeAbandoned finishes a removal whose process died between moving the directory aside
 * (`.removing-ID-PID`, removeContainer) and deleting it.
 */
function removeAbandoned(name: string, dir: string): void {
  const pid = Number(name.slice(name.lastIndexOf('-') + 1));
  if (!Number.isSafeInteger(pid) || pid <= 0 || !processGone(pid)) return;
  try {
    rmSync(join(containersDir(dir), name), {
      recursive: true,
      force: true,
      maxRetries: 5,
      retryDelay: 10,
    });
  } catch {
    // left for the next listing
  }
}

/** Liveness is what a record's state means now: its portpub may have died without a word. */
export type Liveness = 'created' | 'running' | 'exited' | 'dead';

/** liveness checks a running record's pid (and its start time, against pid reuse). */
export function liveness(record: ContainerRecord): Liveness {
  const s = record.state;
  if (s.status !== 'running') return s.status;
  if (s.pid === undefined) return 'dead';
  try {
    process.kill(s.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return 'dead';
  }
  // A killed portpub whose parent has not reaped it yet is a zombie: gone, for every purpose.
  if (zombie(s.pid)) return 'dead';
  if (s.procStart !== undefined) {
    const now = processStartTime(s.pid);
    if (now !== undefined && now !== s.procStart) return 'dead';
  }
  return 'running';
}

/**
 * findContainer resolves NAME as Docker does: a full id, a name, then a unique id prefix.
 * Throws ERR_NO_SUCH_CONTAINER with Docker's text.
 */
export function findContainer(ref: string, dir: string = stateDir()): ContainerRecord {
  const all = listContainers(dir);
  const found =
    all.find((c) => c.id === ref) ??
    all.find((c) => c.name === ref) ??
    (/^[0-9a-f]+$/.test(ref) ? uniquePrefix(all, ref) : undefined);
  if (!found) {
    throw new PortpubError(ERR_NO_SUCH_CONTAINER, `No such container: ${ref}`, EXIT_RUNTIME);
  }
  return found;
}

/**
 * isRunService: the record is a `portpub run` service in a network of its own (a namespace, a
 * link socket, an ip); not a `run -d --network host` one.
 */
export function isRunService(record: ContainerRecord): boolean {
  return isRunRecord(record) && record.network !== 'host';
}

/** isRunRecord: a `portpub run` record (either network), not a plain `-d` or `up -d` one. */
export function isRunRecord(record: ContainerRecord): boolean {
  return record.kind === undefined || record.kind === 'run';
}

/**
 * findRunning is findContainer for a running `portpub run` service, or undefined: a detached
 * plain run or `up` answers through its state file, as the foreground ones do.
 */
export function findRunning(ref: string, dir: string = stateDir()): ContainerRecord | undefined {
  try {
    const record = findContainer(ref, dir);
    return liveness(record) === 'running' && isRunService(record) ? record : undefined;
  } catch {
    return undefined;
  }
}

/**
 * containerLinkEnv is what `--link <record>:<alias>` sets in a recipient named `parent`: every
 * exposed or published port at the service's link address, and its -e variables.
 */
export function containerLinkEnv(record: ContainerRecord, alias: string, parent: string): EnvVar[] {
  return linkEnv({
    parent,
    alias,
    ip: record.ip,
    ports: record.exposed.map((p) => ({ port: p.port, protocol: p.protocol })),
    env: Object.fromEntries(record.env),
  });
}

function uniquePrefix(
  all: readonly ContainerRecord[],
  prefix: string,
): ContainerRecord | undefined {
  const matches = all.filter((c) => c.id.startsWith(prefix));
  return matches.length === 1 ? matches[0] : undefined;
}

/**
 * markExited records that a service's run ended with `code` (now), or, without one, that it stays
 * down after the end already recorded (a stop during a restart's wait).
 */
export function markExited(
  id: string,
  code: number | undefined,
  dir: string = stateDir(),
): ContainerRecord | undefined {
  const end = code === undefined ? {} : { exitCode: code, finishedAt: new Date().toISOString() };
  return updateState(id, { status: 'exited', ...end, bindings: [], restarting: undefined }, dir);
}

/**
 * removeIfAutoRemove removes a service that ended, if it was run with --rm and no `restart` is
 * under way.
 */
export function removeIfAutoRemove(
  done: ContainerRecord | undefined,
  dir: string = stateDir(),
): void {
  // An attacher removes it once it has read the exit code. Checked again under the lock: a
  // `start` may have made it `created` since `done` was read.
  const ended = (r: ContainerRecord | undefined): r is ContainerRecord =>
    r !== undefined && r.state.status !== 'created' && liveness(r) !== 'running';
  if (done === undefined || !ended(done) || !autoRemovable(done, dir)) return;
  removeRecord(done, dir, (now) => ended(now) && autoRemovable(now, dir));
}

/**
 * attach registers this process as attached to service `id` (`portpub start -a`), as a file
 * containers/ID/attached/PID holding its start time, and returns the function that ends that.
 * While one is attached a --rm service that ends is not removed (removeIfAutoRemove): the
 * attacher reads its exit code first, as docker start -a learns the code of a container the
 * daemon removes, and removes it then.
 */
export function attach(id: string, dir: string = stateDir()): () => void {
  const d = join(containersDir(dir), id, 'attached');
  const path = join(d, String(process.pid));
  try {
    mkdirSync(d, { recursive: false, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Its record removed since it was found (an rm, its --rm end): Docker's words.
    if (code === 'ENOENT') {
      throw new PortpubError(ERR_NO_SUCH_CONTAINER, `No such container: ${id}`, EXIT_RUNTIME);
    }
    if (code !== 'EEXIST') throw err;
  }
  // Written aside and renamed in place, so that a reader never finds it empty (not attached).
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${processStartTime(process.pid) ?? ''}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return () => rmSync(path, { force: true });
}

/** attached says whether a live process (proven by its start time) is attached to service id. */
function attached(id: string, dir: string): boolean {
  return pidFiles(join(containersDir(dir), id, 'attached')).some(
    ({ pid, lines: [start = ''] }) => start !== '' && provenAlive({ pid, start }),
  );
}

/** removeContainer deletes a record and its files; a running one is refused (Docker's text). */
export function removeContainer(record: ContainerRecord, dir: string = stateDir()): void {
  const refuseRunning = (r: ContainerRecord | undefined): true => {
    if (r === undefined || liveness(r) !== 'running') return true;
    throw new PortpubError(
      ERR_CONTAINER_RUNNING,
      `cannot remove container "/${r.name}": container is running: stop the container before removing`,
      EXIT_RUNTIME,
    );
  };
  refuseRunning(record);
  // Its record as it is under the lock is checked again: a `start` may have run it since.
  removeRecord(record, dir, refuseRunning);
}

/**
 * removeRecord deletes a record and its files if `may` says so of the record as it is under its
 * lock (undefined if it cannot be read), and says whether it did. Not waiting (`wait` false), a
 * record whose lock is held now is left. Under the lock, so that no update is half-way through:
 * the directory is first moved out of the way whole (a recursive rm would unlink the lock before
 * the record, letting a waiting writer in), so a writer waiting for the lock finds the record
 * gone; then it is deleted.
 */
function removeRecord(
  record: ContainerRecord,
  dir: string,
  may: (now: ContainerRecord | undefined) => boolean,
  wait = true,
): boolean {
  const trash = join(containersDir(dir), `.removing-${record.id}-${process.pid}`);
  const moved = locked(
    record.id,
    dir,
    () => {
      if (!may(readRecord(record.id, dir))) return false;
      renameSync(join(containersDir(dir), record.id), trash);
      return true;
    },
    wait,
  );
  // Refused, or its lock held: left as it is. Gone already (undefined, waiting): its files go.
  if (moved === false || (moved === undefined && !wait)) return false;
  if (moved === true)
    rmSync(trash, { recursive: true, force: true, maxRetries: 5, retryDelay: 10 });
  rmSync(containerPath(record.id, 'link.sock', dir), { force: true });
  const lock = join(containersDir(dir), `${record.name}.name`);
  try {
    if (readFileSync(lock, 'utf8') === record.id) rmSync(lock, { force: true });
  } catch {
    // no lock (a record from before locks)
  }
  return moved === true;
}

/**
 * pickIp gives a new service its address as linked peers see it: 127.a.b.c (all of 127/8 reaches
 * `lo` inside a namespace), outside 127.0.0.0/24 so never 127.0.0.1, and not one another record
 * holds.
 */
export function pickIp(id: string, dir: string = stateDir()): string {
  const taken = new Set(listContainers(dir).map((c) => c.ip));
  const bytes = Buffer.from(id.slice(0, 6), 'hex');
  for (let i = 0; ; i++) {
    const a = 1 + ((bytes[0]! + i) % 254);
    const ip = `127.${a}.${bytes[1]!}.${1 + (bytes[2]! % 254)}`;
    if (!taken.has(ip)) return ip;
  }
}
