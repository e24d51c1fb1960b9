// The environment of a `portpub run` service, built as Docker builds a container's: -e and
// --env-file read with docker/cli's rules (opts/env.go ValidateEnv, opts/file.go), then the
// daemon's defaults and merge (container/env.go ReplaceOrAppendEnvValues), then runc's HOME.
// Pure: the host environment and the file text are passed in.
import { UsageError } from '../errors.js';

/** DEFAULT_PATH is the PATH of a Linux container without one of its own (oci.DefaultPathEnv). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * validateEnv reads one `-e` value as docker/cli does: `KEY=VALUE` as given (the value may be
 * empty), a bare `KEY` takes the host's value if it has one and otherwise stays bare (which later
 * unsets KEY), and an empty key is an error.
 */
export function validateEnv(value: string, hostEnv: NodeJS.ProcessEnv): string {
  const eq = value.indexOf('=');
  const key = eq < 0 ? value : value.slice(0, eq);
  if (key === '')
    throw new UsageError(
      `invalid argument "${value}" for "-e, --env" flag: invalid environment variable: ${value}`,
    );
  if (eq >= 0) return value;
  const host = hostEnv[key];
  return host !== undefined ? `${key}=${host}` : value;
}

const BOM = '\uFEFF';

/**
 * GO_SPACE is leading whitespace as Go's unicode.IsSpace sees it: JavaScript's \s without U+FEFF
 * (a BOM past the first line stays, as in docker/cli) and with U+0085.
 */
const GO_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

// ignoreBOM: the BOM is kept, and dropped from the first line only, as docker/cli drops it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * parseEnvFile reads an --env-file as docker/cli does: one variable per line; a line that is not
 * valid UTF-8 is an error (naming the line and its bytes); leading whitespace trimmed; blank lines
 * and lines starting with `#` skipped; `KEY=VALUE` passed through with the value verbatim (no
 * quotes removed, no trailing space trimmed); a bare `KEY` takes the host's value or is dropped; a
 * key with a space or tab, or an empty key, is an error. A UTF-8 BOM is dropped.
 */
export function parseEnvFile(
  data: Uint8Array | string,
  file: string,
  hostEnv: NodeJS.ProcessEnv,
): string[] {
  const out: string[] = [];
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
  // bufio.ScanLines: split on \n, drop one \r before it.
  const lines: Buffer[] = [];
  for (let start = 0; start < bytes.length;) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl < 0 ? bytes.length : nl;
    lines.push(bytes.subarray(start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end));
    start = end + 1;
  }
  for (const [i, scanned] of lines.entries()) {
    let line: string;
    try {
      line = utf8.decode(scanned);
    } catch {
      // Go's %v of a []byte: its bytes in decimal, in brackets.
      throw new UsageError(
        `env file ${file} contains invalid utf8 bytes at line ${i + 1}: [${[...scanned].join(' ')}]`,
      );
    }
    if (i === 0 && line.startsWith(BOM)) line = line.slice(BOM.length);
    line = line.replace(GO_SPACE, '');
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const variable = (eq < 0 ? line : line.slice(0, eq)).replace(/^[ \t]+/, '');
    if (/[ \t]/.test(variable)) {
      throw new UsageError(
        `${file}: poorly formatted environment: variable '${variable}' contains whitespaces`,
      );
    }
    if (variable === '') {
      throw new UsageError(
        `${file}: poorly formatted environment: no variable name on line '${line}'`,
      );
    }
    if (eq >= 0) {
      out.push(`${variable}=${line.slice(eq + 1)}`);
      continue;
    }
    const host = hostEnv[line];
    if (host !== undefined) out.push(`${variable.trim()}=${host}`);
  }
  return out;
}

/** ServiceEnvParts are the pieces Docker merges into a container's environment. */
export interface ServiceEnvParts {
  hostname: string;
  /** The --link variables, in link order. */
  links: readonly [string, string][];
  /** The env files' lines then the -e values, as validateEnv/parseEnvFile left them. */
  user: readonly string[];
  /** run -t: TERM=xterm, as the daemon sets it for a container with a terminal. */
  tty?: boolean;
}

/**
 * serviceEnv is the whole environment, in Docker's order: PATH, HOSTNAME, TERM=xterm with -t
 * (moby's CreateDaemonEnvironment), the link variables,
 * then each user value replacing the same key in place or appended (a bare KEY removes it), then
 * HOME=/root unless set.
 */
export function serviceEnv(parts: ServiceEnvParts): [string, string][] {
  const env: (string | undefined)[] = [
    `PATH=${DEFAULT_PATH}`,
    `HOSTNAME=${parts.hostname}`,
    ...(parts.tty === true ? ['TERM=xterm'] : []),
    ...parts.links.map(([k, v]) => `${k}=${v}`),
  ];
  const index = new Map<string, number>();
  env.forEach((e, i) => index.set(e!.slice(0, e!.indexOf('=')), i));
  for (const value of parts.user) {
    const eq = value.indexOf('=');
    if (eq < 0) {
      const i = index.get(value);
      if (i !== undefined) env[i] = undefined;
      continue;
    }
    const i = index.get(value.slice(0, eq));
    if (i !== undefined) env[i] = value;
    else env.push(value);
  }
  const out = env
    .filter((e): e is string => e !== undefined)
    .map((e): [string, string] => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]);
  if (!out.some(([k]) => k === 'HOME')) out.push(['HOME', '/root']);
  return out;
}

/** userVariables is the user's own KEY=VALUE pairs (for a linked peer's `<ALIAS>_ENV_*`). */
export function userVariables(user: readonly string[]): [string, string][] {
  return [...applyUserVariables(new Map(), user)];
}

/**
 * applyUserVariables sets each KEY=VALUE of `user` in `vars`, in order (a bare KEY removes it),
 * and returns `vars`.
 */
export function applyUserVariables(
  vars: Map<string, string>,
  user: readonly string[],
): Map<string, string> {
  for (const v of user) {
    const eq = v.indexOf('=');
    if (eq < 0) vars.delete(v);
    else vars.set(v.slice(0, eq), v.slice(eq + 1));
  }
  return vars;
}
