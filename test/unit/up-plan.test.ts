// `portpub up --dry-run` in-process: a plan of every port there is stays linear in the number of
// mappings (issue 11 defect 4: one `1-65535:1-65535` line took 89 s where `-p` took 0.4 s).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../src/cli/main.js';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-plan-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** sink collects what a command writes. */
function sink(): Writable & { text(): string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { text(): string };
  w.text = () => chunks.join('');
  return w;
}

async function dryRun(file: string, ...extra: string[]) {
  const stdout = sink();
  const stderr = sink();
  const code = await main(['node', 'portpub', 'up', '-f', file, '--dry-run', ...extra], {
    stdout,
    stderr,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe('portpub up --dry-run at scale', () => {
  // The bounds are generous on purpose: the linear plan takes 0.7 s (one range) and 2.4 s (65,535
  // YAML entries) on an idle 2-core machine; the quadratic grouping took 89 s for either.
  it('plans one 1-65535:1-65535 line, every port, well within the bound', async () => {
    const file = join(tempDir(), 'compose.yaml');
    // The service on 127.0.0.2: to 127.0.0.1 every mapping would be portpub's own socket.
    writeFileSync(
      file,
      'services:\n  all:\n    target: 127.0.0.2\n    ports:\n      - "127.0.0.1:1-65535:1-65535"\n',
    );
    const r = await dryRun(file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(65535);
    expect(lines[0]).toBe('all: 1/tcp -> 127.0.0.1:1 => 127.0.0.2:1');
    expect(lines[65534]).toBe('all: 65535/tcp -> 127.0.0.1:65535 => 127.0.0.2:65535');
  }, 10_000);

  it('plans 65,535 separate entries across two services in file order, as JSON too', async () => {
    const rows = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => `      - "${from + i}:${from + i}/udp"`);
    const file = join(tempDir(), 'compose.yaml');
    writeFileSync(
      file,
      [
        'services:',
        '  a:',
        '    ports:',
        ...rows(1, 30000),
        '  b:',
        '    ports:',
        ...rows(30001, 65535),
        '',
      ].join('\n'),
    );
    const r = await dryRun(file, '--json');
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as { mappings: { name: string; targetPort: number }[] };
    expect(plan.mappings).toHaveLength(65535);
    expect(plan.mappings[29999]).toMatchObject({ name: 'a', targetPort: 30000 });
    expect(plan.mappings[30000]).toMatchObject({ name: 'b', targetPort: 30001 });
  }, 30_000);
});
