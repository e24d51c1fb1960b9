// Compose-style config files, pure: YAML/JSON text in, each service's target and PortMappings out.
// `ports:` follows compose-spec (short syntax = Docker's -p grammar, long syntax = compose-go's
// ServicePortConfig); several files merge by compose's rules (compose-spec merge.md); the rest of a
// real docker-compose.yml is accepted and ignored.
import { isMap, isScalar, parseDocument, type Document } from 'yaml';
import { UsageError } from '../errors.js';
import {
  base60Tag,
  checkTarget,
  parseExpose,
  parsePorts,
  scalarText,
  typeName,
  type ComposeMapping,
  type Context,
  type ExposedPort,
} from './compose-ports.js';
import { interpolate } from './interpolate.js';

export type { ComposeMapping, ExposedPort } from './compose-ports.js';

/**
 * DEFAULT_CONFIG_FILES are looked for, in this order, when no file is named: portpub's own names,
 * then compose-go's DefaultFileNames (compose.yaml, compose.yml, docker-compose.yml,
 * docker-compose.yaml).
 */
export const DEFAULT_CONFIG_FILES: readonly string[] = [
  'portpub.yaml',
  'portpub.yml',
  'portpub.json',
  'compose.yaml',
  'compose.yml',
  'docker-compose.yml',
  'docker-compose.yaml',
];

/** COMPOSE_FILE_NAMES are compose-go's DefaultFileNames, in its order of preference. */
export const COMPOSE_FILE_NAMES: readonly string[] = DEFAULT_CONFIG_FILES.slice(3);

/** COMPOSE_OVERRIDE_FILE_NAMES are compose-go's DefaultOverrideFileNames, read after a default file. */
export const COMPOSE_OVERRIDE_FILE_NAMES: readonly string[] = [
  'compose.override.yml',
  'compose.override.yaml',
  'docker-compose.override.yml',
  'docker-compose.override.yaml',
];

/** DEFAULT_TARGET is where a service's ports go when nothing names a target. */
export const DEFAULT_TARGET = '127.0.0.1';

/** ComposeService is one service: its name, the address its ports forward to, and what to publish. */
export interface ComposeService {
  name: string;
  /** IP literal (IPv6 without brackets) or host name. */
  target: string;
  mappings: ComposeMapping[];
  expose: ExposedPort[];
  /** `container_name:`, a second name `portpub port` and `env` answer to. */
  containerName?: string;
}

export interface ComposeOptions {
  /** Per-service target, from `--target-for SERVICE=HOST`; naming a service the file lacks is an error. */
  targetFor?: Readonly<Record<string, string>>;
  /** Target for services nothing else gives one. */
  defaultTarget?: string;
  /** Variables for compose's `${VAR}` interpolation in ports, expose and targets; defaults to process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Active profiles (`--profile`, COMPOSE_PROFILES); `*` activates every profile. */
  profiles?: readonly string[];
}

export interface ComposeFile {
  /** Top-level `name:` (the compose project name) after interpolation, last file's if several. */
  name?: string;
  /** The services to publish: those with no `profiles:` or an active one, in file order. */
  services: ComposeService[];
  /** Human-readable, each naming the file (and service and key where there is one). */
  warnings: string[];
}

/** ComposeFragment is one file read on its own, before files are merged and targets resolved. */
export interface ComposeFragment {
  fileName: string;
  name?: string;
  target?: string;
  services: FragmentService[];
  warnings: string[];
}

/** FragmentService is what one file says about a service; a later file adds to or overrides it. */
export interface FragmentService {
  name: string;
  target?: string;
  mappings: ComposeMapping[];
  expose: ExposedPort[];
  profiles?: string[];
  networkMode?: string;
  containerName?: string;
  /** Keys tagged `!reset` (cleared) or `!override` (replacing, not merging), compose's merge tags. */
  reset?: Set<string>;
  override?: Set<string>;
}

/** SERVICE_NAME is compose-spec's pattern for keys under `services:`. */
export const SERVICE_NAME = /^[a-zA-Z0-9._-]+$/;

/** Keys of a compose-spec service; valid compose, meaningless to portpub, so ignored silently. */
const COMPOSE_SERVICE_KEYS = new Set(
  (
    'annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs ' +
    'container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime ' +
    'cpu_shares cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules devices ' +
    'dns dns_opt dns_search domainname entrypoint env_file environment external_links extra_hosts ' +
    'gpus group_add healthcheck hostname image init ipc isolation label_file labels links logging ' +
    'mac_address mem_limit mem_reservation mem_swappiness memswap_limit models network_mode ' +
    'networks oom_kill_disable oom_score_adj pid pids_limit platform post_start pre_stop ' +
    'privileged profiles provider pull_policy pull_refresh_after read_only restart runtime scale ' +
    'secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls ' +
    'tmpfs tty ulimits use_api_socket user userns_mode uts volumes volumes_from working_dir'
  ).split(' '),
);

/** Top-level compose-spec keys portpub has no use for. */
const COMPOSE_TOP_KEYS = new Set([
  'version',
  'name',
  'networks',
  'volumes',
  'secrets',
  'configs',
  'models',
]);

/**
 * parseComposeText reads one compose-style file (YAML 1.2, or JSON) into services; it is
 * mergeCompose of that one file's parseComposeFragment.
 */
export function parseComposeText(
  text: string,
  fileName: string,
  opts: ComposeOptions = {},
): ComposeFile {
  return mergeCompose([parseComposeFragment(text, fileName, opts)], opts);
}

/**
 * parseComposeFragment reads one file of a project on its own: its services' ports, expose,
 * targets, profiles, network_mode and container_name, interpolated with `opts.env` (compose
 * interpolates each file before merging). Unknown keys (not compose-spec, not portpub's, not
 * `x-*`) are ignored with a warning, as is an unquoted port that YAML 1.1 would read as a base-60
 * number. Errors are UsageError whose message names the file and the path, then Docker's text:
 * `portpub.yaml: services.web.ports[1]: invalid proto: xyz` (list indexes count from 0).
 */
export function parseComposeFragment(
  text: string,
  fileName: string,
  opts: Pick<ComposeOptions, 'env'> = {},
): ComposeFragment {
  const warnings: string[] = [];
  const fail = (where: string, message: string): never => {
    throw new UsageError(`${fileName}: ${where ? `${where}: ` : ''}${message}`);
  };
  const ctx: Context = {
    fileName,
    env: opts.env ?? process.env,
    warn: (where, message) => warnings.push(`${fileName}: ${where ? `${where}: ` : ''}${message}`),
    fail,
  };

  const doc = parseDocument(text, {
    version: '1.2',
    schema: 'core',
    merge: true, // `<<: *defaults` is common in compose files and compose honours it
    uniqueKeys: true,
    customTags: [base60Tag],
  });
  const [firstError] = doc.errors;
  if (firstError) fail('', firstError.message);
  const mergeTags = takeMergeTags(doc);
  for (const w of doc.warnings) {
    if (!MERGE_TAG_WARNING.test(w.message)) ctx.warn('', w.message);
  }
  let root: unknown;
  try {
    root = doc.toJS({ mapAsMap: true, maxAliasCount: 100 });
  } catch (err) {
    fail('', err instanceof Error ? err.message : String(err));
  }
  if (root === null || root === undefined) fail('', 'empty compose file');
  if (!(root instanceof Map)) return fail('', 'Top-level object must be a mapping');

  const fragment: ComposeFragment = { fileName, services: [], warnings };
  let servicesNode: unknown;
  for (const [rawKey, value] of root) {
    const key = String(rawKey);
    if (key === 'services') servicesNode = value;
    else if (key === 'x-portpub-target' || key === 'target') {
      fragment.target = checkTarget(ctx, key, interpolate(ctx, key, scalarText(ctx, key, value)));
    } else if (key === 'name') {
      fragment.name = interpolate(ctx, key, scalarText(ctx, key, value));
    } else if (key === 'include') {
      ctx.warn(key, 'not followed: services of included files are not published');
    } else if (!COMPOSE_TOP_KEYS.has(key) && !key.startsWith('x-')) {
      ctx.warn('', `unknown top-level key "${key}" ignored`);
    }
  }

  if (servicesNode !== undefined && servicesNode !== null && !(servicesNode instanceof Map)) {
    fail('services', 'must be a mapping');
  }
  const entries = servicesNode instanceof Map ? [...servicesNode.entries()] : [];
  for (const [rawName, body] of entries) {
    fragment.services.push(readService(ctx, String(rawName), body, mergeTags.get(String(rawName))));
  }
  return fragment;
}

function readService(
  ctx: Context,
  name: string,
  body: unknown,
  tags?: { reset: Set<string>; override: Set<string> },
): FragmentService {
  const where = `services.${name}`;
  if (!SERVICE_NAME.test(name)) {
    ctx.fail('services', `invalid service name "${name}": must match ${SERVICE_NAME.source}`);
  }
  if (body !== null && body !== undefined && !(body instanceof Map)) {
    ctx.fail(where, 'must be a mapping');
  }
  const fields = body instanceof Map ? body : new Map<unknown, unknown>();
  const service: FragmentService = { name, mappings: [], expose: [], ...tags };
  for (const [rawKey, value] of fields) {
    const key = String(rawKey);
    if (tags?.reset.has(key)) continue; // `!reset`: the value is ignored
    const at = `${where}.${key}`;
    if (key === 'ports') service.mappings = parsePorts(ctx, at, value);
    else if (key === 'expose') service.expose = parseExpose(ctx, at, value);
    else if (key === 'target' || key === 'x-portpub-target') {
      service.target = checkTarget(ctx, at, interpolate(ctx, at, scalarText(ctx, at, value)));
    } else if (key === 'profiles') service.profiles = readProfiles(ctx, at, value);
    else if (key === 'network_mode') {
      service.networkMode = interpolate(ctx, at, scalarText(ctx, at, value));
    } else if (key === 'container_name') {
      const containerName = interpolate(ctx, at, scalarText(ctx, at, value));
      if (!CONTAINER_NAME.test(containerName)) {
        ctx.fail(
          at,
          `invalid container name "${containerName}": must match ${CONTAINER_NAME.source}`,
        );
      }
      service.containerName = containerName;
    } else if (key === 'extends') {
      ctx.warn(at, 'not followed: ports of the extended service are not published');
    } else if (!COMPOSE_SERVICE_KEYS.has(key) && !key.startsWith('x-')) {
      ctx.warn(where, `unknown key "${key}" ignored`);
    }
  }
  return service;
}

/** CONTAINER_NAME is Docker's rule for container names (daemon/names.go RestrictedNamePattern). */
export const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

function readProfiles(ctx: Context, at: string, value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) return ctx.fail(at, 'must be a list');
  return (value as unknown[]).map((p, i) => {
    if (typeof p !== 'string') return ctx.fail(`${at}[${i}]`, `invalid type ${typeName(p)}`);
    return interpolate(ctx, `${at}[${i}]`, p);
  });
}

/**
 * mergeCompose merges the files of one project as compose does (compose-spec merge.md): a later
 * file adds services and overrides a service's single values (target, network_mode,
 * container_name); `ports:` are appended, an entry with the same {host_ip, published, target,
 * protocol} as an earlier one replacing it; `expose:` and `profiles:` are appended without
 * repeats. Then each service's target is resolved, first to last:
 *   1. `opts.targetFor[service]` (the CLI's `--target-for SERVICE=HOST`);
 *   2. the service's own `target:` or `x-portpub-target:` (portpub extensions);
 *   3. the top-level `x-portpub-target:` or `target:` (the last file's that has one);
 *   4. `opts.defaultTarget`;
 *   5. DEFAULT_TARGET (127.0.0.1).
 * Services whose `profiles:` has no active profile are left out (compose does not start them);
 * a service with `network_mode: host` or `none` publishes nothing, as Docker discards its
 * ports, with a warning; one with `service:NAME` or `container:NAME` and ports is refused, as the
 * engine refuses it.
 */
export function mergeCompose(
  fragments: readonly ComposeFragment[],
  opts: ComposeOptions = {},
): ComposeFile {
  const first = fragments[0];
  if (!first) throw new UsageError('no compose file given');
  const warnings = fragments.flatMap((f) => f.warnings);
  const fail = (message: string): never => {
    throw new UsageError(`${first.fileName}: ${message}`);
  };
  const merged = new Map<string, FragmentService & { fileName: string }>();
  let name: string | undefined;
  let fileTarget: string | undefined;
  for (const f of fragments) {
    name = f.name ?? name;
    fileTarget = f.target ?? fileTarget;
    for (const s of f.services) {
      const prev = merged.get(s.name);
      merged.set(
        s.name,
        prev ? { ...mergeService(prev, s), fileName: f.fileName } : { ...s, fileName: f.fileName },
      );
    }
  }
  if (merged.size === 0) warnings.push(`${first.fileName}: no services defined`);

  for (const service of Object.keys(opts.targetFor ?? {})) {
    if (!merged.has(service)) {
      const what = fragments.length > 1 ? 'the files do' : 'the file does';
      fail(`--target-for names service "${service}", which ${what} not define`);
    }
  }
  const checkOpt = (where: string, value: string) =>
    checkTarget(
      {
        fileName: first.fileName,
        env: {},
        warn: () => undefined,
        fail: (w, m) => fail(`${w}: ${m}`),
      },
      where,
      value,
    );
  const defaultTarget =
    opts.defaultTarget === undefined ? undefined : checkOpt('default target', opts.defaultTarget);
  const active = new Set(opts.profiles ?? []);

  const services: ComposeService[] = [];
  for (const s of merged.values()) {
    const profiles = s.profiles ?? [];
    if (profiles.length > 0 && !active.has('*') && !profiles.some((p) => active.has(p))) continue;
    let mappings = s.mappings;
    const mode = s.networkMode;
    if (mode !== undefined && mappings.length > 0) {
      const where = `${s.fileName}: services.${s.name}: network_mode: ${mode}`;
      if (mode === 'host') {
        warnings.push(
          `${where}: published ports are discarded when using host network mode ` +
            `(as Docker does); its ports are not published`,
        );
        mappings = [];
      } else if (mode === 'none') {
        // Docker's `none` network has no interface to publish on: the ports come to nothing.
        warnings.push(
          `${where}: the service has no network, so Docker publishes none of its ports; ` +
            `neither does portpub`,
        );
        mappings = [];
      } else if (/^(service|container):/.test(mode)) {
        // compose runs `service:b` as the engine's `container:<b's id>`, which the engine
        // refuses with ports (moby runconfig ErrConflictNetworkPublishPorts): so does portpub.
        fail(
          `services.${s.name}: network_mode: ${mode}: conflicting options: port publishing and ` +
            `the container type network mode (publish the ports on the service whose network ` +
            `this one shares)`,
        );
      }
    }
    const forced = opts.targetFor?.[s.name];
    const target =
      (forced === undefined ? undefined : checkOpt(`--target-for ${s.name}`, forced)) ??
      s.target ??
      fileTarget ??
      defaultTarget ??
      DEFAULT_TARGET;
    services.push({
      name: s.name,
      target,
      mappings,
      expose: s.expose,
      ...(s.containerName !== undefined ? { containerName: s.containerName } : {}),
    });
  }
  return { ...(name !== undefined ? { name } : {}), services, warnings };
}

/**
 * mergeService is compose's merge of one service's later definition over an earlier one; a key
 * the later file tags `!reset` is cleared, one tagged `!override` replaces instead of merging.
 */
function mergeService(a: FragmentService, b: FragmentService): FragmentService {
  const earlier = <T>(key: string, value: T[]): T[] =>
    b.reset?.has(key) || b.override?.has(key) ? [] : value;
  const ports = new Map<string, ComposeMapping>();
  for (const m of [...earlier('ports', a.mappings), ...b.mappings]) {
    ports.set(`${m.hostIp}|${m.hostPort}|${m.targetPort}|${m.protocol}`, m);
  }
  const expose = new Map<string, ExposedPort>();
  for (const e of [...earlier('expose', a.expose), ...b.expose]) {
    expose.set(`${e.port}/${e.protocol}`, e);
  }
  const profiles = [...new Set([...earlier('profiles', a.profiles ?? []), ...(b.profiles ?? [])])];
  const single = <T>(key: string, later: T | undefined, before: T | undefined): T | undefined =>
    b.reset?.has(key) ? undefined : (later ?? before);
  const target =
    b.reset?.has('target') || b.reset?.has('x-portpub-target') ? undefined : (b.target ?? a.target);
  const networkMode = single('network_mode', b.networkMode, a.networkMode);
  const containerName = single('container_name', b.containerName, a.containerName);
  return {
    name: a.name,
    mappings: [...ports.values()],
    expose: [...expose.values()],
    ...(a.profiles || b.profiles ? { profiles } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(networkMode !== undefined ? { networkMode } : {}),
    ...(containerName !== undefined ? { containerName } : {}),
  };
}

/** MERGE_TAG_WARNING is the yaml library's complaint about compose's own tags, which portpub reads. */
const MERGE_TAG_WARNING = /^Unresolved tag: !(?:reset|override)\b/;

/**
 * takeMergeTags finds compose's `!reset` and `!override` on the keys of each service (the level
 * portpub reads), removes the tags so the values read as plain YAML, and returns them by service.
 */
function takeMergeTags(doc: Document): Map<string, { reset: Set<string>; override: Set<string> }> {
  const out = new Map<string, { reset: Set<string>; override: Set<string> }>();
  const services = isMap(doc.contents) ? doc.contents.get('services', true) : undefined;
  if (!isMap(services)) return out;
  for (const pair of services.items) {
    if (!isScalar(pair.key) || !isMap(pair.value)) continue;
    const tags = { reset: new Set<string>(), override: new Set<string>() };
    for (const field of pair.value.items) {
      const node = field.value as { tag?: string } | null;
      if (!isScalar(field.key) || !node || (node.tag !== '!reset' && node.tag !== '!override')) {
        continue;
      }
      (node.tag === '!reset' ? tags.reset : tags.override).add(String(field.key.value));
      delete node.tag;
    }
    if (tags.reset.size + tags.override.size > 0) out.set(String(pair.key.value), tags);
  }
  return out;
}

/** linkPorts is the set of ports `--link` variables describe: every published target port and every `expose:` entry. */
export function linkPorts(service: ComposeService): ExposedPort[] {
  const seen = new Map<string, ExposedPort>();
  for (const p of [
    ...service.mappings.map((m) => ({ port: m.targetPort, protocol: m.protocol })),
    ...service.expose,
  ]) {
    seen.set(`${p.port}/${p.protocol}`, p);
  }
  return [...seen.values()];
}
