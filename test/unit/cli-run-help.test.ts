// `portpub run` and `portpub logs` options as their help shows them: run refuses the serving
// options it cannot honour (exit 2) and does not list them; logs shows Docker's --tail default.
import { describe, expect, it } from 'vitest';
import { runMain, useStateDir } from './cli-harness.js';

describe('portpub run: serving options it cannot honour', () => {
  it.each([
    [['--tcp-workers', '2'], '--tcp-workers is not an option of portpub run'],
    [['--engine', 'js'], '--engine is not an option of portpub run'],
    [['--engine', 'native', '--network', 'host'], '--engine is not an option of portpub run'],
  ])('refuses %j with a usage error', async (flags, message) => {
    useStateDir();
    const r = await runMain(['run', ...flags, '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe('');
  });

  it('does not list them in its help', async () => {
    const r = await runMain(['run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--publish');
    expect(r.stdout).toContain('--drain-timeout');
    expect(r.stdout).not.toContain('--tcp-workers');
    expect(r.stdout).not.toContain('--engine');
  });
});

describe('portpub logs --help', () => {
  it("shows --tail's default as Docker does: all", async () => {
    const r = await runMain(['logs', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(
      `-n, --tail <n> lines from the end to show ('all' or a number) (default: "all")`,
    );
    expect(r.stdout).not.toContain('null');
  });
});
