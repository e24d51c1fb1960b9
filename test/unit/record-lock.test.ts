// The lock on a service's record (registry/containers.ts): processes that update one record at
// once (a service's portpub marking it running while `restart` marks it kept through the stop)
// keep every change; a lock whose holder died is taken over; a record removed while a writer
// waits for its lock is gone for that writer, not an error.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  containersDir,
  createContainer,
  readRecord,
  removeContainer,
  updateState,
  type ContainerRecord,
} from '../../src/registry/containers.js';
import { processStartTime } from '../../src/registry/state.js';
import { bareConfig, tempStateDir } from '../fixtures/records.js';
import { waitFor, withDeadline } from '../helpers/net.js';
import { buildForChild } from '../helpers/udp.js';

function newRecord(dir: string): ContainerRecord {
  return createContainer(bareConfig(), dir);
}

const lockPath = (dir: string, id: string) => join(containersDir(dir), id, 'lock');

/** A pid that no process has now: a child's, once it has been reaped. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  return child.pid;
}

describe('the lock on a record', () => {
  it(
    'keeps every change of processes updating one record at once',
    { timeout: 90_000 },
    async () => {
      const dir = tempStateDir();
      const { id } = newRecord(dir);
      const src = buildForChild('registry/containers');
      const writers = 3;
      const each = 60;
      // Each writer sets keys of its own, one update at a time: a read-modify-write that another
      // process's write overtakes would drop the keys that write did not know of.
      const script = `
      const { updateState } = await import(${JSON.stringify(join(src, 'registry/containers.js'))});
      const [id, dir, w, n] = process.argv.slice(1);
      for (let i = 0; i < Number(n); i++) {
        if (updateState(id, { ['w' + w + '_' + i]: i }, dir) === undefined) process.exit(3);
        // A breath between updates: a writer that took the lock back at once could keep the
        // others (polling every 2 ms) waiting for all its updates.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
    `;
      const children = Array.from({ length: writers }, (_, w) => {
        const child = spawn(
          process.execPath,
          ['--input-type=module', '-e', script, id, dir, String(w), String(each)],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        onTestFinished(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        return new Promise<string>((resolve) =>
          child.on('exit', (code, signal) => resolve(`${code ?? signal}${stderr}`)),
        );
      });
      const ends = await withDeadline(Promise.all(children), 80_000, 'the writers');
      expect(ends).toEqual(Array(writers).fill('0'));
      const state = readRecord(id, dir)!.state as unknown as Record<string, unknown>;
      const missing = [];
      for (let w = 0; w < writers; w++) {
        for (let i = 0; i < each; i++) if (state[`w${w}_${i}`] !== i) missing.push(`w${w}_${i}`);
      }
      expect(missing).toEqual([]);
      expect(state.status).toBe('created');
      // Nothing of the lock is left: no lock, no claim of a writer's own, no takeover file.
      expect(readdirSync(join(containersDir(dir), id)).sort()).toEqual(['config.json']);
    },
  );

  it('takes over the lock of a process that died holding it', () => {
    const dir = tempStateDir();
    const { id } = newRecord(dir);
    writeFileSync(lockPath(dir, id), `${deadPid()} 1\n`);
    expect(updateState(id, { exitCode: 4 }, dir)?.state.exitCode).toBe(4);
    expect(readRecord(id, dir)?.state.exitCode).toBe(4);
    expect(existsSync(lockPath(dir, id))).toBe(false);
  });

  it('waits for a live holder, and finds the record gone if it was removed meanwhile', async () => {
    const dir = tempStateDir();
    const record = newRecord(dir);
    // A live process (this test's child) holds the lock while the record is removed.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], {
      stdio: 'ignore',
    });
    onTestFinished(() => {
      holder.kill('SIGKILL');
    });
    await withDeadline(
      new Promise((resolve) => holder.once('spawn', resolve)),
      10_000,
      'the holder',
    );
    const start = processStartTime(holder.pid!);
    expect(start).toBeDefined();
    writeFileSync(lockPath(dir, record.id), `${holder.pid} ${start}\n`);
    // The update waits on the holder: run it in a child, and remove the record under it.
    const src = buildForChild('registry/containers');
    const script = `
      const { updateState } = await import(${JSON.stringify(join(src, 'registry/containers.js'))});
      const [id, dir] = process.argv.slice(1);
      process.stdout.write(String(updateState(id, { exitCode: 9 }, dir) === undefined));
    `;
    const writer = spawn(process.execPath, ['--input-type=module', '-e', script, record.id, dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    onTestFinished(() => {
      if (writer.exitCode === null && writer.signalCode === null) writer.kill('SIGKILL');
    });
    let out = '';
    writer.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => writer.on('exit', resolve));
    // The writer waits on the live holder, its own claim written beside the lock, the record
    // unchanged.
    const claim = join(containersDir(dir), record.id, `lock.${writer.pid}.new`);
    await waitFor(
      () => existsSync(claim) || writer.exitCode !== null,
      'the writer to wait',
      20_000,
    );
    expect(writer.exitCode).toBe(null);
    expect(readRecord(record.id, dir)?.state.exitCode).toBe(undefined);
    // The holder removes the record (as rm does, under the lock) and dies.
    rmSync(join(containersDir(dir), record.id), {
      recursive: true,
      force: true,
      maxRetries: 5,
      retryDelay: 10,
    });
    holder.kill('SIGKILL');
    expect(await withDeadline(exited, 20_000, 'the waiting writer')).toBe(0);
    expect(out).toBe('true');
    expect(existsSync(join(containersDir(dir), record.id))).toBe(false);
  });

  it('removes a record with its lock and leaves nothing of it', () => {
    const dir = tempStateDir();
    const record = newRecord(dir);
    removeContainer(record, dir);
    expect(readdirSync(containersDir(dir))).toEqual([]);
    expect(updateState(record.id, { exitCode: 1 }, dir)).toBe(undefined);
    expect(readdirSync(containersDir(dir))).toEqual([]);
  });
});
