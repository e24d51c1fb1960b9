// What a killed process leaves of a --rm service (registry/containers.ts): a record kept for an
// attacher that died, and a removal cut off half-way, are removed by the next listing, as
// Docker's daemon removes a --rm container whoever was attached; what someone still needs stays.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  attach,
  containersDir,
  createContainer,
  findContainer,
  listContainers,
  markExited,
  removeIfAutoRemove,
  thisProcess,
  updateState,
  type ContainerRecord,
} from '../../src/registry/containers.js';
import { processStartTime, processStat } from '../../src/registry/state.js';
import { bareConfig, tempStateDir } from '../fixtures/records.js';

/** exitedRm is a --rm service named `name` whose command ended with 0. */
function exitedRm(dir: string, name: string): ContainerRecord {
  const r = createContainer(bareConfig({ name, autoRemove: true }), dir);
  markExited(r.id, 0, dir);
  return r;
}

/** A child's pid and start time, once it has ended and been reaped: a process that is gone. */
function deadProcess(): { pid: number; start: string } {
  const child = spawnSync(
    process.execPath,
    ['-e', 'console.log(require("fs").readFileSync("/proc/self/stat", "utf8"))'],
    {
      encoding: 'utf8',
    },
  );
  const fields = child.stdout.slice(child.stdout.lastIndexOf(')') + 2).split(' ');
  return { pid: child.pid, start: fields[19]! };
}

/**
 * zombieProcess is a process that has ended and is not reaped: a shell's background child, whose
 * parent then becomes a sleep that never waits. Its pid and start time, once /proc says Z.
 */
async function zombieProcess(): Promise<{ pid: number; start: string }> {
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 60'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  onTestFinished(() => {
    parent.kill('SIGKILL');
  });
  const [line] = (await once(parent.stdout, 'data')) as [Buffer];
  const pid = Number(line.toString().trim());
  for (;;) {
    const stat = processStat(pid);
    if (stat?.[0] === 'Z') return { pid, start: stat[19]! };
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const names = (dir: string) => listContainers(dir).map((r) => r.name);

describe('leftovers of a --rm service', () => {
  it('a record kept for an attacher that died is removed by the next listing', () => {
    const dir = tempStateDir();
    const r = exitedRm(dir, 'gone');
    const { pid, start } = deadProcess();
    mkdirSync(join(containersDir(dir), r.id, 'attached'));
    writeFileSync(join(containersDir(dir), r.id, 'attached', String(pid)), `${start}\n`);
    expect(names(dir)).toEqual([]);
    expect(existsSync(join(containersDir(dir), r.id))).toBe(false);
    expect(() => findContainer('gone', dir)).toThrow('No such container: gone');
    // Its name is free again.
    expect(createContainer(bareConfig({ name: 'gone' }), dir).name).toBe('gone');
  });

  it('what is still needed stays: a live attacher, a restart, a plain record, one not ended', () => {
    const dir = tempStateDir();
    const watched = exitedRm(dir, 'watched');
    const detach = attach(watched.id, dir); // this process, alive, has not read the exit code
    const restarting = exitedRm(dir, 'restarting');
    updateState(restarting.id, { keepOnStop: thisProcess() }, dir); // a live restart's
    markExited(createContainer(bareConfig({ name: 'plain' }), dir).id, 0, dir);
    createContainer(bareConfig({ name: 'fresh', autoRemove: true }), dir);
    const self = { pid: process.pid, procStart: processStartTime(process.pid)! };
    const running = createContainer(bareConfig({ name: 'running', autoRemove: true }), dir);
    updateState(running.id, { status: 'running', ...self }, dir);
    expect(names(dir).sort()).toEqual(['fresh', 'plain', 'restarting', 'running', 'watched']);
    // The attacher reads the code and goes; the next listing removes the record.
    detach();
    expect(names(dir).sort()).toEqual(['fresh', 'plain', 'restarting', 'running']);
  });

  it('a record kept by a restart that died, or by a zombie attacher, is removed', async () => {
    const dir = tempStateDir();
    const dead = deadProcess();
    updateState(exitedRm(dir, 'restarted').id, { keepOnStop: dead }, dir);
    // A record written before keepOnStop named its restarter: nothing proves one lives.
    updateState(exitedRm(dir, 'old').id, { keepOnStop: true } as never, dir);
    // The attacher ended, but its parent has not reaped it: as gone as a dead one.
    const z = await zombieProcess();
    const watched = exitedRm(dir, 'zombie-watched');
    mkdirSync(join(containersDir(dir), watched.id, 'attached'));
    writeFileSync(join(containersDir(dir), watched.id, 'attached', String(z.pid)), `${z.start}\n`);
    expect(names(dir)).toEqual([]);
  });

  it('an end read before a start made the record created again does not remove it', () => {
    const dir = tempStateDir();
    const r = createContainer(bareConfig({ name: 'again', autoRemove: true }), dir);
    const stale = markExited(r.id, 0, dir); // its end, as an attacher read it...
    // ...then a start makes it created again, before that attacher removes the ended service:
    // removeIfAutoRemove checks the record as it is under its lock, not the copy it was given.
    updateState(r.id, { status: 'created', exitCode: undefined }, dir);
    removeIfAutoRemove(stale, dir);
    expect(names(dir)).toEqual(['again']);
  });

  it('finishes a removal whose process died half-way; one under way is left to it', () => {
    const dir = tempStateDir();
    exitedRm(dir, 'keep'); // a listing's own removal, beside
    const { pid } = deadProcess();
    const abandoned = join(containersDir(dir), `.removing-${'a'.repeat(64)}-${pid}`);
    const busy = join(containersDir(dir), `.removing-${'b'.repeat(64)}-${process.pid}`);
    for (const d of [abandoned, busy]) {
      mkdirSync(d);
      writeFileSync(join(d, 'config.json'), '{}\n');
    }
    expect(names(dir)).toEqual([]);
    expect(existsSync(abandoned)).toBe(false);
    expect(existsSync(busy)).toBe(true);
  });
});
