// CI's sanitizer step (.ci/run, `sanitized=(...)`) runs the per-engine suites native-only: a new
// suite over `engines` that is not listed there would never meet AddressSanitizer, and a listed
// file that does not use `engines` would run its TypeScript cases there for nothing.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** sanitized reads the file list of .ci/run's sanitizer step. */
function sanitized(): string[] {
  const run = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
  const list = /^sanitized=\(\n([^)]*)\)$/m.exec(run);
  expect(list, '.ci/run: sanitized=( one file a line )').not.toBeNull();
  return list![1]!
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

const source = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

/** usesEngines says whether a test file imports `engines`, the engines a run tests. */
const usesEngines = (file: string): boolean =>
  /import \{[^}]*\bengines\b[^}]*\} from '\.\.\/helpers\/engines\.js'/.test(source(file));

describe('.ci/run sanitizer step', () => {
  it('lists every test/net suite that imports `engines`', () => {
    const perEngine = readdirSync(join(ROOT, 'test', 'net'))
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => `test/net/${f}`)
      .filter(usesEngines);
    expect(perEngine.length).toBeGreaterThan(0);
    expect(perEngine.filter((f) => !sanitized().includes(f))).toEqual([]);
  });

  it('lists only files that use `engines` or are native-only', () => {
    const unfit = sanitized().filter((f) => {
      const text = source(f);
      const perEngine = usesEngines(f);
      const nativeOnly =
        /describe\.(runIf\(nativeTested\)|skipIf\(loaded\.binding === undefined\))/.test(text);
      return !perEngine && !nativeOnly;
    });
    expect(unfit).toEqual([]);
  });
});
