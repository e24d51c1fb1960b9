// What `docker port` prints, pure: bound addresses in, docker/cli's lines (same text, same natural
// sort, same errors) out. Reference: docker/cli `cli/command/container/port.go`.
import { joinHostPort } from '../address.js';
import { PortpubError, UsageError, EXIT_RUNTIME } from '../errors.js';
import { goToLower, type Protocol } from './spec.js';
import { ERR_NO_PORT } from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_NO_PORT };

/** Binding is one bound host socket and the target it forwards to. */
export interface Binding {
  /** Service the binding belongs to (compose files); absent for a plain `-p` run. */
  name?: string;
  hostIp: string;
  hostPort: number;
  targetHost: string;
  targetPort: number;
  protocol: Protocol;
}

/**
 * formatPortLines is `docker port CONTAINER`: one `<port>/<proto> -> <hostIp>:<hostPort>` line per
 * binding (IPv6 bracketed), in natural order. No bindings, no lines.
 */
export function formatPortLines(bindings: readonly Binding[]): string[] {
  return naturalSort(
    bindings.map((b) => `${b.targetPort}/${b.protocol} -> ${joinHostPort(b.hostIp, b.hostPort)}`),
  );
}

/**
 * queryPort is `docker port CONTAINER PRIVATE_PORT[/PROTO]`: the `<hostIp>:<hostPort>` lines of
 * that target port, in natural order. The protocol defaults to tcp and is matched lower-cased.
 * `arg` text Docker refuses throws UsageError (moby `network.ParsePort` text); a valid port with
 * nothing published throws ERR_NO_PORT with docker/cli's message, naming `arg` as typed.
 */
export function queryPort(bindings: readonly Binding[], arg: string, name: string): string[] {
  const { port, protocol } = parsePortArg(arg);
  const out = bindings
    .filter((b) => b.targetPort === port && b.protocol === protocol)
    .map((b) => joinHostPort(b.hostIp, b.hostPort));
  if (out.length === 0) {
    throw new PortpubError(
      ERR_NO_PORT,
      `no public port '${arg}' published for ${name}`,
      EXIT_RUNTIME,
    );
  }
  return naturalSort(out);
}

/**
 * parsePortArg is moby `network.ParsePort`: `N[/proto]`, N a base-10 16-bit unsigned number, the
 * protocol anything (lower-cased, `tcp` when empty).
 */
export function parsePortArg(arg: string): { port: number; protocol: string } {
  if (arg === '') throw new UsageError('invalid port: value is empty');
  const slash = arg.indexOf('/');
  const text = slash < 0 ? arg : arg.slice(0, slash);
  const proto = slash < 0 ? '' : arg.slice(slash + 1);
  // strconv.ParseUint(text, 10, 16): digits only (no sign), else syntax; too big is range.
  let why: string | undefined;
  if (text === '') why = 'value is empty';
  else if (!/^[0-9]+$/.test(text)) why = 'invalid syntax';
  else if (Number(text) > 65535) why = 'value out of range';
  if (why) throw new UsageError(`invalid port '${text}': ${why}`);
  return { port: Number(text), protocol: proto === '' ? 'tcp' : goToLower(proto) };
}

/**
 * PortMap is the shape of `docker inspect`'s `.NetworkSettings.Ports`: `"80/tcp"` to its
 * `{HostIp, HostPort}` bindings.
 */
export type PortMap = Record<string, { HostIp: string; HostPort: string }[]>;

/**
 * toPortMap groups bindings as `docker inspect` shows them, for `--json`. Keys come in the order
 * Go's encoding/json writes map keys (sorted as strings); bindings keep their given order.
 */
export function toPortMap(bindings: readonly Binding[]): PortMap {
  const groups = new Map<string, { HostIp: string; HostPort: string }[]>();
  for (const b of bindings) {
    const key = `${b.targetPort}/${b.protocol}`;
    const list = groups.get(key) ?? [];
    list.push({ HostIp: b.hostIp, HostPort: String(b.hostPort) });
    groups.set(key, list);
  }
  const out: PortMap = {};
  for (const key of [...groups.keys()].sort(byteCompare)) out[key] = groups.get(key)!;
  return out;
}

export { joinHostPort };

/** naturalSort returns a sorted copy, ordered by naturalCompare. */
export function naturalSort(lines: readonly string[]): string[] {
  return [...lines].sort(naturalCompare);
}

/**
 * naturalCompare is github.com/fvbommel/sortorder `NaturalCompare`, which docker/cli sorts with:
 * runs of ASCII digits compare as numbers (shorter significant part first, then by digits, then
 * fewer leading zeros first), everything else compares bytewise on UTF-8; at a digit/non-digit
 * mismatch the digit side is first; a string that is a prefix of the other is first.
 */
export function naturalCompare(a: string, b: string): number {
  const s1 = Buffer.from(a, 'utf8');
  const s2 = Buffer.from(b, 'utf8');
  let i1 = 0;
  let i2 = 0;
  while (i1 < s1.length && i2 < s2.length) {
    const c1 = s1[i1]!;
    const c2 = s2[i2]!;
    const d1 = isDigit(c1);
    const d2 = isDigit(c2);
    if (d1 !== d2) return d1 ? -1 : 1;
    if (!d1) {
      if (c1 !== c2) return c1 - c2;
      i1++;
      i2++;
      continue;
    }
    while (i1 < s1.length && s1[i1] === 0x30) i1++;
    while (i2 < s2.length && s2[i2] === 0x30) i2++;
    const nz1 = i1;
    const nz2 = i2;
    while (i1 < s1.length && isDigit(s1[i1]!)) i1++;
    while (i2 < s2.length && isDigit(s2[i2]!)) i2++;
    const len1 = i1 - nz1;
    const len2 = i2 - nz2;
    if (len1 !== len2) return len1 - len2;
    const cmp = Buffer.compare(s1.subarray(nz1, i1), s2.subarray(nz2, i2));
    if (cmp !== 0) return cmp;
    if (nz1 !== nz2) return nz1 - nz2;
  }
  // Identical so far and at least one has ended: compare total lengths, as Go does.
  return s1.length - s2.length;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
