// Option values as people type them: durations (`10s`, `500ms`, `2m`, `1h`) and counts.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * parseDuration reads `<number><unit>` with unit ms, s, m or h (a bare number is seconds) and
 * returns milliseconds, or undefined when the text is not a non-negative duration.
 */
export function parseDuration(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNITS[m[2] ?? 's']!;
  return Number.isFinite(ms) && ms <= 2 ** 31 - 1 ? Math.round(ms) : undefined;
}

/** parseCount reads a non-negative whole number, or undefined. */
export function parseCount(text: string): number | undefined {
  if (!/^[0-9]+$/.test(text.trim())) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}
