// Docker's legacy `--link` environment variables, pure: a linked service's address and ports in,
// the exact variables moby `daemon/links/links.go` (`Link.ToEnv`) produces out, plus shell/.env text.
import { UsageError } from '../errors.js';
import { shellQuote } from '../shell.js';
import type { Protocol } from './spec.js';

/** LinkPort is one exposed port of the linked service. */
export interface LinkPort {
  port: number;
  protocol: Protocol;
}

/** LinkEnvOptions describes one link the way the daemon sees it. */
export interface LinkEnvOptions {
  /** Name of the container (program) receiving the variables; the link's full name is `/<parent>/<alias>`. */
  parent: string;
  /** Link alias; its upper-cased form with `-` replaced by `_` prefixes every variable. */
  alias: string;
  /** Address the variables point at (Docker: the linked container's IP). */
  ip: string;
  /** Exposed ports; order does not matter and duplicates count once (Docker keeps them in a set). */
  ports: readonly LinkPort[];
  /** The linked service's own environment; each entry becomes `<ALIAS>_ENV_<KEY>` except HOME and PATH. */
  env?: Readonly<Record<string, string>>;
}

/** EnvVar is one variable as `[name, value]`. */
export type EnvVar = [string, string];

/**
 * linkEnv returns the variables `docker run --link <child>:<alias>` sets, in the order
 * `Link.ToEnv` appends them: `<A>_PORT` for the first port, then per port (TCP first, then the
 * other protocols by name, each by number) `<A>_PORT_<n>_<PROTO>` and its `_ADDR`, `_PORT`,
 * `_PROTO`; the `_START`/`_PORT_START`/`_END`/`_PORT_END` variables of a run of consecutive
 * same-protocol ports come right after the port that ends the run (under the prefix of the
 * run's first port); then `<A>_NAME`, then `<A>_ENV_*` in the order of `env`.
 */
export function linkEnv(opts: LinkEnvOptions): EnvVar[] {
  const { ip } = opts;
  const name = `/${opts.parent}/${opts.alias}`;
  // path.Split(name): the alias is what follows the last '/'.
  const last = name.slice(name.lastIndexOf('/') + 1);
  const alias = asciiUpper(last).replaceAll('-', '_');

  const ports = uniquePorts(opts.ports).sort(withTcpPriority);
  const out: EnvVar[] = [];
  const prefixOf = (p: LinkPort): string => `${alias}_PORT_${p.port}_${asciiUpper(p.protocol)}`;
  const url = (p: LinkPort): string => `${p.protocol}://${ip}:${p.port}`;

  let start: LinkPort | undefined;
  let end: LinkPort | undefined;
  for (const [i, p] of ports.entries()) {
    if (i === 0) {
      start = end = p;
      out.push([`${alias}_PORT`, url(p)]);
    }
    const prefix = prefixOf(p);
    out.push([prefix, url(p)]);
    out.push([`${prefix}_ADDR`, ip]);
    out.push([`${prefix}_PORT`, String(p.port)]);
    out.push([`${prefix}_PROTO`, p.protocol]);

    // A port extends the current run when its number is one more and its protocol the same;
    // the run's variables are written when it ends, which may be at the last port.
    if (end && p.port === end.port + 1 && p.protocol === end.protocol) {
      end = p;
      if (i < ports.length - 1) continue;
    }
    if (start && end && end !== start) {
      const runPrefix = prefixOf(start);
      out.push([`${runPrefix}_START`, url(start)]);
      out.push([`${runPrefix}_PORT_START`, String(start.port)]);
      out.push([`${runPrefix}_END`, url(end)]);
      out.push([`${runPrefix}_PORT_END`, String(end.port)]);
    }
    start = end = p;
  }

  out.push([`${alias}_NAME`, name]);
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    // Variables `docker build` adds and that mean nothing to the linking container.
    if (key === 'HOME' || key === 'PATH') continue;
    out.push([`${alias}_ENV_${key}`, value]);
  }
  return out;
}

/**
 * parseLink reads a `--link` value as docker/cli's `ParseLink` does: `NAME` (the alias is the
 * name) or `NAME:ALIAS`; throws UsageError with Docker's text otherwise.
 */
export function parseLink(value: string): { name: string; alias: string } {
  if (value === '') throw new UsageError('empty string specified for links');
  const parts = value.split(':');
  if (parts.length > 2) throw new UsageError(`bad format for links: ${value}`);
  const [name, alias] = parts as [string, string | undefined];
  if (alias === undefined) return { name, alias: name };
  // The `/name:/parent/alias` form is how a created container's HostConfig stores its links.
  if (name.startsWith('/')) {
    return { name: name.slice(1), alias: alias.slice(alias.lastIndexOf('/') + 1) };
  }
  return { name, alias };
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * formatExport writes `export KEY='value'` lines for `eval`. Values are single-quoted, each `'`
 * written as `'\''`, so nothing in a value is expanded. Docker keeps `.` in an alias, which makes a
 * name no shell can export: such a name throws UsageError rather than printing a line that fails.
 */
export function formatExport(vars: readonly EnvVar[]): string {
  return vars
    .map(([key, value]) => {
      if (!SHELL_NAME.test(key)) {
        throw new UsageError(
          `cannot export ${key}: not a valid shell variable name (choose an alias without '.', or use the .env format)`,
        );
      }
      return `export ${key}=${shellQuote(value)}\n`;
    })
    .join('');
}

/**
 * formatDotenv writes `KEY=value` lines as `docker run --env-file` reads them: the rest of the line
 * after the first `=` is the value, verbatim, so no quoting is added. A value containing a newline
 * cannot be written that way and throws UsageError.
 */
export function formatDotenv(vars: readonly EnvVar[]): string {
  return vars
    .map(([key, value]) => {
      if (/[\r\n]/.test(value) || /[=\s]/.test(key) || key === '') {
        throw new UsageError(`cannot write ${JSON.stringify(key)} to a .env file`);
      }
      return `${key}=${value}\n`;
    })
    .join('');
}

/** withTcpPriority is links.go's sort: TCP before every other protocol, then by protocol name, then by number. */
function withTcpPriority(a: LinkPort, b: LinkPort): number {
  if (a.protocol === b.protocol) return a.port - b.port;
  if (a.protocol === 'tcp') return -1;
  if (b.protocol === 'tcp') return 1;
  return a.protocol < b.protocol ? -1 : 1;
}

function uniquePorts(ports: readonly LinkPort[]): LinkPort[] {
  const seen = new Map<string, LinkPort>();
  for (const p of ports)
    seen.set(`${p.port}/${p.protocol}`, { port: p.port, protocol: p.protocol });
  return [...seen.values()];
}

/** asciiUpper is Go's strings.ToUpper for the ASCII names Docker allows. */
function asciiUpper(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}
