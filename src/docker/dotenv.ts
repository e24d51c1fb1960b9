// Compose's `.env` file, pure: the text of the file beside the compose file in, its variables out.
// The syntax is compose-go's dotenv (a godotenv fork): `KEY=VALUE` lines, `export` allowed, `#`
// comments, single quotes literal, double quotes with escapes, `${VAR}` expanded outside single
// quotes from the variables above and then the environment.
import { UsageError } from '../errors.js';
import { interpolate } from './interpolate.js';

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  r: '\r',
  t: '\t',
  '\\': '\\',
  '"': '"',
  $: '$$', // kept as `$$` so that interpolation below leaves a literal `$`
};

/**
 * parseDotenv reads a `.env` text. `env` is looked up for `${VAR}` after the file's own earlier
 * variables. Errors are UsageError naming `fileName` and the line.
 */
export function parseDotenv(
  text: string,
  fileName: string,
  env: Readonly<Record<string, string | undefined>> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const fail = (why: string): never => {
      throw new UsageError(`${fileName}: line ${lineNo}: ${why}`);
    };
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const body = line.startsWith('export ') ? line.slice('export '.length).trimStart() : line;
    const eq = body.search(/[=:]/);
    if (eq < 0) {
      // compose-go accepts a bare KEY: its value comes from the environment when set there.
      if (!KEY.test(body)) fail(`unexpected character in variable name "${body}"`);
      const inherited = env[body];
      if (inherited !== undefined) out[body] = inherited;
      continue;
    }
    const key = body.slice(0, eq).trim();
    if (!KEY.test(key)) fail(`unexpected character in variable name "${key}"`);
    let rest = body.slice(eq + 1).trimStart();
    const ctx = {
      env: { ...env, ...out },
      warn: () => undefined, // unset variables in .env expand to "" quietly, as in compose-go
      fail: (_where: string, message: string): never => fail(message),
    };
    const quote = rest[0];
    if (quote === "'" || quote === '"') {
      // A quoted value may run over several lines, up to its closing quote.
      let value = '';
      let pos = 1;
      for (;;) {
        const close = findClose(rest, pos, quote);
        if (close >= 0) {
          value += rest.slice(pos, close);
          break;
        }
        value += `${rest.slice(pos)}\n`;
        if (++i >= lines.length) fail(`unterminated quoted value for ${key}`);
        rest = lines[i]!;
        pos = 0;
      }
      out[key] =
        quote === "'"
          ? value
          : interpolate(
              ctx,
              key,
              value.replace(/\\(.)/g, (m, c: string) => ESCAPES[c] ?? m),
            );
      continue;
    }
    const comment = rest.search(/\s#/);
    const raw = (comment < 0 ? rest : rest.slice(0, comment)).trim();
    out[key] = interpolate(ctx, key, raw);
  }
  return out;
}

/** findClose finds the closing quote from `from`; in double quotes a backslash escapes it. */
function findClose(s: string, from: number, quote: string): number {
  for (let j = from; j < s.length; j++) {
    if (quote === '"' && s[j] === '\\') j++;
    else if (s[j] === quote) return j;
  }
  return -1;
}
