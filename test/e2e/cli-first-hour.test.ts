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

describe('portpub up --profile, through the built CLI', () => {
  const file =
    'x-portpub-target: 192.0.2.1\nservices:\n  web:\n    ports: ["42120:80"]\n' +
    '  debug:\n    profiles: [debug]\n    ports: ["42121:9229"]\n' +
    '  tools:\n    profiles: [tools]\n    ports: ["42122:7000"]\n';
  const plan = async (args: string[], env: Record<string, string> = {}) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'compose.yaml'), file);
    const r = await runCli(['up', '-f', join(dir, 'compose.yaml'), '--dry-run', ...args], 15_000, {
      env: { PORTPUB_STATE_DIR: join(dir, 'state'), COMPOSE_PROFILES: '', ...env },
    });
    expect(r.code, r.stderr).toBe(0);
    return [...r.stdout.matchAll(/^(\w+): \d+\/tcp -> 0\.0\.0\.0:(\d+)/gm)].map(
      (m) => `${m[1]}:${m[2]}`,
    );
  };

  it('publishes a service under profiles: only when one of them is active', async () => {
    expect(await plan([])).toEqual(['web:42120']);
    expect(await plan(['--profile', 'debug'])).toEqual(['web:42120', 'debug:42121']);
    expect(await plan(['--profile', 'debug', '--profile', 'tools'])).toEqual([
      'web:42120',
      'debug:42121',
      'tools:42122',
    ]);
    expect(await plan([], { COMPOSE_PROFILES: 'tools' })).toEqual(['web:42120', 'tools:42122']);
  });
});
