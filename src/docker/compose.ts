// Compose-style config files, pure: YAML/JSON text in, each service's target and PortMappings out.
// `ports:` follows compose-spec (short syntax = Docker's -p grammar, long syntax = compose-go's
// ServicePortConfig); the rest of a real docker-compose.yml is accepted and ignored.
import { parseDocument, type ScalarTag } from 'yaml';
import { SpecError, UsageError } from '../errors.js';
import {
  PROTOCOLS,
  isIpLiteral,
  parsePortSpec,
  validateMapping,
  type PortMapping,
  type Protocol,
} from './spec.js';

/** DEFAULT_CONFIG_FILES are looked for, in this order, when no file is named. */
export const DEFAULT_CONFIG_FILES: readonly string[] = [
  'portpub.yaml',
  'portpub.yml',
  'portpub.json',
];

/** DEFAULT_TARGET is where a service's ports go when nothing names a target. */
export const DEFAULT_TARGET = '127.0.0.1';

/** ComposeMapping is a PortMapping with the long syntax's optional `name`. */
export interface ComposeMapping extends PortMapping {
  portName?: string;
}

/** ExposedPort is one entry of a service's `expose:` (a port reachable by links, not published). */
export interface ExposedPort {
  port: number;
  protocol: Protocol;
}

/** ComposeService is one service: its name, the address its ports forward to, and what to publish. */
export interface ComposeService {
  name: string;
  /** IP literal (IPv6 without brackets) or host name. */
  target: string;
  mappings: ComposeMapping[];
  expose: ExposedPort[];
}

export interface ComposeOptions {
  /** Per-service target, from `--target-for SERVICE=HOST`; naming a service the file lacks is an error. */
  targetFor?: Readonly<Record<string, string>>;
  /** Target for services nothing else gives one. */
  defaultTarget?: string;
  /** Variables for compose's `${VAR}` interpolation in ports, expose and targets; defaults to process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ComposeFile {
  services: ComposeService[];
  /** Human-readable, each naming the file (and service and key where there is one). */
  warnings: string[];
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

const LONG_PORT_KEYS = new Set([
  'target',
  'published',
  'host_ip',
  'protocol',
  'name',
  'mode',
  'app_protocol',
]);

/** Base60Text is a plain scalar a YAML 1.1 parser would read as a sexagesimal integer. */
class Base60Text {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/**
 * The YAML 1.1 base-60 trap: `22:22` unquoted is the integer 1342 to a YAML 1.1 parser
 * (docker-compose v1's PyYAML and many other tools). YAML 1.2, which portpub reads, makes it the
 * string "22:22" already; this tag only marks such scalars so they can be explained. Only plain
 * (unquoted) scalars are tested, so `"22:22"` is never marked.
 */
const base60Tag: ScalarTag = {
  tag: 'tag:portpub.dev,2024:base60',
  default: true,
  test: /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+$/,
  resolve: (text: string) => new Base60Text(text),
  identify: (value: unknown) => value instanceof Base60Text,
};

/** base60Value is what YAML 1.1 makes of a Base60Text. */
function base60Value(text: string): number {
  const sign = text.startsWith('-') ? -1 : 1;
  const digits = text.replace(/^[-+]/, '').replaceAll('_', '');
  return sign * digits.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
}

/**
 * parseComposeText reads a compose-style file (YAML 1.2, or JSON) into services.
 *
 * A service's target is, first to last:
 *   1. `opts.targetFor[service]` (the CLI's `--target-for SERVICE=HOST`);
 *   2. the service's own `target:` or `x-portpub-target:` (portpub extensions);
 *   3. the file's top-level `x-portpub-target:` or `target:`;
 *   4. `opts.defaultTarget`;
 *   5. DEFAULT_TARGET (127.0.0.1).
 *
 * Unknown keys (not compose-spec, not portpub's, not `x-*`) are ignored with a warning, as is an
 * unquoted port that YAML 1.1 would read as a base-60 number. Errors are UsageError whose message
 * names the file and the path, then Docker's text: `portpub.yaml: services.web.ports[1]: invalid
 * proto: xyz` (list indexes count from 0).
 */
export function parseComposeText(
  text: string,
  fileName: string,
  opts: ComposeOptions = {},
): ComposeFile {
  const warnings: string[] = [];
  const ctx: Context = {
    fileName,
    env: opts.env ?? process.env,
    warn: (where, message) => warnings.push(`${fileName}: ${where ? `${where}: ` : ''}${message}`),
  };
  const fail = (where: string, message: string): never => {
    throw new UsageError(`${fileName}: ${where ? `${where}: ` : ''}${message}`);
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
  for (const w of doc.warnings) ctx.warn('', w.message);
  let root: unknown;
  try {
    root = doc.toJS({ mapAsMap: true, maxAliasCount: 100 });
  } catch (err) {
    fail('', err instanceof Error ? err.message : String(err));
  }
  if (root === null || root === undefined) fail('', 'empty compose file');
  if (!(root instanceof Map)) return fail('', 'Top-level object must be a mapping');

  let fileTarget: string | undefined;
  let servicesNode: unknown;
  for (const [rawKey, value] of root) {
    const key = String(rawKey);
    if (key === 'services') servicesNode = value;
    else if (key === 'x-portpub-target' || key === 'target') {
      fileTarget = checkTarget(ctx, key, interpolate(ctx, key, scalarText(ctx, key, value)));
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
  if (entries.length === 0) ctx.warn('', 'no services defined');

  const names = new Set(entries.map(([k]) => String(k)));
  for (const name of Object.keys(opts.targetFor ?? {})) {
    if (!names.has(name)) {
      fail('', `--target-for names service "${name}", which the file does not define`);
    }
  }
  const defaultTarget =
    opts.defaultTarget === undefined
      ? undefined
      : checkTarget(ctx, 'default target', opts.defaultTarget);

  const services = entries.map(([rawName, body]): ComposeService => {
    const name = String(rawName);
    const where = `services.${name}`;
    if (!SERVICE_NAME.test(name)) {
      fail('services', `invalid service name "${name}": must match ${SERVICE_NAME.source}`);
    }
    if (body !== null && body !== undefined && !(body instanceof Map)) {
      fail(where, 'must be a mapping');
    }
    const fields = body instanceof Map ? body : new Map<unknown, unknown>();

    let ownTarget: string | undefined;
    let mappings: ComposeMapping[] = [];
    let expose: ExposedPort[] = [];
    for (const [rawKey, value] of fields) {
      const key = String(rawKey);
      const at = `${where}.${key}`;
      if (key === 'ports') mappings = parsePorts(ctx, at, value);
      else if (key === 'expose') expose = parseExpose(ctx, at, value);
      else if (key === 'target' || key === 'x-portpub-target') {
        ownTarget = checkTarget(ctx, at, interpolate(ctx, at, scalarText(ctx, at, value)));
      } else if (key === 'extends') {
        ctx.warn(at, 'not followed: ports of the extended service are not published');
      } else if (!COMPOSE_SERVICE_KEYS.has(key) && !key.startsWith('x-')) {
        ctx.warn(where, `unknown key "${key}" ignored`);
      }
    }

    const forced = opts.targetFor?.[name];
    const target =
      (forced === undefined ? undefined : checkTarget(ctx, `--target-for ${name}`, forced)) ??
      ownTarget ??
      fileTarget ??
      defaultTarget ??
      DEFAULT_TARGET;
    return { name, target, mappings, expose };
  });

  return { services, warnings };
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

interface Context {
  fileName: string;
  env: Readonly<Record<string, string | undefined>>;
  warn: (where: string, message: string) => void;
}

function parsePorts(ctx: Context, where: string, value: unknown): ComposeMapping[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw usage(ctx, where, 'must be a list');
  const out: ComposeMapping[] = [];
  for (const [i, entry] of (value as unknown[]).entries()) {
    const at = `${where}[${i}]`;
    try {
      out.push(...parsePortEntry(ctx, at, entry));
    } catch (err) {
      if (err instanceof SpecError) throw usage(ctx, at, err.message);
      throw err;
    }
  }
  return out;
}

function parsePortEntry(ctx: Context, at: string, entry: unknown): ComposeMapping[] {
  if (typeof entry === 'number') {
    // A bare number is a container port published on an ephemeral host port (compose-go transformPorts).
    return shortSyntax(String(entry));
  }
  if (typeof entry === 'string' || entry instanceof Base60Text) {
    return shortSyntax(interpolate(ctx, at, scalarText(ctx, at, entry)));
  }
  if (entry instanceof Map) return [longSyntax(ctx, at, entry)];
  throw usage(ctx, at, `invalid type ${typeName(entry)} for port`);
}

/** shortSyntax is compose-go's ParsePortConfig: the nat grammar, without docker run's `a=b,...` form. */
function shortSyntax(spec: string): ComposeMapping[] {
  const mappings = parsePortSpec(spec);
  for (const m of mappings) validateMapping(m);
  return mappings;
}

/**
 * longSyntax maps a compose long-syntax entry to the binding docker compose asks the Engine for:
 * `target/protocol` published on `host_ip:published`, where published "" is ephemeral and
 * "8000-8010" a pool.
 */
function longSyntax(ctx: Context, at: string, entry: Map<unknown, unknown>): ComposeMapping {
  const field = (key: string): string | undefined => {
    const v = entry.get(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' && (key === 'target' || key === 'published')) return String(v);
    return interpolate(ctx, `${at}.${key}`, scalarText(ctx, `${at}.${key}`, v));
  };
  for (const rawKey of entry.keys()) {
    const key = String(rawKey);
    if (!LONG_PORT_KEYS.has(key) && !key.startsWith('x-')) {
      ctx.warn(at, `unknown key "${key}" ignored`);
    }
  }

  const target = field('target');
  if (target === undefined || target === '') {
    throw usage(ctx, at, "missing mandatory field 'target'");
  }
  if (!/^[0-9]+$/.test(target)) throw usage(ctx, at, `invalid containerPort: ${target}`);
  const published = field('published') ?? '';
  if (published.includes(':')) throw usage(ctx, at, `invalid hostPort: ${published}`);
  const hostIp = field('host_ip') ?? '';
  if (hostIp !== '' && !isIpLiteral(hostIp)) throw usage(ctx, at, `invalid IP address: ${hostIp}`);
  const protocol = (field('protocol') ?? '').toLowerCase() || 'tcp';
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    throw usage(ctx, at, `invalid proto: ${protocol}`);
  }
  // mode and app_protocol mean nothing to a forwarder; read them only so a bad value is reported.
  field('mode');
  field('app_protocol');
  const portName = field('name');

  const ip = hostIp.includes(':') ? `[${hostIp}]` : hostIp;
  const [mapping] = shortSyntax(`${ip}:${published}:${target}/${protocol}`);
  return portName === undefined ? mapping! : { ...mapping!, portName };
}

/** parseExpose reads `expose:` entries, `N[-M][/proto]` strings or numbers (moby ParsePortRange). */
function parseExpose(ctx: Context, where: string, value: unknown): ExposedPort[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw usage(ctx, where, 'must be a list');
  const out: ExposedPort[] = [];
  for (const [i, entry] of (value as unknown[]).entries()) {
    const at = `${where}[${i}]`;
    if (typeof entry !== 'number' && typeof entry !== 'string' && !(entry instanceof Base60Text)) {
      throw usage(ctx, at, `invalid type ${typeName(entry)} for expose`);
    }
    const text =
      typeof entry === 'number' ? String(entry) : interpolate(ctx, at, scalarText(ctx, at, entry));
    const slash = text.indexOf('/');
    const range = slash < 0 ? text : text.slice(0, slash);
    const protocol = (slash < 0 ? '' : text.slice(slash + 1)).toLowerCase() || 'tcp';
    const dash = range.indexOf('-');
    const startText = dash < 0 ? range : range.slice(0, dash);
    const endText = dash < 0 ? startText : range.slice(dash + 1);
    const start = portNumber(startText);
    if (typeof start === 'string') {
      throw usage(ctx, at, `invalid start port '${startText}': ${start}`);
    }
    const end = portNumber(endText);
    if (typeof end === 'string') throw usage(ctx, at, `invalid end port '${endText}': ${end}`);
    if (end < start) throw usage(ctx, at, `invalid port range: ${text}`);
    if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
      throw usage(ctx, at, `invalid proto: ${protocol}`);
    }
    for (let p = start; p <= end; p++) out.push({ port: p, protocol: protocol as Protocol });
  }
  return out;
}

/** portNumber is strconv.ParseUint(s, 10, 16): the number, or the reason it is not one. */
function portNumber(s: string): number | string {
  if (s === '') return 'value is empty';
  if (!/^[0-9]+$/.test(s)) return 'invalid syntax';
  const n = Number(s);
  return n > 65535 ? 'value out of range' : n;
}

const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** checkTarget accepts an IP literal (IPv6 optionally bracketed) or a DNS host name. */
function checkTarget(ctx: Context, where: string, value: string): string {
  const bare = /^\[.*\]$/.test(value) ? value.slice(1, -1) : value;
  if (isIpLiteral(bare)) return bare;
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  if (name.length > 0 && name.length <= 253 && name.split('.').every((l) => HOST_LABEL.test(l))) {
    return value;
  }
  throw usage(
    ctx,
    where,
    `invalid target address "${value}": must be an IP address or a host name`,
  );
}

/** scalarText takes a string-like value; an unquoted base-60 lookalike is explained once. */
function scalarText(ctx: Context, where: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Base60Text) {
    const text = value.text;
    ctx.warn(
      where,
      `unquoted ${text} is read by YAML 1.1 parsers (docker-compose v1, PyYAML and others) as the ` +
        `base-60 number ${base60Value(text)}; portpub reads it as the string "${text}" (YAML 1.2). ` +
        `Quote it ("${text}") so every tool agrees`,
    );
    return text;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw usage(ctx, where, `invalid type ${typeName(value)}, expected a string`);
}

/**
 * interpolate applies compose's variable substitution: `$$` is a literal `$`; `$VAR` and `${VAR}`
 * (unset: "" with compose's warning); `${VAR:-default}` / `${VAR-default}` (when unset or empty /
 * when unset); `${VAR:?message}` / `${VAR?message}` (error); `${VAR:+alt}` / `${VAR+alt}`.
 * Defaults, messages and alternatives are interpolated in turn.
 */
function interpolate(ctx: Context, where: string, text: string): string {
  if (!text.includes('$')) return text;
  const invalid = (): never => {
    throw usage(ctx, where, `Invalid template: ${JSON.stringify(text)}`);
  };
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    const named = /^[_A-Za-z][_A-Za-z0-9]*/.exec(text.slice(i + 1));
    if (named) {
      out += lookup(ctx, where, named[0]);
      i += 1 + named[0].length;
      continue;
    }
    if (next !== '{') return invalid();
    // Find the matching '}', counting nested `${`.
    let depth = 0;
    let close = -1;
    for (let j = i; j < text.length; j++) {
      if (text.startsWith('${', j)) {
        depth++;
        j++;
      } else if (text[j] === '}' && --depth === 0) {
        close = j;
        break;
      }
    }
    if (close < 0) return invalid();
    const body = text.slice(i + 2, close);
    const m = /^([_A-Za-z][_A-Za-z0-9]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
    if (!m) return invalid();
    const [, name, op, arg = ''] = m as unknown as [string, string, string | undefined, string?];
    const value = ctx.env[name];
    const set = value !== undefined;
    const nonEmpty = set && value !== '';
    switch (op) {
      case undefined:
        out += lookup(ctx, where, name);
        break;
      case ':-':
        out += nonEmpty ? value : interpolate(ctx, where, arg);
        break;
      case '-':
        out += set ? value : interpolate(ctx, where, arg);
        break;
      case ':?':
      case '?':
        if (op === ':?' ? !nonEmpty : !set) {
          throw usage(
            ctx,
            where,
            `required variable ${name} is missing a value: ${interpolate(ctx, where, arg)}`,
          );
        }
        out += value ?? '';
        break;
      case ':+':
        out += nonEmpty ? interpolate(ctx, where, arg) : '';
        break;
      case '+':
        out += set ? interpolate(ctx, where, arg) : '';
        break;
    }
    i = close + 1;
  }
  return out;
}

function lookup(ctx: Context, where: string, name: string): string {
  const value = ctx.env[name];
  if (value === undefined) {
    ctx.warn(where, `The "${name}" variable is not set. Defaulting to a blank string.`);
    return '';
  }
  return value;
}

function usage(ctx: Context, where: string, message: string): UsageError {
  return new UsageError(`${ctx.fileName}: ${where}: ${message}`);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'mapping';
  return typeof v;
}
