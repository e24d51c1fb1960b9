// The value-level readers of a compose file, pure: `ports:` (short and long syntax), `expose:`,
// targets and scalars, each failing with the file, the path and Docker's own text.
import type { ScalarTag } from 'yaml';
import { SpecError, UsageError } from '../errors.js';
import { interpolate, type InterpolationContext } from './interpolate.js';
import { parseTargetHost } from './names.js';
import {
  PROTOCOLS,
  goToLower,
  isIpLiteral,
  parsePortSpec,
  validateMapping,
  type PortMapping,
  type Protocol,
} from './spec.js';

/** ComposeMapping is a PortMapping with the long syntax's optional `name`. */
export interface ComposeMapping extends PortMapping {
  portName?: string;
}

/** ExposedPort is one entry of a service's `expose:` (a port reachable by links, not published). */
export interface ExposedPort {
  port: number;
  protocol: Protocol;
}

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
export const base60Tag: ScalarTag = {
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

/** Context is one file being read: its name, its variables, and where warnings go. */
export interface Context extends InterpolationContext {
  fileName: string;
}

export function parsePorts(ctx: Context, where: string, value: unknown): ComposeMapping[] {
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
  const protocol = goToLower(field('protocol') ?? '') || 'tcp';
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
export function parseExpose(ctx: Context, where: string, value: unknown): ExposedPort[] {
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
    const protocol = goToLower(slash < 0 ? '' : text.slice(slash + 1)) || 'tcp';
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

/** checkTarget accepts an IP literal (IPv6 optionally bracketed) or a DNS host name (names.ts). */
export function checkTarget(ctx: Context, where: string, value: string): string {
  const host = parseTargetHost(value);
  if (host !== undefined) return host;
  throw usage(
    ctx,
    where,
    `invalid target address "${value}": must be an IP address or a host name`,
  );
}

/** scalarText takes a string-like value; an unquoted base-60 lookalike is explained once. */
export function scalarText(ctx: Context, where: string, value: unknown): string {
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

function usage(ctx: Context, where: string, message: string): UsageError {
  return new UsageError(`${ctx.fileName}: ${where}: ${message}`);
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'mapping';
  return typeof v;
}
