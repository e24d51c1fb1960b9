// netns/tty.ts: how `run -t` finds programs as execvp does, what it hands script(1), and where its
// signals go.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { findExecutable, ttyCommand, TtySignals } from '../../src/netns/tty.js';

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-tty-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('findExecutable', () => {
  it('searches PATH in order for an executable regular file, as execvp does', () => {
    const dir = scratch();
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(a, 'tool'), '#!/bin/sh\n'); // not executable: skipped
    writeFileSync(join(b, 'tool'), '#!/bin/sh\n');
    chmodSync(join(b, 'tool'), 0o755);
    mkdirSync(join(a, 'dir'));
    chmodSync(join(a, 'dir'), 0o755); // a directory is no program
    expect(findExecutable('tool', `${a}:${b}`)).toBe(join(b, 'tool'));
    expect(findExecutable('dir', `${a}:${b}`)).toBeUndefined();
    expect(findExecutable('missing', `${a}:${b}`)).toBeUndefined();
  });

  it('takes a name with a slash as it is, and /bin:/usr/bin when PATH is unset', () => {
    expect(findExecutable('/bin/sh', '/nonexistent')).toBe('/bin/sh');
    expect(findExecutable('./no-such-program', undefined)).toBeUndefined();
    expect(findExecutable('sh', undefined)).toMatch(/^\/(usr\/)?bin\/sh$/);
  });
});

describe('ttyCommand', () => {
  it('runs the command under script with every word quoted for sh, pid on fd 3 first', () => {
    const run = ttyCommand(
      '/usr/bin/script',
      'printf',
      ['%s|', "it's", 'a b', '$HOME'],
      '/usr/bin:/bin',
    );
    expect(run.tty).toBe(true);
    expect(run.command).toBe('/usr/bin/script');
    expect(run.args.slice(0, 3)).toEqual(['-q', '-e', '-c']);
    expect(run.args[4]).toBe('/dev/null');
    // The line, run by sh as script would run it: the words arrive as they were given.
    const line = run.args[3]!;
    const sh = spawnSync('sh', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    expect(sh.stdout.toString()).toBe("it's|a b|$HOME|");
    expect(Number(sh.output[3]!.toString().trim())).toBeGreaterThan(0);
  });

  it('is the command as it is without a script (no -t)', () => {
    expect(ttyCommand(undefined, 'sh', ['-c', 'true'], '/usr/bin:/bin')).toEqual({
      command: 'sh',
      args: ['-c', 'true'],
      tty: false,
    });
  });

  it('leaves a command that cannot run as it is, so it fails as without -t', () => {
    expect(ttyCommand('/usr/bin/script', 'no-such-command', ['x'], '/usr/bin:/bin')).toEqual({
      command: 'no-such-command',
      args: ['x'],
      tty: false,
    });
  });
});

describe('TtySignals', () => {
  it('holds a signal until the pid comes, then sends every one to that pid', async () => {
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    onTestFinished(() => kill.mockRestore());
    const pipe = new PassThrough();
    const signals = new TtySignals(pipe);
    signals.kill('SIGTERM');
    expect(kill).not.toHaveBeenCalled();
    pipe.write('12');
    await tick();
    expect(kill).not.toHaveBeenCalled(); // half a line is no pid yet
    pipe.write('345\n');
    await tick();
    expect(kill).toHaveBeenCalledWith(12345, 'SIGTERM');
    signals.kill('SIGINT');
    expect(kill).toHaveBeenLastCalledWith(12345, 'SIGINT');
    expect(kill).toHaveBeenCalledTimes(2);
  });
});
