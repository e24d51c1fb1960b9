// Issue 13 defect 2 end to end: a file with no ports ends with "nothing to publish" and exit 2
// from the built CLI, never Node's exit 13 for a top-level await left pending.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli } from '../helpers/cli.js';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-first-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('portpub up with no ports, through the built CLI', () => {
  it.each([
    ['only image:', 'services:\n  web:\n    image: nginx\n'],
    ['a typo', 'services:\n  web:\n    image: nginx\n    prots: ["8080:80"]\n'],
  ])('%s: exit 2 with a message, not 13', async (_what, text) => {
    const dir = tempDir();
    const file = join(dir, 'compose.yaml');
    writeFileSync(file, text);
    const r = await runCli(['up', '-f', file], 15_000, {
      env: { PORTPUB_STATE_DIR: join(dir, 'state') },
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('portpub: nothing to publish: no service in');
  });
});
