// What every client and target program shares: its JSON config from argv, one JSON result
// line on stdout, percentiles, and a hard deadline so no program outlives a broken run.

/** config parses the program's JSON config, given as its one argument. */
export function config<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T;
}

/** result writes the one JSON result line and exits once it is flushed. */
export function result(value: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(value) + '\n', () => process.exit(0));
}

/** deadline exits the program (code 3) after ms, whatever it is doing. */
export function deadline(ms: number): void {
  setTimeout(() => {
    process.stderr.write(`deadline of ${ms} ms passed\n`);
    process.exit(3);
  }, ms).unref();
}

/** percentile of sorted samples (nearest rank), or NaN when there are none. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** nowUs is a monotonic clock in microseconds. */
export function nowUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}
