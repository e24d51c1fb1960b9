// Runs the built CLI (bin/portpub.js -> dist/) as a child process, with hard deadlines and cleanup.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { withDeadline } from './net.js';

/** withTimeout: see withDeadline in ./net.ts. */
export const withTimeout = withDeadline;

export const BIN = fileURLToPath(new URL('../../bin/portpub.js', import.meta.url));

/** SpawnOpts: extra environment (merged over this process's) and working directory. */
export interface SpawnOpts {
  env?: Record<string, string>;
  cwd?: string;
  /** What runs the CLI's arguments instead of node and BIN (the same behind setpriv, say). */
  argv0?: readonly string[];
}

function spawnEnv(opts: SpawnOpts): { env: NodeJS.ProcessEnv; cwd?: string } {
  return { env: { ...process.env, ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawned is a portpub child process with its output so far and its end. */
export interface Spawned {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once it has exited and its output is read. */
  exited: Promise<CliResult>;
}

/** spawnCli starts the CLI with its output collected; it is SIGKILLed in cleanup if still there. */
export function spawnCli(args: string[], opts: SpawnOpts = {}): Spawned {
  const [program, ...first] = opts.argv0 ?? [process.execPath, BIN];
  const child = spawn(program!, [...first, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...spawnEnv(opts),
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  // Handled here too, so that a caller that never waits for the end meets no unhandled rejection.
  exited.catch(() => undefined);
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** runCli runs a command that is expected to exit by itself within timeoutMs. */
export function runCli(
  args: string[],
  timeoutMs = 15_000,
  opts: SpawnOpts = {},
): Promise<CliResult> {
  const run = spawnCli(args, opts);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      run.child.kill('SIGKILL');
      reject(
        new Error(`portpub ${args.join(' ')} did not exit within ${timeoutMs} ms\n${run.stderr()}`),
      );
    }, timeoutMs);
    run.exited.then(
      (r) => {
        clearTimeout(timer);
        resolve(r);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Running is a long-lived portpub: its first stdout lines, and ways to stop it. */
export interface Running {
  child: ChildProcess;
  /** The docker-port lines (or JSON document) printed once everything was bound. */
  lines: string[];
  stderr(): string;
  /** Sends a signal and resolves the exit result. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<CliResult>;
  exited: Promise<CliResult>;
}

/**
 * startCli starts portpub and resolves once it has printed `expectLines` stdout lines (its
 * mappings), or rejects if it exits or the deadline passes first. Killed in cleanup.
 */
export function startCli(
  args: string[],
  expectLines: number,
  timeoutMs = 15_000,
  opts: SpawnOpts = {},
): Promise<Running> {
  const run = spawnCli(args, opts);
  const { child, exited } = run;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new Error(`portpub did not print ${expectLines} lines in ${timeoutMs} ms\n${run.stderr()}`),
      );
    }, timeoutMs);
    exited.then(
      (r) => {
        clearTimeout(timer);
        reject(new Error(`portpub exited early (${r.code ?? r.signal})\n${r.stdout}\n${r.stderr}`));
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
    // After spawnCli's own listener: run.stdout() already holds this chunk.
    child.stdout!.on('data', () => {
      const stdout = run.stdout();
      const lines = stdout.split('\n').filter((l) => l !== '');
      if (lines.length >= expectLines && stdout.endsWith('\n')) {
        clearTimeout(timer);
        resolve({
          child,
          lines,
          stderr: () => run.stderr(),
          exited,
          stop: (signal = 'SIGTERM', ms = 15_000) => {
            child.kill(signal);
            return withDeadline(exited, ms, `portpub to exit after ${signal}`);
          },
        });
      }
    });
  });
}

/** parsePortLine reads `80/tcp -> 127.0.0.1:49153` into its parts. */
export function parsePortLine(line: string): { target: string; host: string; port: number } {
  const m = /^(\S+) -> (.+):(\d+)$/.exec(line);
  if (!m) throw new Error(`not a docker port line: ${line}`);
  return { target: m[1]!, host: m[2]!, port: Number(m[3]) };
}
