// The one error catalog (issue 12 item 4): every stable code lives in src/errors.ts with its exit
// code, is exported from the package entry, and no other source file invents one.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as errors from '../../src/errors.js';
import * as api from '../../src/index.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  );
}

// Codes of other libraries that portpub only reads (Node's worker error, a destroyed stream's).
const FOREIGN = new Set(['ERR_WORKER_OUT_OF_MEMORY', 'ERR_STREAM_DESTROYED']);

describe('the error catalog', () => {
  const entries = Object.entries(errors.ERRORS);

  it('gives every code a constant of its own name, an exit code and a meaning', () => {
    expect(entries.length).toBeGreaterThanOrEqual(20);
    for (const [code, [exitCode, meaning]] of entries) {
      expect(code).toMatch(/^ERR_[A-Z_]+$/);
      expect((errors as Record<string, unknown>)[code], code).toBe(code);
      expect([errors.EXIT_RUNTIME, errors.EXIT_USAGE], code).toContain(exitCode);
      expect(meaning.length, code).toBeGreaterThan(10);
    }
  });

  it('is exported from the package entry', () => {
    expect(api.ERRORS).toBe(errors.ERRORS);
    for (const [code] of entries) expect((api as Record<string, unknown>)[code], code).toBe(code);
    expect(api.OptionError).toBe(errors.OptionError);
  });

  it('holds every code the sources raise, and only errors.ts defines codes', () => {
    const unknown: string[] = [];
    const definedElsewhere: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8');
      const rel = file.slice(SRC.length);
      for (const m of text.matchAll(/\bERR_[A-Z][A-Z_]*[A-Z]\b/g)) {
        if (!(m[0] in errors.ERRORS) && !FOREIGN.has(m[0])) unknown.push(`${rel}: ${m[0]}`);
      }
      if (rel !== 'errors.ts' && /export const ERR_[A-Z_]+\s*=/.test(text))
        definedElsewhere.push(rel);
    }
    expect(unknown).toEqual([]);
    expect(definedElsewhere).toEqual([]);
  });

  it('the error classes carry their catalog code and exit code', () => {
    const rows: [errors.PortpubError, string][] = [
      [new errors.SpecError('x', 'm'), errors.ERR_SPEC],
      [new errors.UsageError('m'), errors.ERR_USAGE],
      [new errors.BindError('m'), errors.ERR_BIND],
      [new errors.UnsupportedError('m'), errors.ERR_UNSUPPORTED],
      [new errors.OptionError('idleTimeoutMs', 'm'), errors.ERR_USAGE],
    ];
    for (const [err, code] of rows) {
      expect(err.code).toBe(code);
      expect(err.exitCode).toBe(errors.ERRORS[code as errors.ErrorCode][0]);
      expect(err).toBeInstanceOf(errors.PortpubError);
    }
    const misuse = new errors.OptionError('idleTimeoutMs', 'must be a whole number >= 0');
    expect(misuse).toBeInstanceOf(errors.UsageError);
    expect(misuse.option).toBe('idleTimeoutMs');
    expect(misuse.message).toBe('idleTimeoutMs: must be a whole number >= 0');
  });
});
