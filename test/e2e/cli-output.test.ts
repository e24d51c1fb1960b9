// Issue 11 defect 3: output over 64 KiB reaches a pipe, a file and a slow reader whole. The
// built CLI used to call process.exit() while a pipe still had part of stdout queued.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Binding } from '../../src/docker/report.js';
import { writeState } from '../../src/registry/state.js';
import { BIN, withTimeout } from '../helpers/cli.js';

// To a target that is no address of this host: 127.0.0.1:N to 127.0.0.1:N would be a self-loop,
// which a dry run warns about on stderr (issue 13), and this test is about stdout alone.
const BIG = ['--dry-run', '--json', '-p', '127.0.0.1:1-2000:1-2000', '-t', '192.0.2.1'];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-out-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** inProcess is what main() writes for argv: the bytes the built CLI must deliver. */
async function inProcess(args: string[], env: Record<string, string> = {}): Promise<string> {
  let out = '';
  const stdout = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  const saved = { ...process.env };
  Object.assign(process.env, env);
  onTestFinished(() => {
    process.env = saved;
  });
  const code = await main(['node', 'portpub', ...args], { stdout, stderr: new Writable() });
  expect(code).toBe(0);
  return out;
}

/**
 * readThroughPipe runs the CLI with stdout on a real kernel pipe (a FIFO: 64 KiB of buffer, as in
 * `portpub ... | wc -c`; Node's own `stdio: 'pipe'` is a socketpair with a far larger buffer)
 * and reads it to the end, at once or 1 KiB per event-loop turn (a slow reader).
 */
async function readThroughPipe(
  args: string[],
  how: 'fast' | 'slow',
  env: Record<string, string> = {},
): Promise<string> {
  const fifo = join(tempDir(), 'stdout');
  execFileSync('mkfifo', [fifo]);
  // Open the read end first (non-blocking), so opening the write end does not wait.
  const reader = new Socket({
    fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK),
    readable: true,
    writable: false,
  });
  onTestFinished(() => void reader.destroy());
  const writeEnd = openSync(fifo, constants.O_WRONLY);
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', writeEnd, 'ignore'],
    env: { ...process.env, ...env },
  });
  closeSync(writeEnd);
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const chunks: Buffer[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    reader.on('end', resolve);
    reader.on('error', reject);
  });
  if (how === 'fast') reader.on('data', (c: Buffer) => chunks.push(c));
  else {
    let done = false;
    void ended.finally(() => (done = true));
    reader.on('readable', () => undefined);
    const readSome = (): void => {
      // read(n) with fewer than n bytes buffered waits for more, so never ask past what is there.
      const buffered = reader.readableLength;
      if (buffered > 0) chunks.push(reader.read(Math.min(1024, buffered)) as Buffer);
      else reader.read(0); // ask for more (and notice the end)
      if (!done) setImmediate(readSome);
    };
    readSome();
  }
  const code = new Promise<number | null>((resolve) => child.on('close', resolve));
  await withTimeout(ended, 20_000, `end of portpub ${args.join(' ')} output`);
  expect(await withTimeout(code, 20_000, 'portpub to exit')).toBe(0);
  return Buffer.concat(chunks).toString('utf8');
}

describe('large output is delivered whole (issue 11 defect 3)', () => {
  it('--dry-run --json of 2,000 mappings into a pipe: every byte, valid JSON', async () => {
    const expected = await inProcess(BIG);
    expect(expected.length).toBeGreaterThan(128 * 1024);
    for (let i = 0; i < 3; i++) {
      const got = await readThroughPipe(BIG, 'fast');
      expect(got.length).toBe(expected.length);
      expect(got === expected, 'same bytes').toBe(true);
    }
  });

  it('into a slow reader', async () => {
    const expected = await inProcess(BIG);
    const got = await readThroughPipe(BIG, 'slow');
    expect(got.length).toBe(expected.length);
    expect(JSON.parse(got)).toEqual(JSON.parse(expected));
  });

  it('into a file', async () => {
    const expected = await inProcess(BIG);
    const path = join(tempDir(), 'out.json');
    const fd = openSync(path, 'w');
    const child = spawn(process.execPath, [BIN, ...BIG], { stdio: ['ignore', fd, 'ignore'] });
    closeSync(fd);
    onTestFinished(() => void child.kill('SIGKILL'));
    const code = await withTimeout(
      new Promise<number | null>((resolve) => child.on('close', resolve)),
      20_000,
      'portpub to exit',
    );
    expect(code).toBe(0);
    const got = readFileSync(path, 'utf8');
    expect(got.length).toBe(expected.length);
    expect(got === expected, 'same bytes').toBe(true);
  });

  it('portpub port --json with 2,000 bindings into a slow reader: valid JSON', async () => {
    // A state file for this (live) test process stands in for a running portpub.
    const runtime = tempDir();
    const bindings: Binding[] = Array.from({ length: 2000 }, (_, i) => ({
      hostIp: '127.0.0.1',
      hostPort: 20_000 + i,
      targetHost: '127.0.0.1',
      targetPort: 1 + i,
      protocol: 'tcp',
    }));
    writeState(join(runtime, 'portpub'), {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      name: 'big',
      bindings,
    });
    const env = { XDG_RUNTIME_DIR: runtime };
    const expected = await inProcess(['port', 'big', '--json'], env);
    expect(expected.length).toBeGreaterThan(64 * 1024);
    const got = await readThroughPipe(['port', 'big', '--json'], 'slow', env);
    expect(got.length).toBe(expected.length);
    expect(got === expected, 'same bytes').toBe(true);
    expect(Object.keys(JSON.parse(got) as object)).toHaveLength(2000);
  });
});
