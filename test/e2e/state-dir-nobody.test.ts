// A state directory another user created first (issue 11, defect 7): with XDG_RUNTIME_DIR unset
// and no /run/user/<uid>, portpub falls back to <tmpdir>/portpub-<uid>, which anyone can make.
// Made by root, mode 0700, it is neither nobody's nor readable by nobody. Every command that reads
// the states must refuse it with the one ERR_STATE_DIR message that says what to do, exit 1, no
// stack trace; a plain -p run still serves, warns, and exits 0 on SIGINT.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { freePort } from '../helpers/net.js';
import { AS_NOBODY, binForNobody, SETPRIV } from '../helpers/nobody.js';

const canDrop = process.getuid?.() === 0 && existsSync(SETPRIV);

/** takenTmp is a world-searchable TMPDIR whose portpub-65534 root made first, mode 0700. */
function takenTmp(): { tmp: string; dir: string } {
  const tmp = mkdtempSync(join(tmpdir(), 'portpub-taken-'));
  onTestFinished(() => rmSync(tmp, { recursive: true, force: true }));
  chmodSync(tmp, 0o755);
  const dir = join(tmp, 'portpub-65534');
  mkdirSync(dir, { mode: 0o700 });
  mkdirSync(join(dir, 'containers'), { mode: 0o700 });
  return { tmp, dir };
}

/** nobodyEnv: no XDG_RUNTIME_DIR and no PORTPUB_STATE_DIR, so the tmpdir fallback applies. */
function nobodyEnv(tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.XDG_RUNTIME_DIR;
  delete env.PORTPUB_STATE_DIR;
  return env;
}

function expectRefusal(stderr: string, dir: string): void {
  expect(stderr).toContain(`portpub: refusing state directory ${dir}`);
  expect(stderr).toContain('Set XDG_RUNTIME_DIR');
  expect(stderr).toContain('PORTPUB_STATE_DIR');
  expect(stderr).not.toContain('unexpected error');
  expect(stderr).not.toMatch(/^\s+at /m);
}

describe.runIf(canDrop)('a state directory another user made first, as nobody', () => {
  it.for([
    ['port'],
    ['env', 'web'],
    ['ps'],
    ['reload'],
    ['stop', 'web'],
    ['logs', 'web'],
    ['run', '--link', 'db', 'true'],
    ['run', '--network', 'host', '--link', 'db', 'true'],
  ])('portpub %s refuses it with what to do, no stack trace, exit 1', (args) => {
    const { tmp, dir } = takenTmp();
    const res = spawnSync(SETPRIV, [...AS_NOBODY, process.execPath, binForNobody(), ...args], {
      encoding: 'utf8',
      timeout: 15_000,
      env: nobodyEnv(tmp),
    });
    expectRefusal(res.stderr, dir);
    expect(res.status).toBe(1);
  });

  it('a plain -p run serves, warns, and exits 0 on SIGINT', async () => {
    const { tmp, dir } = takenTmp();
    const port = await freePort();
    const child = spawn(
      SETPRIV,
      [...AS_NOBODY, process.execPath, binForNobody(), '-p', `127.0.0.1:${port}:9`],
      { stdio: ['ignore', 'pipe', 'pipe'], env: nobodyEnv(tmp) },
    );
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await vi.waitFor(() => expect(stdout).toContain(`9/tcp -> 127.0.0.1:${port}`), {
      timeout: 15_000,
    });
    await vi.waitFor(() => expect(stderr).toContain('cannot write the state file'), {
      timeout: 15_000,
    });
    child.kill('SIGINT');
    const code = await Promise.race([
      exited,
      new Promise<string>((r) => setTimeout(() => r('no exit within 15 s'), 15_000).unref()),
    ]);
    expect(stderr).toContain(`refusing state directory ${dir}`);
    expect(stderr).not.toContain('unexpected error');
    expect(code).toBe(0);
  });
});
