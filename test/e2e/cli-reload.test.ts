// `portpub reload` reports how the reload went (issue 13 defect 14): it waits for the running
// `portpub up` to record the outcome in its state file and prints added/removed/kept, or the
// error that kept the running configuration (exit 1).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { echoServer } from '../helpers/net.js';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-reload-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('portpub reload', () => {
  it('prints what the reload did, or why it failed', async () => {
    const dir = tempDir();
    const env = { PORTPUB_STATE_DIR: join(dir, 'state') };
    const a = await echoServer();
    const b = await echoServer();
    const file = join(dir, 'compose.yaml');
    const ports = (...lines: string[]) =>
      `services:\n  web:\n    ports:\n${lines.map((l) => `      - "${l}"\n`).join('')}`;
    writeFileSync(file, ports(`127.0.0.1::${a.port}`));
    const run = await startCli(['up', '-f', file], 1, 15_000, { env });

    writeFileSync(file, ports(`127.0.0.1::${a.port}`, `127.0.0.1::${b.port}`));
    const ok = await runCli(['reload'], 15_000, { env });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(
      `sent SIGHUP to portpub pid ${run.child.pid} (${file})\n` +
        'reloaded: 1 added, 0 removed, 1 kept\n',
    );

    writeFileSync(file, ports('127.0.0.1:1:2/xyz'));
    const bad = await runCli(['reload', '--pid', String(run.child.pid)], 15_000, { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      `portpub: reload of portpub pid ${run.child.pid} failed, the running configuration is kept: `,
    );
    expect(bad.stderr).toContain('invalid proto: xyz');
    expect((await run.stop()).code).toBe(0);
  });
});
