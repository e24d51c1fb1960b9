// Running the built CLI as another user (`nobody`, uid 65534) from a checkout that user may not
// be able to enter: binForNobody gives a bin/portpub.js that user can read and run.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { BIN } from './cli.js';

export const SETPRIV = '/usr/bin/setpriv';
export const AS_NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** readableByNobody says whether uid 65534 can read path (every directory above it included). */
function readableByNobody(path: string): boolean {
  const probe = `require('fs').accessSync(${JSON.stringify(path)}, require('fs').constants.R_OK)`;
  const res = spawnSync(SETPRIV, [...AS_NOBODY, process.execPath, '-e', probe], {
    timeout: 10_000,
  });
  return res.status === 0;
}

/**
 * binForNobody returns BIN when nobody can read it, else the bin/portpub.js of a copy of the
 * built package (bin/, dist/, package.json and the production dependencies) in a fresh
 * world-readable temporary directory, removed when the test ends.
 */
export function binForNobody(): string {
  if (readableByNobody(BIN)) return BIN;
  const dir = mkdtempSync(join(tmpdir(), 'portpub-nobody-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  for (const part of ['bin', 'dist', 'package.json']) {
    cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  }
  const deps = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((p) => p.includes('node_modules'));
  for (const dep of deps) {
    cpSync(dep, join(dir, relative(ROOT, dep)), { recursive: true });
  }
  return join(dir, 'bin', 'portpub.js');
}
