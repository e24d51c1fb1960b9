// `-d/--detach` for every serving command: the foreground half starts this same CLI in the
// background on a container record (src/registry/containers.ts), its output to the record's log,
// and returns once the background half says it serves (or why it could not). `portpub run -d`,
// plain `portpub -d -p ...` and `portpub up -d` all go through spawnBackground; the background
// halves of serve and up use backgroundContext to report readiness and record their end.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { EXIT_RUNTIME } from '../errors.js';
import type { PortMapping } from '../docker/spec.js';
import {
  containerPath,
  createContainer,
  newId,
  markRunning,
  readRecord,
  removeContainer,
  updateState,
  type ContainerRecord,
} from '../registry/containers.js';
import { readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

/** Started is the outcome of spawnBackground: the code to exit with (0: it serves). */
export type Started = { ok: true } | { ok: false; code: number };

/**
 * spawnBackground runs `portpub ARGS...` detached, stdout and stderr to the record's log, and
 * waits for its IPC word: 'running' (it serves) or 'failed', or its exit. A failure is printed to
 * ctx.io.stderr as the foreground command would have printed it (the background's message, else
 * its last `portpub:` line), and a --rm record is removed.
 */
export async function spawnBackground(
  id: string,
  args: readonly string[],
  ctx: CliContext,
  dir: string = stateDir(),
): Promise<Started> {
  const bin = fileURLToPath(new URL('../../bin/portpub.js', import.meta.url));
  const log = openSync(containerPath(id, 'log', dir), 'a', 0o600);
  const child = spawn(process.execPath, [bin, ...args], {
    detached: true,
    stdio: ['ignore', log, log, 'ipc'],
  });
  closeSync(log);
  type Outcome = { ok: true } | { ok: false; code: number; message?: string };
  const outcome = await new Promise<Outcome>((resolve) => {
    child.on('message', (m: { t?: string; code?: number; message?: string }) => {
      if (m.t === 'running') resolve({ ok: true });
      if (m.t === 'failed') {
        const message = m.message !== undefined ? { message: m.message } : {};
        resolve({ ok: false, code: m.code ?? EXIT_RUNTIME, ...message });
      }
    });
    child.once('exit', (code) => resolve({ ok: false, code: code ?? EXIT_RUNTIME }));
    child.once('error', () => resolve({ ok: false, code: EXIT_RUNTIME }));
  });
  if (child.connected) child.disconnect();
  child.unref();
  if (outcome.ok) return outcome;
  // Its reason, as `docker run -d` prints the daemon's error: its message, else its log.
  const logged = safeRead(containerPath(id, 'log', dir))
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('portpub:'))
    .at(-1);
  const why = outcome.message !== undefined ? `portpub: ${outcome.message}` : logged;
  ctx.io.stderr.write(
    `${why ?? `portpub: the service did not start (see portpub logs ${id.slice(0, 12)})`}\n`,
  );
  const record = readRecord(id, dir);
  if (record?.autoRemove) removeContainer(record, dir);
  return { ok: false, code: outcome.code };
}

/** HostService names what a host-network background portpub (`-d`, `up -d`) serves. */
export type HostService = Pick<ContainerRecord, 'kind' | 'name'> &
  Partial<Pick<ContainerRecord, 'project' | 'services'>> & { publish: PortMapping[] };

/**
 * startDetached is the foreground half of `portpub -d -p ...` and `portpub up -d`: a record for
 * the service, then this same command line plus `--from-record ID` in the background. Returns
 * the record's id once it serves, or the exit code; a record that never served is removed (its
 * log said why, on stderr), so it holds no name.
 */
export async function startDetached(
  service: HostService,
  cmd: Command,
  ctx: CliContext,
  dir: string,
): Promise<{ id: string } | { code: number }> {
  const id = newId();
  const args = userArgs(cmd);
  createContainer(
    {
      ...service,
      id,
      command: 'portpub',
      args,
      created: new Date().toISOString(),
      network: 'host',
      env: [],
      userEnv: [],
      exposed: [],
      links: [],
      ip: '',
      detach: true,
      autoRemove: false,
      interactive: false,
      serve: {},
    },
    dir,
  );
  const started = await spawnBackground(id, [...args, '--from-record', id], ctx, dir);
  if (started.ok) return { id };
  const record = readRecord(id, dir);
  if (record) removeContainer(record, dir);
  return { code: started.code };
}

/**
 * userArgs is the command line as typed (without `node portpub`), read from the root command:
 * the background half parses the very same words, in the same directory and environment, so it
 * serves exactly what the foreground would have served.
 */
export function userArgs(cmd: Command): string[] {
  let root = cmd;
  while (root.parent) root = root.parent;
  // commander keeps the argv it parsed in rawArgs (not in its typings).
  return (root as unknown as { rawArgs: string[] }).rawArgs.slice(2);
}

/** Background is the background half of serve/up -d: its context, and how to record its end. */
export interface Background {
  ctx: CliContext;
  /** finish records the exit code (the process is about to end). */
  finish(code: number): void;
}

/**
 * backgroundContext wraps ctx for the background half of `portpub -d` / `up -d`: serve() prints
 * the bindings only once every port is bound, its state file is written and its signal handlers
 * are in (serving.ts), so that first write to stdout is the moment the service runs. Then the
 * record gets the pid and bindings, and the foreground its 'running'.
 */
export function backgroundContext(record: ContainerRecord, ctx: CliContext): Background {
  const dir = stateDir();
  let ready = false;
  const onReady = () => {
    if (ready) return;
    ready = true;
    const state = readStates(dir).find((s) => s.pid === process.pid);
    markRunning(record.id, state?.bindings ?? [], dir);
    if (!process.send || !process.connected) return;
    process.send({ t: 'running' }, undefined, {}, () => {
      if (process.connected) process.disconnect();
    });
  };
  const out = ctx.io.stdout;
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out.write(chunk, () => done());
      onReady();
    },
  });
  return {
    ctx: { ...ctx, io: { stdout, stderr: ctx.io.stderr } },
    finish: (code) => {
      updateState(
        record.id,
        { status: 'exited', exitCode: code, finishedAt: new Date().toISOString(), bindings: [] },
        dir,
      );
    },
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
