// Docker's `-p` grammar, pure: a `-p` value in, plain PortMapping data out, or Docker's own error text.
// Reference: docker/go-connections >= v0.7.0 `nat.ParsePortSpec` and docker/cli `convertToStandardNotation`.
import { isIPv6 } from 'node:net';
import { SpecError } from '../errors.js';

/** Protocol is what Docker accepts after the `/`; portpub serves tcp and udp. */
export type Protocol = 'tcp' | 'udp' | 'sctp';

export const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

/**
 * PortMapping is one target port and where to publish it, exactly as Docker stores it:
 * `hostIp` as written with brackets removed (`""` when absent), `hostPort` the host field as a
 * decimal string (`""` or `"0"` = ephemeral, `"8080"`, or a pool `"8000-8010"`).
 */
export interface PortMapping {
  hostIp: string;
  hostPort: string;
  targetPort: number;
  protocol: Protocol;
}

/** SHORT_SYNTAX is the grammar shown in help and error messages. */
export const SHORT_SYNTAX = '[hostIp:][hostPort:]targetPort[/proto]';

/**
 * parsePublish parses one `-p/--publish` value the way `docker run` does: long syntax
 * (`published=8080,target=80,protocol=udp`) is first rewritten to the short form, then parsed,
 * then the checks the Engine makes at container create are applied. Throws SpecError whose
 * message is Docker's text.
 */
export function parsePublish(value: string): PortMapping[] {
  try {
    const mappings = parsePortSpec(convertToStandardNotation(value));
    for (const m of mappings) validateMapping(m);
    return mappings;
  } catch (err) {
    // Report the value as typed, not the converted long syntax or the re-formatted mapping.
    if (err instanceof SpecError && err.spec !== value) throw new SpecError(value, err.message);
    throw err;
  }
}

/**
 * convertToStandardNotation rewrites docker run's long syntax to the short one. Any `=` makes the
 * value long syntax; only `published`, `target` and `protocol` count, other keys are ignored as
 * docker run ignores them (including `host_ip` and `mode`); a repeated key keeps the last value.
 */
export function convertToStandardNotation(value: string): string {
  if (!value.includes('=')) return value;
  const params = new Map<string, string>([['protocol', 'tcp']]);
  for (const item of value.split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) {
      throw new SpecError(
        value,
        `invalid publish opts format (should be name=value but got '${item}')`,
      );
    }
    params.set(item.slice(0, eq), item.slice(eq + 1));
  }
  const get = (k: string): string => params.get(k) ?? '';
  return `${get('published')}:${get('target')}/${get('protocol')}`;
}

/** parsePortSpec is go-connections' `nat.ParsePortSpec` for the short syntax, check for check. */
export function parsePortSpec(raw: string): PortMapping[] {
  const fail = (message: string): never => {
    throw new SpecError(raw, message);
  };
  const [rawIp, hostPort, containerField] = splitParts(raw);
  let ip = rawIp;

  // SplitProtoPort: cut at the first '/'; an empty protocol means tcp.
  const slash = containerField.indexOf('/');
  const containerPort = slash < 0 ? containerField : containerField.slice(0, slash);
  let proto = slash < 0 ? '' : containerField.slice(slash + 1);
  if (containerPort === '') fail(`no port specified: ${raw}<empty>`);
  if (proto === '') proto = 'tcp';

  proto = goToLower(proto);
  if (!(PROTOCOLS as readonly string[]).includes(proto)) fail(`invalid proto: ${proto}`);

  if (ip !== '' && ip.startsWith('[')) {
    const r = splitHostPort(`${ip}:`);
    if (typeof r !== 'string') fail(`invalid IP address ${ip}: ${r.error}`);
    ip = r as string;
  }
  if (ip !== '' && !isIpLiteral(ip)) fail(`invalid IP address: ${ip}`);
  // Docker CLI 29 keeps the host IP as a netip.Addr, so it is stored and shown canonically.
  if (ip !== '') ip = canonicalIp(ip);

  const container = parsePortRange(containerPort);
  if (!container) return fail(`invalid containerPort: ${containerPort}`);

  let host: [number, number] | undefined;
  if (hostPort !== '') {
    host = parsePortRange(hostPort);
    if (!host) return fail(`invalid hostPort: ${hostPort}`);
    // A host range with a single container port is a pool to allocate from; any other length
    // mismatch is an error.
    if (container[1] - container[0] !== host[1] - host[0] && container[1] !== container[0]) {
      fail(
        `invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`,
      );
    }
  }

  const count = container[1] - container[0] + 1;
  const out: PortMapping[] = [];
  for (let i = 0; i < count; i++) {
    let hp = '';
    if (host) {
      hp = String(host[0] + i);
      if (count === 1 && host[0] !== host[1]) hp += `-${host[1]}`;
    }
    out.push({
      hostIp: ip,
      hostPort: hp,
      targetPort: container[0] + i,
      protocol: proto as Protocol,
    });
  }
  return out;
}

/**
 * validateMapping applies the Engine's checks on top of the parser: target port 0 is rejected
 * (Engine 29.1.3+), and a host pool may not start at 0 (the port allocator's rule).
 */
export function validateMapping(m: PortMapping): void {
  if (m.targetPort === 0) {
    throw new SpecError(
      formatSpec(m),
      `invalid port specification: "${m.targetPort}/${m.protocol}"`,
    );
  }
  const pool = hostPortRange(m.hostPort);
  if (pool && pool[0] === 0 && pool[1] !== 0) {
    throw new SpecError(formatSpec(m), `invalid port range: ${m.hostPort}`);
  }
}

/**
 * hostPortRange reads a mapping's hostPort: undefined for ephemeral (`""` or `"0"`), else the
 * inclusive range (a single port is `[p, p]`).
 */
export function hostPortRange(hostPort: string): [number, number] | undefined {
  if (hostPort === '' || hostPort === '0') return undefined;
  const dash = hostPort.indexOf('-');
  if (dash < 0) return [Number(hostPort), Number(hostPort)];
  return [Number(hostPort.slice(0, dash)), Number(hostPort.slice(dash + 1))];
}

/** formatSpec writes a mapping back as a short `-p` value that parses to the same mapping. */
export function formatSpec(m: PortMapping): string {
  const ip = m.hostIp.includes(':') ? `[${m.hostIp}]` : m.hostIp;
  const prefix = ip !== '' ? `${ip}:${m.hostPort}:` : m.hostPort !== '' ? `${m.hostPort}:` : '';
  return `${prefix}${m.targetPort}/${m.protocol}`;
}

/** splitParts: every ':' splits; the last two fields are always hostPort and containerPort. */
function splitParts(raw: string): [string, string, string] {
  const parts = raw.split(':');
  const n = parts.length;
  if (n === 1) return ['', '', parts[0]!];
  if (n === 2) return ['', parts[0]!, parts[1]!];
  return [parts.slice(0, n - 2).join(':'), parts[n - 2]!, parts[n - 1]!];
}

/** parsePortRange: `N` or `N-M` cut at the first '-', base-10 0..65535, start <= end. */
function parsePortRange(s: string): [number, number] | undefined {
  const dash = s.indexOf('-');
  const startText = dash < 0 ? s : s.slice(0, dash);
  const start = parsePortNumber(startText);
  if (start === undefined) return undefined;
  if (dash < 0) return [start, start];
  const endText = s.slice(dash + 1);
  if (endText === startText) return [start, start];
  const end = parsePortNumber(endText);
  if (end === undefined || end < start) return undefined;
  return [start, end];
}

/** parsePortNumber is Go's strconv.ParseInt(s, 10, 0) limited to 0..65535: an optional sign, digits. */
function parsePortNumber(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 0 && n <= 65535 ? n : undefined;
}

/**
 * goToLower is Go's strings.ToLower, which Docker applies to protocols: each code point mapped
 * on its own by Unicode's simple lowercase mapping (unicode.ToLower). JavaScript's toLowerCase
 * applies the special casing too, so `İ` (U+0130) would become `i` plus U+0307 and a final `Σ`
 * would become `ς`; here they become `i` and `σ`, as in Docker's `invalid proto: ...` text.
 */
export function goToLower(s: string): string {
  // ASCII: the same either way.
  if ([...s].every((ch) => ch.charCodeAt(0) < 0x80)) return s.toLowerCase();
  let out = '';
  for (const ch of s) {
    if (ch === '\u0130') {
      out += 'i'; // the one unconditional special-casing lowercase mapping
      continue;
    }
    const lower = ch.toLowerCase(); // one code point: no context, so no final-sigma rule
    out += [...lower].length === 1 ? lower : ch;
  }
  return out;
}

/**
 * canonicalIp is Go's netip.Addr String() for an IP literal (isIpLiteral): IPv4 as dotted
 * decimal; an IPv4-mapped IPv6 address as `::ffff:1.2.3.4`; any other IPv6 address in lower-case
 * hex without leading zeros, the longest run of two or more zero groups (the first, on a tie)
 * written `::`, and an embedded IPv4 part in hex (`64:ff9b::1.2.3.4` is `64:ff9b::102:304`).
 */
export function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const groups = ipv6Groups(ip);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [a, b] = [groups[6]!, groups[7]!];
    return `::ffff:${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`;
  }
  // netip's appendTo6: the longest run of zero groups, at least two, the first one on a tie.
  let zeroStart = -1;
  let zeroLen = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i >= 2 && j - i > zeroLen) [zeroStart, zeroLen] = [i, j - i];
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === zeroStart) {
      out += '::';
      i += zeroLen - 1;
      continue;
    }
    if (i > 0 && !out.endsWith(':')) out += ':';
    out += groups[i]!.toString(16);
  }
  return out;
}

/** ipv6Groups reads a valid IPv6 literal (no zone) into its eight 16-bit groups. */
function ipv6Groups(ip: string): number[] {
  const read = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((g) => {
      if (!g.includes('.')) return [parseInt(g, 16)];
      const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const gap = ip.indexOf('::');
  if (gap < 0) return read(ip);
  const head = read(ip.slice(0, gap));
  const tail = read(ip.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** isIpLiteral mirrors Go's net.ParseIP: dotted IPv4 without leading zeros, or IPv6 without a zone. */
export function isIpLiteral(s: string): boolean {
  if (isIPv4Strict(s)) return true;
  return !s.includes('%') && isIPv6(s);
}

function isIPv4Strict(s: string): boolean {
  const parts = s.split('.');
  return (
    parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)
  );
}

/** splitHostPort is Go's net.SplitHostPort for the bracketed case; returns the host or an error text. */
function splitHostPort(hostport: string): string | { error: string } {
  const err = (why: string) => ({ error: `address ${hostport}: ${why}` });
  const i = hostport.lastIndexOf(':');
  const end = hostport.indexOf(']');
  if (end < 0) return err("missing ']' in address");
  if (end + 1 === hostport.length) return err('missing port in address');
  if (end + 1 !== i) {
    return err(
      hostport[end + 1] === ':' ? 'too many colons in address' : 'missing port in address',
    );
  }
  if (hostport.indexOf('[', 1) >= 0) return err("unexpected '[' in address");
  if (hostport.indexOf(']', end + 1) >= 0) return err("unexpected ']' in address");
  return hostport.slice(1, end);
}
