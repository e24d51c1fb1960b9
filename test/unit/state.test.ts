import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Binding } from '../../src/docker/report.js';
import {
  ensureStateDir,
  processCommandLine,
  processStartTime,
  provePortpub,
  readStates,
  removeQuietly,
  removeState,
  stateDir,
  writeFileAtomic,
  writeState,
  type State,
} from '../../src/registry/state.js';

const onLinux = process.platform === 'linux';
const isRoot = process.getuid?.() === 0;

/** scratch makes a fresh directory removed when the test ends; `dir` inside it does not exist yet. */
function scratch(): { root: string; dir: string } {
  const root = mkdtempSync(join(tmpdir(), 'portpub-state-test-'));
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  return { root, dir: join(root, 'portpub') };
}

const bindings: Binding[] = [
  {
    name: 'web',
    hostIp: '0.0.0.0',
    hostPort: 8080,
    targetHost: '127.0.0.1',
    targetPort: 80,
    protocol: 'tcp',
  },
  {
    name: 'web',
    hostIp: '::',
    hostPort: 8080,
    targetHost: '127.0.0.1',
    targetPort: 80,
    protocol: 'tcp',
  },
  {
    name: 'dns',
    hostIp: '127.0.0.1',
    hostPort: 5353,
    targetHost: '10.0.0.2',
    targetPort: 53,
    protocol: 'udp',
  },
];

const stateOf = (pid: number, extra: Partial<State> = {}): State => ({
  pid,
  startedAt: '2026-01-02T03:04:05.000Z',
  configFile: '/srv/portpub.yaml',
  bindings,
  ...extra,
});

/** deadPid is the pid of a process that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid!;
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
  return pid;
}

describe('stateDir', () => {
  it.each([
    { env: { XDG_RUNTIME_DIR: '/run/user/1000' }, expected: '/run/user/1000/portpub' },
    { env: {}, expected: join(tmpdir(), `portpub-${process.getuid?.() ?? 0}`) },
    {
      env: { XDG_RUNTIME_DIR: '' },
      expected: join(tmpdir(), `portpub-${process.getuid?.() ?? 0}`),
    },
    {
      env: { XDG_RUNTIME_DIR: 'relative/dir' },
      expected: join(tmpdir(), `portpub-${process.getuid?.() ?? 0}`),
    },
  ])('is $expected for $env', ({ env, expected }) => {
    // Where no runtime directory of this user exists (the probe finds none).
    expect(stateDir(env, () => undefined)).toBe(expected);
  });

  it("uses the user's own runtime directory when XDG_RUNTIME_DIR is unset (issue 11 defect 7)", () => {
    const uid = process.getuid?.() ?? 0;
    const probe = (u: number) => (u === uid ? `/run/user/${u}` : undefined);
    expect(stateDir({}, probe)).toBe(`/run/user/${uid}/portpub`);
    expect(stateDir({ XDG_RUNTIME_DIR: '/x' }, probe)).toBe('/x/portpub');
    expect(stateDir({ PORTPUB_STATE_DIR: '/y' }, probe)).toBe('/y');
  });

  it.runIf(onLinux && isRoot)('is /run/portpub for root, which no other user can create', () => {
    expect(stateDir({})).toBe('/run/portpub');
  });
});

describe('ensureStateDir', () => {
  it('creates the directory with mode 0700 and tightens a looser one', () => {
    const { dir } = scratch();
    ensureStateDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    chmodSync(dir, 0o755);
    ensureStateDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('refuses a symbolic link', () => {
    const { root, dir } = scratch();
    const real = join(root, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, dir);
    expect(() => ensureStateDir(dir)).toThrow(
      expect.objectContaining({
        code: 'ERR_STATE_DIR',
        message: expect.stringMatching(
          `^refusing state directory ${dir}: it is a symbolic link\\. Another user may have ` +
            `created it to keep portpub out\\. Set XDG_RUNTIME_DIR .*, or PORTPUB_STATE_DIR to a ` +
            `directory only you can write`,
        ) as string,
      }),
    );
  });

  it.runIf(isRoot)('refuses a directory owned by another uid', () => {
    const { dir } = scratch();
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 4242, 4242);
    expect(() => ensureStateDir(dir)).toThrow(
      expect.objectContaining({
        code: 'ERR_STATE_DIR',
        message: expect.stringMatching(
          `^refusing state directory ${dir}: owned by uid 4242, not 0\\. Another user may have`,
        ) as string,
      }),
    );
    expect(() => readStates(dir)).toThrow(expect.objectContaining({ code: 'ERR_STATE_DIR' }));
  });
});

describe('writeState / readStates / removeState', () => {
  it('round-trips the state of a live process through a 0600 file and leaves no temp file', () => {
    const { dir } = scratch();
    writeState(dir, stateOf(process.pid, { name: 'main' }));
    expect(readdirSync(dir)).toEqual([`${process.pid}.json`]);
    expect(statSync(join(dir, `${process.pid}.json`)).mode & 0o777).toBe(0o600);

    const states = readStates(dir);
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject(stateOf(process.pid, { name: 'main' }));
    if (onLinux) expect(states[0]!.procStart).toBe(processStartTime(process.pid));
  });

  it('replaces a previous state atomically', () => {
    const { dir } = scratch();
    writeState(dir, stateOf(process.pid));
    writeState(dir, stateOf(process.pid, { bindings: bindings.slice(2) }));
    expect(readStates(dir)[0]!.bindings).toEqual(bindings.slice(2));
    expect(readdirSync(dir)).toEqual([`${process.pid}.json`]);
  });

  it('drops and deletes the file of a process that has exited', async () => {
    const { dir } = scratch();
    const pid = await deadPid();
    writeState(dir, stateOf(pid));
    writeState(dir, stateOf(process.pid));
    expect(existsSync(join(dir, `${pid}.json`))).toBe(true);

    expect(readStates(dir).map((s) => s.pid)).toEqual([process.pid]);
    expect(existsSync(join(dir, `${pid}.json`))).toBe(false);
  });

  it.runIf(onLinux)(
    'drops a file whose pid now belongs to a process started at another time',
    () => {
      const { dir } = scratch();
      writeState(dir, stateOf(process.pid, { procStart: '1' }));
      expect(readStates(dir)).toEqual([]);
      expect(readdirSync(dir)).toEqual([]);
    },
  );

  it.each([
    { what: 'not JSON', text: '{"pid": ' },
    { what: 'a pid that is not the file name', text: JSON.stringify(stateOf(1)) },
    { what: 'no bindings', text: JSON.stringify({ ...stateOf(process.pid), bindings: undefined }) },
    {
      what: 'a malformed binding',
      text: JSON.stringify(
        stateOf(process.pid, {
          bindings: [{ ...bindings[0]!, hostPort: '8080' } as unknown as Binding],
        }),
      ),
    },
    { what: 'a JSON array', text: '[]' },
  ])('deletes a corrupt file: $what', ({ text }) => {
    const { dir } = scratch();
    ensureStateDir(dir);
    writeFileSync(join(dir, `${process.pid}.json`), text);
    expect(readStates(dir)).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("cleans temp files of dead writers, keeps a live writer's and unrelated files", async () => {
    const { dir } = scratch();
    ensureStateDir(dir);
    const dead = await deadPid();
    writeFileSync(join(dir, `.${dead}.abcdef.tmp`), '{');
    writeFileSync(join(dir, `.${process.pid}.abcdef.tmp`), '{');
    writeFileSync(join(dir, 'README'), 'not a state file');
    expect(readStates(dir)).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual([`.${process.pid}.abcdef.tmp`, 'README']);
  });

  it("removes a dead pid's control socket with its state, keeps a live pid's (issue 11)", async () => {
    const { dir } = scratch();
    const dead = await deadPid();
    const orphan = await deadPid();
    writeState(dir, stateOf(dead));
    writeFileSync(join(dir, `${dead}.sock`), '');
    writeFileSync(join(dir, `${orphan}.sock`), '');
    writeFileSync(join(dir, `${process.pid}.sock`), '');
    expect(readStates(dir)).toEqual([]);
    expect(readdirSync(dir)).toEqual([`${process.pid}.sock`]);
  });

  it('lists live processes oldest first', () => {
    const { dir } = scratch();
    writeState(dir, stateOf(process.pid, { startedAt: '2026-01-02T00:00:00.000Z' }));
    writeState(dir, stateOf(process.ppid, { startedAt: '2026-01-01T00:00:00.000Z' }));
    expect(readStates(dir).map((s) => s.pid)).toEqual([process.ppid, process.pid]);
  });

  it('removes a state file, and does not mind when it is already gone', () => {
    const { dir } = scratch();
    writeState(dir, stateOf(process.pid));
    removeState(dir, process.pid);
    expect(readdirSync(dir)).toEqual([]);
    expect(() => removeState(dir, process.pid)).not.toThrow();
  });

  it('reads nothing from a directory that does not exist', () => {
    const { dir } = scratch();
    expect(readStates(dir)).toEqual([]);
  });
});

describe('PORTPUB_STATE_DIR (issue 11 defect 7)', () => {
  it('names the state directory before XDG_RUNTIME_DIR, when absolute', () => {
    expect(stateDir({ PORTPUB_STATE_DIR: '/srv/pp', XDG_RUNTIME_DIR: '/run/user/1' })).toBe(
      '/srv/pp',
    );
    expect(stateDir({ PORTPUB_STATE_DIR: 'rel', XDG_RUNTIME_DIR: '/run/user/1' })).toBe(
      '/run/user/1/portpub',
    );
  });
});

describe('provePortpub (issue 11 defect 8)', () => {
  it('accepts the live process that wrote the state, with start time and command line', () => {
    const { dir } = scratch();
    writeState(dir, stateOf(process.pid));
    const [state] = readStates(dir);
    expect(state!.cmdline).toEqual(processCommandLine(process.pid));
    expect(() => provePortpub(state!)).not.toThrow();
  });

  it.runIf(onLinux).each([
    {
      what: 'no start time',
      edit: (s: State): State => ({ ...s, procStart: undefined }),
      why:
        'its state file does not record the process start time and command line, so it ' +
        'cannot be told from an unrelated process that got the same pid',
    },
    {
      what: 'no command line',
      edit: (s: State): State => ({ ...s, cmdline: undefined }),
      why:
        'its state file does not record the process start time and command line, so it ' +
        'cannot be told from an unrelated process that got the same pid',
    },
    {
      what: 'another start time',
      edit: (s: State): State => ({ ...s, procStart: '1' }),
      why: 'that pid now belongs to a process started later',
    },
    {
      what: 'another command line',
      edit: (s: State): State => ({ ...s, cmdline: ['sleep', '100'] }),
      why: 'its command line is not the one its state file recorded',
    },
  ])('refuses a state with $what', ({ edit, why }) => {
    const own: State = {
      ...stateOf(process.pid),
      procStart: processStartTime(process.pid)!,
      cmdline: processCommandLine(process.pid)!,
    };
    expect(() => provePortpub(edit(own))).toThrow(
      expect.objectContaining({
        code: 'ERR_NOT_PORTPUB',
        exitCode: 1,
        message: `pid ${process.pid} is not a portpub that can be proven: ${why}; nothing was signalled`,
      }),
    );
  });

  it.runIf(onLinux)('refuses a pid that has exited', async () => {
    const pid = await deadPid();
    expect(() => provePortpub({ ...stateOf(pid), procStart: '1', cmdline: ['x'] })).toThrow(
      expect.objectContaining({
        code: 'ERR_NOT_PORTPUB',
        message: expect.stringContaining('no such process') as string,
      }),
    );
  });
});

describe('writeFileAtomic and removeQuietly (shared by the registry and the control socket)', () => {
  it('replaces a file whole, mode 0600, leaving no temp file; removes quietly twice', () => {
    const { root } = scratch();
    const path = join(root, 'config.json');
    writeFileAtomic(path, 'one\n');
    writeFileAtomic(path, 'two\n');
    expect(readFileSync(path, 'utf8')).toBe('two\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(root)).toEqual(['config.json']);
    removeQuietly(path);
    removeQuietly(path);
    expect(existsSync(path)).toBe(false);
  });

  it('removes its temp file when the rename fails', () => {
    const { root } = scratch();
    const path = join(root, 'taken');
    mkdirSync(join(path, 'inside'), { recursive: true }); // a non-empty directory: rename fails
    expect(() => writeFileAtomic(path, 'x')).toThrow();
    expect(readdirSync(root)).toEqual(['taken']);
  });
});
