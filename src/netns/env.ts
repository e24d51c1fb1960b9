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
 * parseEnvFile reads an --env-file as docker/cli does: one variable per line; leading whitespace
 * trimmed; blank lines and lines starting with `#` skipped; `KEY=VALUE` passed through with the
 * value verbatim (no quotes removed, no trailing space trimmed); a bare `KEY` takes the host's value
 * or is dropped; a key with a space or tab, or an empty key, is an error. A UTF-8 BOM is dropped.
 */
export function parseEnvFile(text: string, file: string, hostEnv: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  // bufio.ScanLines: split on \n, drop one \r before it.
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const [i, raw] of lines.entries()) {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (i === 0 && line.startsWith(BOM)) line = line.slice(BOM.length);
    line = line.replace(/^\s+/u, '');
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
}

/**
 * serviceEnv is the whole environment, in Docker's order: PATH, HOSTNAME, the link variables,
 * then each user value replacing the same key in place or appended (a bare KEY removes it), then
 * HOME=/root unless set.
 */
export function serviceEnv(parts: ServiceEnvParts): [string, string][] {
  const env: (string | undefined)[] = [
    `PATH=${DEFAULT_PATH}`,
    `HOSTNAME=${parts.hostname}`,
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
  const out = new Map<string, string>();
  for (const v of user) {
    const eq = v.indexOf('=');
    if (eq < 0) out.delete(v);
    else out.set(v.slice(0, eq), v.slice(eq + 1));
  }
  return [...out];
}
