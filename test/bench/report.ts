// The ratio table: each subject's value per row, the best peer of the row (among the peers that
// ran cleanly), and each portpub engine's value over that best, with which way is better.
import type { Row } from './rows.js';
import type { Measured } from './scenarios.js';
import type { Subject } from './subjects.js';

/** Cell is one subject's outcome in one row: a value, an error, or not applicable. */
export type Cell = Measured | { error: string } | { na: string };

/** Line is one row of the finished table. */
export interface Line {
  key: string;
  label: string;
  better: 'higher' | 'lower';
  client: string;
  values: Record<string, Cell>;
  best: { name: string; value: number } | null;
  /** ratios: portpub subject -> its value / the best peer's (null when either is missing). */
  ratios: Record<string, number | null>;
}

const isValue = (c: Cell | undefined): c is Measured => c !== undefined && 'value' in c;

/** lines computes the best peer and the ratios of every row. */
export function lines(
  rows: Row[],
  subjects: Subject[],
  cells: Map<string, Record<string, Cell>>,
): Line[] {
  return rows
    .filter((r) => cells.has(r.key))
    .map((row) => {
      const values = cells.get(row.key)!;
      let best: Line['best'] = null;
      for (const s of subjects.filter((x) => x.kind === 'peer')) {
        const c = values[s.name];
        if (!isValue(c) || c.flawed || !Number.isFinite(c.value)) continue;
        const better =
          row.better === 'higher'
            ? c.value > (best?.value ?? -Infinity)
            : c.value < (best?.value ?? Infinity);
        if (better) best = { name: s.name, value: c.value };
      }
      const ratios: Record<string, number | null> = {};
      for (const s of subjects.filter((x) => x.kind === 'portpub')) {
        const c = values[s.name];
        ratios[s.name] = isValue(c) && best && best.value !== 0 ? c.value / best.value : null;
      }
      const clients = new Set(
        Object.values(values)
          .filter(isValue)
          .map((c) => c.client),
      );
      return {
        key: row.key,
        label: row.label,
        better: row.better,
        client: [...clients].join('+') || '-',
        values,
        best,
        ratios,
      };
    });
}

/** fmt prints a number with about three significant digits. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

function cellText(c: Cell | undefined): string {
  if (c === undefined) return '-';
  if ('na' in c) return 'n/a';
  if ('error' in c) return 'error';
  return fmt(c.value) + (c.flawed ? '*' : '');
}

function grid(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** table renders the ratio table as text. */
export function table(ls: Line[], subjects: Subject[]): string {
  const pp = subjects.filter((s) => s.kind === 'portpub');
  const head = [
    'row',
    'better',
    'client',
    ...subjects.map((s) => s.name),
    'best peer',
    ...pp.map((s) => `${s.name.replace('portpub-', '')}/best`),
  ];
  const body = ls.map((l) => [
    l.label,
    l.better,
    l.client,
    ...subjects.map((s) => cellText(l.values[s.name])),
    l.best ? `${fmt(l.best.value)} ${l.best.name}` : '- (no peer)',
    ...pp.map((s) => {
      const r = l.ratios[s.name];
      return r === null || r === undefined ? '-' : `${r.toFixed(2)}x`;
    }),
  ]);
  return grid(head, body);
}
