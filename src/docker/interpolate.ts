// Compose's variable substitution, pure: `${VAR:-default}` and friends, as compose-go's
// template package does it, over an environment given by the caller (process env plus `.env`).

/** InterpolationContext is where variables come from and where warnings and errors go. */
export interface InterpolationContext {
  env: Readonly<Record<string, string | undefined>>;
  warn: (where: string, message: string) => void;
  /** fail throws the caller's error for `where`. */
  fail: (where: string, message: string) => never;
}

/**
 * interpolate applies compose's variable substitution: `$$` is a literal `$`; `$VAR` and `${VAR}`
 * (unset: "" with compose's warning); `${VAR:-default}` / `${VAR-default}` (when unset or empty /
 * when unset); `${VAR:?message}` / `${VAR?message}` (error); `${VAR:+alt}` / `${VAR+alt}`.
 * Defaults, messages and alternatives are interpolated in turn.
 */
export function interpolate(ctx: InterpolationContext, where: string, text: string): string {
  if (!text.includes('$')) return text;
  const invalid = (): never => {
    return ctx.fail(where, `Invalid template: ${JSON.stringify(text)}`);
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
          ctx.fail(
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

function lookup(ctx: InterpolationContext, where: string, name: string): string {
  const value = ctx.env[name];
  if (value === undefined) {
    ctx.warn(where, `The "${name}" variable is not set. Defaulting to a blank string.`);
    return '';
  }
  return value;
}
