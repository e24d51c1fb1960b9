// Option values as people type them: durations (`10s`, `500ms`, `2m`, `1h`, compose's `1m30s`)
// and counts, and durations written back the same way for help text.

/** UNITS in milliseconds: Go's time.ParseDuration's (compose-go parses durations with it). */
const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  '\u00b5s': 1e-3, // µs, MICRO SIGN
  '\u03bcs': 1e-3, // μs, GREEK SMALL LETTER MU: Go accepts both
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** MAX_TIMER_MS is the longest delay a Node timer takes (2^31-1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

// A number as Go writes one in a duration (`1`, `1.5`, `.5`, `1.`), then its unit.
const PART = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/**
 * parseDurationMs reads a duration and returns milliseconds, or undefined when the text is not a
 * non-negative duration: a bare number is seconds (`90`), else one or more `<number><unit>`
 * parts with Go's time.ParseDuration units (and so compose's: compose-go parses with it): ns,
 * us (or µs, μs), ms, s, m, h (`1m30s`, `1h0m0s`, `1.5h`, `.5s`, `250us`). Milliseconds are the
 * finest a timer waits, so a positive duration is rounded to them, and to at least 1 ms. No upper
 * bound: see parseDuration.
 */
export function parseDurationMs(text: string): number | undefined {
  const t = text.trim();
  if (/^[0-9]+(?:\.[0-9]+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const ms = parseGoDurationMs(t);
  if (ms === undefined) return undefined;
  return ms > 0 ? Math.max(1, Math.round(ms)) : 0;
}

/**
 * parseGoDurationMs reads one or more `<number><unit>` parts, as Go's time.ParseDuration does,
 * and returns milliseconds unrounded (`250us` is 0.25), or undefined; a bare number has no unit
 * and is undefined here.
 */
export function parseGoDurationMs(text: string): number | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  let ms = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < t.length) {
    const m = PART.exec(t);
    if (!m) return undefined;
    ms += Number(m[1]) * UNITS[m[2]!]!;
  }
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * parseDuration is parseDurationMs bounded to what a timer can wait (MAX_TIMER_MS); longer is
 * undefined too. Callers that want to say why use parseDurationMs and MAX_TIMER_MS.
 */
export function parseDuration(text: string): number | undefined {
  const ms = parseDurationMs(text);
  return ms !== undefined && ms <= MAX_TIMER_MS ? ms : undefined;
}

/**
 * formatDuration writes milliseconds the way people type them, largest units first: `10s`,
 * `90s`, `500ms`, `2m`, `1m30s`, `1h`; 0 is `0`.
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  // Whole minutes and hours read better as such; 90 s stays `90s` as Docker's docs write it.
  let rest = ms;
  let out = '';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
  ] as const) {
    if (rest >= size && (rest % size === 0 || out !== '' || rest >= 2 * size)) {
      const n = Math.floor(rest / size);
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  if (rest >= 1000 && rest % 1000 === 0) out += `${rest / 1000}s`;
  else if (rest > 0) out += rest >= 1000 ? `${rest / 1000}s` : `${rest}ms`;
  return out;
}

/** parseCount reads a non-negative whole number, or undefined. */
export function parseCount(text: string): number | undefined {
  if (!/^[0-9]+$/.test(text.trim())) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}
