// In-process CLI runs for tests: main(argv, io, host) with captured stdout/stderr, a fake process
// host whose signals the test sends, and a private state directory. No child process needed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { onTestFinished } from 'vitest';
import type { CliHost, StopSignal } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';

/** Sink is a stream that keeps what is written, and can wait for text to appear. */
export interface Sink extends Writable {
  text(): string;
  /** until resolves once the text written so far satisfies `test`. */
  until(test: (text: string) => boolean): Promise<string>;
}

export function sink(): Sink {
  let text = '';
  const waiters: { test: (t: string) => boolean; resolve: (t: string) => void }[] = [];
  const w = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      text += String(chunk);
      for (const waiter of [...waiters]) {
        if (waiter.test(text)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(text);
        }
      }
      cb();
    },
  }) as Sink;
  w.text = () => text;
  w.until = (test) =>
    test(text) ? Promise.resolve(text) : new Promise((resolve) => waiters.push({ test, resolve }));
  return w;
}

/** FakeHost is a CliHost whose stop/reload signals the test sends; kill goes to `kills`. */
export interface FakeHost extends CliHost {
  stop(signal?: StopSignal): void;
  reload(): void;
  kills: [number, NodeJS.Signals | 0][];
}

export function fakeHost(): FakeHost {
  const stops = new Set<(s: StopSignal) => void>();
  const reloads = new Set<() => void>();
  const add = <T>(set: Set<T>, fn: T) => {
    set.add(fn);
    return () => void set.delete(fn);
  };
  const kills: [number, NodeJS.Signals | 0][] = [];
  return {
    onStop: (fn) => add(stops, fn),
    onReload: (fn) => add(reloads, fn),
    onExit: () => () => undefined,
    kill: (pid, signal) => {
      kills.push([pid, signal]);
      if (signal === 0) process.kill(pid, 0); // liveness checks ask the real system
    },
    kills,
    stop: (signal = 'SIGINT') => [...stops].forEach((fn) => fn(signal)),
    reload: () => [...reloads].forEach((fn) => fn()),
  };
}

export interface MainRun {
  code: Promise<number>;
  stdout: Sink;
  stderr: Sink;
  host: FakeHost;
}

/** startMain starts `portpub ...args` in-process; `code` resolves when main() returns. */
export function startMain(args: string[], host: FakeHost = fakeHost()): MainRun {
  const stdout = sink();
  const stderr = sink();
  const code = main(['node', 'portpub', ...args], { stdout, stderr }, host);
  return { code, stdout, stderr, host };
}

/** runMain runs a command that ends by itself and resolves its code and output. */
export async function runMain(
  args: string[],
  host?: FakeHost,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = startMain(args, host);
  const code = await run.code;
  return { code, stdout: run.stdout.text(), stderr: run.stderr.text() };
}

/** tempDir is a directory removed when the test ends. */
export function tempDir(prefix = 'portpub-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** useStateDir points the state directory (PORTPUB_STATE_DIR) at a fresh one for this test. */
export function useStateDir(): string {
  const dir = join(tempDir('portpub-state-'), 'portpub');
  const saved = process.env.PORTPUB_STATE_DIR;
  process.env.PORTPUB_STATE_DIR = dir;
  onTestFinished(() => {
    if (saved === undefined) delete process.env.PORTPUB_STATE_DIR;
    else process.env.PORTPUB_STATE_DIR = saved;
  });
  return dir;
}
