// Reading a compose project from disk as `docker compose` does: which files (-f, or the default
// names found from the working directory up), the `.env` beside them, the project name and the
// active profiles; each file at most MAX_COMPOSE_FILE_BYTES. The parsing itself is src/docker's.
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PortpubError, UsageError } from '../errors.js';
import {
  COMPOSE_FILE_NAMES,
  COMPOSE_OVERRIDE_FILE_NAMES,
  DEFAULT_CONFIG_FILES,
  mergeCompose,
  parseComposeFragment,
  type ComposeService,
} from '../docker/compose.js';
import { parseDotenv } from '../docker/dotenv.js';
import type { PublishRequest } from './publisher.js';

/**
 * MAX_COMPOSE_FILE_BYTES bounds each config file (and the `.env`): 4 MiB, some hundred times a
 * large real compose file, and what YAML parsing does in about seven seconds and 200 MB. A larger
 * file is refused before it is parsed.
 */
export const MAX_COMPOSE_FILE_BYTES = 4 * 1024 * 1024;

/** PROJECT_NAME is compose's rule for a project name given by -p, COMPOSE_PROJECT_NAME or `name:`. */
export const PROJECT_NAME = /^[a-z0-9][a-z0-9_-]*$/;

export interface ProjectOptions {
  /** `-f` files in order; empty or absent: COMPOSE_FILE, else the default names, from `cwd` up. */
  files?: readonly string[];
  /** Working directory for relative paths and discovery; default process.cwd(). */
  cwd?: string;
  /** `-p/--project-name`. */
  projectName?: string;
  /** `--profile` (repeatable); COMPOSE_PROFILES when absent. */
  profiles?: readonly string[];
  /** `--target-for SERVICE=HOST`. */
  targetFor?: Readonly<Record<string, string>>;
  /** The process environment; default process.env. Values here win over `.env`, as in compose. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** ComposeProject is a project read from disk, as plain data (it crosses a worker boundary). */
export interface ComposeProject {
  /** The compose project name. */
  name: string;
  /** Absolute paths of the files read, in merge order (the first is the main file). */
  files: string[];
  services: ComposeService[];
  warnings: string[];
}

/**
 * loadComposeProject finds, reads and merges the files of a project. Errors (a missing or too
 * large file, bad YAML, a bad value) are UsageError naming the file.
 */
export function loadComposeProject(opts: ProjectOptions = {}): ComposeProject {
  const cwd = opts.cwd ?? process.cwd();
  const osEnv = opts.env ?? process.env;
  const warnings: string[] = [];
  // compose's COMPOSE_FILE (COMPOSE_PATH_SEPARATOR-separated, ':' by default) stands in for -f.
  const fromEnv = (osEnv.COMPOSE_FILE ?? '')
    .split(osEnv.COMPOSE_PATH_SEPARATOR || ':')
    .filter((f) => f !== '');
  const given =
    opts.files && opts.files.length > 0 ? opts.files : fromEnv.length > 0 ? fromEnv : undefined;
  // `-f -` is standard input, as in compose; the project directory is then the working one.
  const found = given
    ? given.map((f) => ({ path: f === '-' ? STDIN : resolve(cwd, f), shown: f }))
    : discover(cwd);
  const projectDir = found[0]!.shown === '-' ? resolve(cwd) : dirname(found[0]!.path);

  // .env beside the (first) file: compose's project directory. The environment wins over it.
  const dotenvPath = join(projectDir, '.env');
  const dotenv = existsSync(dotenvPath)
    ? parseDotenv(readBounded(dotenvPath, dotenvPath), dotenvPath, osEnv)
    : {};
  const env: Record<string, string | undefined> = { ...dotenv, ...osEnv };

  const profiles =
    opts.profiles && opts.profiles.length > 0
      ? opts.profiles
      : (env.COMPOSE_PROFILES ?? '')
          .split(',')
          .map((p) => p.trim())
          .filter((p) => p !== '');

  const fragments = found.map(({ path, shown }) =>
    parseComposeFragment(readBounded(path, shown), shown, { env }),
  );
  const merged = mergeCompose(fragments, {
    env,
    profiles,
    ...(opts.targetFor ? { targetFor: opts.targetFor } : {}),
  });
  warnings.push(...merged.warnings);
  const name = projectName(opts.projectName, env.COMPOSE_PROJECT_NAME, merged.name, projectDir);
  return { name, files: found.map((f) => f.path), services: merged.services, warnings };
}

/**
 * projectName is compose's precedence: `-p`, then COMPOSE_PROJECT_NAME, then `name:` in the file
 * (each must already be a valid name), else the project directory's name made into one
 * (lower-cased, other characters dropped).
 */
export function projectName(
  flag: string | undefined,
  envName: string | undefined,
  fileName: string | undefined,
  projectDir: string,
): string {
  const explicit: [string | undefined, string][] = [
    [flag, '--project-name'],
    [envName, 'COMPOSE_PROJECT_NAME'],
    [fileName, 'name:'],
  ];
  for (const [value, from] of explicit) {
    if (value === undefined || value === '') continue;
    if (!PROJECT_NAME.test(value)) {
      throw new UsageError(
        `invalid project name "${value}" (${from}): must contain only lowercase letters, ` +
          `decimal digits, dashes, and underscores, and must begin with a lowercase letter or ` +
          `decimal digit`,
      );
    }
    return value;
  }
  const normalized = basename(projectDir)
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '')
    .replace(/^[^a-z0-9]+/, '');
  if (normalized === '') {
    throw new UsageError(
      `cannot make a project name of the directory ${projectDir}: give --project-name NAME`,
    );
  }
  return normalized;
}

/**
 * discover is compose's default file search: from `cwd` up to the root, the first directory
 * holding one of DEFAULT_CONFIG_FILES (portpub's names first, then compose's) gives the main file;
 * next to a compose-named file, the first of compose's override names that exists is merged too.
 */
function discover(cwd: string): { path: string; shown: string }[] {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const main = DEFAULT_CONFIG_FILES.find((f) => existsSync(join(dir, f)));
    if (main !== undefined) {
      const out = [{ path: join(dir, main), shown: join(dir, main) }];
      if (COMPOSE_FILE_NAMES.includes(main)) {
        const override = COMPOSE_OVERRIDE_FILE_NAMES.find((f) => existsSync(join(dir, f)));
        if (override !== undefined) {
          out.push({ path: join(dir, override), shown: join(dir, override) });
        }
      }
      return out;
    }
    if (dirname(dir) === dir) break;
  }
  throw new UsageError(
    `no config file: none of ${DEFAULT_CONFIG_FILES.join(', ')} in ${cwd} or above; give -f FILE`,
  );
}

/**
 * readBounded reads a file as UTF-8, refusing one over MAX_COMPOSE_FILE_BYTES without reading it
 * all (a FIFO or a growing file is cut off at the limit too).
 */
export function readBounded(path: string, shown: string, limit = MAX_COMPOSE_FILE_BYTES): string {
  // Standard input is read from fd 0 itself: opening /dev/stdin fails when it is a socket.
  const stdin = path === STDIN;
  let fd: number;
  try {
    fd = stdin ? 0 : openSync(path, 'r');
  } catch (err) {
    throw new UsageError(`cannot read ${shown}: ${(err as Error).message}`);
  }
  const tooLarge = (size: string) =>
    new UsageError(
      `${shown}: too large (${size}): config files are limited to ${limit} bytes ` +
        `(${formatMiB(limit)})`,
    );
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new UsageError(`cannot read ${shown}: it is a directory`);
    if (st.isFile() && st.size > limit) throw tooLarge(`${st.size} bytes`);
    const buf = Buffer.allocUnsafe(limit + 1);
    let len = 0;
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
      if (len > limit) throw tooLarge(`over ${limit} bytes`);
    }
    return buf.toString('utf8', 0, len);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${shown}: ${(err as Error).message}`);
  } finally {
    if (!stdin) closeSync(fd);
  }
}

/** STDIN is the path `-f -` stands for. */
const STDIN = '/dev/stdin';

function formatMiB(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
}

/** WORKER_MEMORY_MB caps the worker's heap: a file within the size limit needs well under it. */
const WORKER_MEMORY_MB = 512;

/**
 * loadComposeProjectOffThread is loadComposeProject in a worker thread (compose-worker.js beside
 * this module, or `workerUrl`), for reloads while traffic flows: the event loop stays free however
 * long the parse takes, and a runaway parse hits the worker's heap cap instead of the process's.
 * From TypeScript sources (tests), where no compiled worker exists, it reads in this thread.
 */
export function loadComposeProjectOffThread(
  opts: ProjectOptions = {},
  workerUrl: URL = new URL('./compose-worker.js', import.meta.url),
): Promise<ComposeProject> {
  if (!existsSync(fileURLToPath(workerUrl))) {
    return new Promise((resolve) => resolve(loadComposeProject(opts)));
  }
  const data: ProjectOptions = {
    ...opts,
    cwd: opts.cwd ?? process.cwd(),
    env: { ...(opts.env ?? process.env) },
  };
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerUrl, {
      workerData: data,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_MEMORY_MB },
      stdout: false,
      stderr: false,
    });
    let settled = false;
    worker.once('message', (msg: WorkerReply) => {
      settled = true;
      void worker.terminate();
      if (msg.packed) unpackProject(msg.packed).then(resolve, reject);
      else reject(replyError(msg.error));
    });
    worker.once('error', (err: Error & { code?: string }) => {
      if (settled) return;
      settled = true;
      const why =
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? `reading it needed more than ${WORKER_MEMORY_MB} MB`
          : err.message;
      reject(new UsageError(`cannot read ${opts.files?.join(', ') ?? 'the config file'}: ${why}`));
    });
    worker.once('exit', (code) => {
      if (!settled) {
        settled = true;
        reject(new UsageError(`config reader exited with code ${code} before answering`));
      }
    });
  });
}

interface WorkerReply {
  packed?: PackedProject;
  error?: { message: string; code?: string; exitCode?: number };
}

function replyError(e: WorkerReply['error']): Error {
  if (!e) return new Error('config reader sent no answer');
  if (e.code === undefined) return new Error(e.message);
  return new PortpubError(e.code, e.message, e.exitCode);
}

/**
 * PackedProject is a ComposeProject as the worker sends it: each service's mappings and expose:
 * ports as integer columns in transferred buffers, indexing one table of the distinct strings.
 * Reading it costs the receiving thread a few strings and buffers however many mappings there
 * are; unpackProject then builds the objects a few thousand at a time.
 */
export interface PackedProject {
  name: string;
  files: string[];
  warnings: string[];
  strings: string[];
  services: PackedService[];
  /** The buffers to transfer (not copy) with postMessage. */
  transfer: ArrayBuffer[];
}

interface PackedService {
  name: string;
  target: string;
  containerName?: string;
  /** MAPPING_FIELDS per mapping: hostIp, hostPort, targetPort, protocol, portName (see packProject). */
  mappings: Int32Array;
  /** EXPOSE_FIELDS per port: port, protocol (a string index). */
  expose: Int32Array;
}

const MAPPING_FIELDS = 5;
const EXPOSE_FIELDS = 2;
/** CANONICAL_PORT: a hostPort written as this is packed as its number, not as a string. */
const CANONICAL_PORT = /^(0|[1-9][0-9]{0,4})$/;

/**
 * packProject packs a project for the worker's answer. Strings are indexes into `strings`; a
 * hostPort is its number when canonical (`8080`), else -1 - its string index (a range, or '' for
 * an ephemeral port); a missing portName is -1.
 */
export function packProject(project: ComposeProject): PackedProject {
  const strings: string[] = [];
  const index = new Map<string, number>();
  const str = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      i = strings.push(s) - 1;
      index.set(s, i);
    }
    return i;
  };
  const transfer: ArrayBuffer[] = [];
  const services = project.services.map((svc): PackedService => {
    const mappings = new Int32Array(svc.mappings.length * MAPPING_FIELDS);
    svc.mappings.forEach((m, i) => {
      const o = i * MAPPING_FIELDS;
      mappings[o] = str(m.hostIp);
      mappings[o + 1] = CANONICAL_PORT.test(m.hostPort) ? Number(m.hostPort) : -1 - str(m.hostPort);
      mappings[o + 2] = m.targetPort;
      mappings[o + 3] = str(m.protocol);
      mappings[o + 4] = m.portName === undefined ? -1 : str(m.portName);
    });
    const expose = new Int32Array(svc.expose.length * EXPOSE_FIELDS);
    svc.expose.forEach((e, i) => {
      expose[i * EXPOSE_FIELDS] = e.port;
      expose[i * EXPOSE_FIELDS + 1] = str(e.protocol);
    });
    transfer.push(mappings.buffer, expose.buffer);
    return {
      name: svc.name,
      target: svc.target,
      ...(svc.containerName !== undefined ? { containerName: svc.containerName } : {}),
      mappings,
      expose,
    };
  });
  const { name, files, warnings } = project;
  return { name, files, warnings, strings, services, transfer };
}

/** UNPACK_CHUNK: objects built between two turns of the event loop (about a millisecond). */
const UNPACK_CHUNK = 2048;

/** unpackProject rebuilds a packed project, yielding to the event loop every UNPACK_CHUNK objects. */
export async function unpackProject(p: PackedProject): Promise<ComposeProject> {
  const { strings } = p;
  let built = 0;
  const pause = (): Promise<unknown> => new Promise((resolve) => setImmediate(resolve));
  const services: ComposeService[] = [];
  const requests: PublishRequest[] = [];
  for (const svc of p.services) {
    const mappings: ComposeService['mappings'] = [];
    for (let o = 0; o < svc.mappings.length; o += MAPPING_FIELDS) {
      const hp = svc.mappings[o + 1]!;
      const portName = svc.mappings[o + 4]!;
      mappings.push({
        hostIp: strings[svc.mappings[o]!]!,
        hostPort: hp >= 0 ? String(hp) : strings[-1 - hp]!,
        targetPort: svc.mappings[o + 2]!,
        protocol: strings[svc.mappings[o + 3]!]! as ComposeService['mappings'][number]['protocol'],
        ...(portName >= 0 ? { portName: strings[portName]! } : {}),
      });
      requests.push(request(svc, mappings.at(-1)!));
      if (++built % UNPACK_CHUNK === 0) await pause();
    }
    const expose: ComposeService['expose'] = [];
    for (let o = 0; o < svc.expose.length; o += EXPOSE_FIELDS) {
      expose.push({
        port: svc.expose[o]!,
        protocol: strings[svc.expose[o + 1]!]! as ComposeService['expose'][number]['protocol'],
      });
      if (++built % UNPACK_CHUNK === 0) await pause();
    }
    services.push({
      name: svc.name,
      target: svc.target,
      mappings,
      expose,
      ...(svc.containerName !== undefined ? { containerName: svc.containerName } : {}),
    });
  }
  const project = { name: p.name, files: p.files, warnings: p.warnings, services };
  prebuilt.set(project, requests);
  return project;
}

/**
 * projectRequests flattens a project's services into publish requests, in file order. For a
 * project unpackProject built, they were built then, a few thousand per turn, and this returns
 * them at once (a reload's caller runs it on the event loop).
 */
export function projectRequests(project: Pick<ComposeProject, 'services'>): PublishRequest[] {
  const built = prebuilt.get(project);
  if (built !== undefined) return built.slice();
  const out: PublishRequest[] = [];
  for (const s of project.services) for (const m of s.mappings) out.push(request(s, m));
  return out;
}

/** prebuilt: the requests unpackProject built for its project. */
const prebuilt = new WeakMap<object, PublishRequest[]>();

function request(
  s: Pick<ComposeService, 'name' | 'target'>,
  m: ComposeService['mappings'][number],
): PublishRequest {
  const { hostIp, hostPort, targetPort, protocol } = m; // without the long syntax's name
  return {
    mapping: { hostIp, hostPort, targetPort, protocol },
    targetHost: s.target,
    name: s.name,
  };
}
