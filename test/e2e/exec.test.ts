// `portpub exec`, through the built CLI: a command in a running `run` service's namespaces (its
// loopback, hostname, /etc/hosts and PID namespace), with its variables and working directory;
// its exit status, signals and terminal are its own; what ends the service ends it; and what
// cannot be done is refused with Docker's words before anything runs.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { childrenOf, comm } from '../../src/netns/enter.js';
import { BIN, runCli, startCli } from '../helpers/cli.js';
import { AS_NOBODY, binForNobody, SETPRIV } from '../helpers/nobody.js';
import { needs } from '../helpers/udp.js';
import { waitFor, withDeadline } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';
import {
  killMarkedOnFinish,
  onTerminal,
  processesWith,
  record,
  requireNetns,
  requireScript,
  runEnv,
  service,
  type RunEnv,
} from '../fixtures/netns-run.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 30_000, { env: e.env });

/** IDLE is a service that says `up` and waits to be stopped. */
const IDLE = ['sh', '-c', 'echo up; while :; do sleep 0.1; done'];

/** CLIENT, for `node -e`: connects to argv host:port, sends `x`, prints the first answer. */
const CLIENT = `const c = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
c.on('data', (d) => { console.log(String(d)); c.destroy(); });
c.on('error', (err) => { console.log('error ' + err.code); process.exit(1); });
c.write('x');`;

/** started runs `run -d` with ARGS and waits until the service's log says `up`. */
async function started(e: RunEnv, name: string, args: string[], cwd?: string): Promise<void> {
  const r = await runCli(['run', '-d', '--name', name, ...args], 30_000, {
    env: e.env,
    ...(cwd !== undefined ? { cwd } : {}),
  });
  expect(r.code, r.stderr).toBe(0);
  await waitFor(
    async () => (await cli(e, 'logs', name)).stdout.includes('up'),
    `${name} to be up`,
    20_000,
  );
}

/** piped runs `exec FLAGS svc sh -c SCRIPT` with `hello` on its stdin; its stdout and status. */
async function piped(
  e: RunEnv,
  flags: string[],
  script: string,
): Promise<{ out: string; code: number | null }> {
  const child = spawn(process.execPath, [BIN, 'exec', ...flags, 'svc', 'sh', '-c', script], {
    env: { ...process.env, ...e.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  onTestFinished(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stdin.on('error', () => undefined); // without -i nobody reads it
  child.stdin.end('hello\n');
  const code = await withDeadline(
    new Promise<number | null>((resolve) => child.on('close', resolve)),
    20_000,
    `exec ${flags.join(' ')} to end`,
  );
  return { out, code };
}

describe('portpub exec', { timeout: 90_000 }, () => {
  it("runs in the service's network, hostname, hosts file and variables, in its directory", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    await started(e, 'db', ['--expose', '5432', '--', ...service('tcp=5432', 'tag=db')]);
    await started(e, 'web', [
      '--link',
      'db',
      '--hostname',
      'webhost',
      '-e',
      'GREETING=hi',
      '-w',
      '/tmp',
      '--',
      ...IDLE,
    ]);
    const who = await cli(
      e,
      'exec',
      'web',
      'sh',
      '-c',
      'echo "$GREETING|$(hostname)|$(pwd)|$DB_NAME"',
    );
    expect(who.stderr).toBe('');
    expect(who.stdout).toBe('hi|webhost|/tmp|/web/db\n');
    expect(who.code).toBe(0);
    // The link's name in the service's own /etc/hosts, and the service's own 127.0.0.1.
    const hosts = await cli(e, 'exec', 'web', 'getent', 'hosts', 'db');
    expect(hosts.stdout).toMatch(/^127\.\d+\.\d+\.\d+\s+db\b/);
    expect((await cli(e, 'exec', 'web', process.execPath, '-e', CLIENT, 'db', '5432')).stdout).toBe(
      'db:x\n',
    );
    expect(
      (await cli(e, 'exec', 'db', process.execPath, '-e', CLIENT, '127.0.0.1', '5432')).stdout,
    ).toBe('db:x\n');
    // -e and --env-file over the service's variables (a bare name unsets one), -w over its directory.
    const dir = mkdtempSync(join(tmpdir(), 'portpub-exec-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'env'), 'FROM_FILE=yes\n');
    const over = await cli(
      e,
      'exec',
      '-e',
      'GREETING=yo',
      '-e',
      'DB_NAME',
      '--env-file',
      join(dir, 'env'),
      '-w',
      '/',
      'web',
      'sh',
      '-c',
      'echo "$GREETING|${DB_NAME-unset}|$FROM_FILE|$(pwd)"',
    );
    expect(over.stdout).toBe('yo|unset|yes|/\n');
  });

  it('passes its exit status on; 127 and 126 with portpub’s line for what cannot run', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    await started(e, 'svc', ['--', ...IDLE]);
    expect((await cli(e, 'exec', 'svc', 'sh', '-c', 'exit 3')).code).toBe(3);
    // NAME -- COMMAND, as run's COMMAND is often written; the command's own `--` stays its own.
    const dashes = await cli(e, 'exec', 'svc', '--', 'sh', '-c', 'echo "$1"', 'sh', '--');
    expect(dashes.stdout).toBe('--\n');
    expect(dashes.code).toBe(0);
    const missing = await cli(e, 'exec', 'svc', 'no-such-command');
    expect(missing.code).toBe(127);
    expect(missing.stderr).toBe('portpub: no-such-command: command not found\n');
    const dir = mkdtempSync(join(tmpdir(), 'portpub-exec-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'not-executable');
    writeFileSync(file, '#!/bin/sh\necho ran\n');
    chmodSync(file, 0o644);
    const denied = await cli(e, 'exec', 'svc', file);
    expect(denied.code).toBe(126);
    expect(denied.stderr).toBe(`portpub: ${file}: permission denied\n`);
    // A relative path is the command's directory's (-w here), not exec's own.
    writeFileSync(join(dir, 'here.sh'), '#!/bin/sh\necho "here:$(pwd)"\n');
    chmodSync(join(dir, 'here.sh'), 0o755);
    const here = await runCli(['exec', '-w', dir, 'svc', './here.sh'], 30_000, {
      env: e.env,
      cwd: '/',
    });
    expect(here.stdout).toBe(`here:${dir}\n`);
  });

  it('relays signals to the command, and -t gives it a terminal of its own', async (ctx) => {
    requireNetns(ctx);
    requireScript(ctx);
    const e = runEnv();
    await started(e, 'svc', ['--', ...IDLE]);
    const tty = await cli(
      e,
      'exec',
      '-t',
      'svc',
      'sh',
      '-c',
      'for fd in 0 1; do test -t $fd && echo "$fd:tty"; done',
    );
    expect(tty.stdout).toBe('0:tty\r\n1:tty\r\n');
    // TERM=xterm with -t, as the daemon sets it, for exec and for run in a network of its own.
    expect((await cli(e, 'exec', '-t', 'svc', 'sh', '-c', 'echo "$TERM"')).stdout).toBe(
      'xterm\r\n',
    );
    expect((await cli(e, 'exec', 'svc', 'sh', '-c', 'echo "${TERM-unset}"')).stdout).toBe(
      'unset\n',
    );
    const run = await cli(e, 'run', '--rm', '-t', '--', 'sh', '-c', 'echo "$TERM"');
    expect(run.stdout).toBe('xterm\r\n');
    for (const t of [[], ['-t']]) {
      const trapper = `trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done`;
      const run = await startCli(['exec', ...t, 'svc', 'sh', '-c', trapper], 1, 30_000, {
        env: e.env,
      });
      run.child.kill('SIGTERM');
      const r = await withDeadline(run.exited, 20_000, 'exec to end after SIGTERM');
      expect(r.code, `${t.join(' ')} ${r.stderr}`).toBe(7);
    }
  });

  it("a signal reaches the command's children too; a second one kills it (137)", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    await started(e, 'svc', ['--', ...IDLE]);
    // sh waits for sleep: only a signal to the group ends both (a terminal's Ctrl-C would). It
    // goes once sleep runs: dash catches a SIGINT that comes before it forks, and then waits on.
    const marker = `waiter-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    const waiter = await startCli(
      ['exec', 'svc', 'sh', '-c', 'echo ready; sleep 60; :', marker],
      1,
      30_000,
      { env: e.env },
    );
    await waitFor(
      () => processesWith(marker).some((pid) => childrenOf(pid).some((c) => comm(c) === 'sleep')),
      'sleep to run under sh',
      20_000,
    );
    waiter.child.kill('SIGINT');
    expect((await withDeadline(waiter.exited, 20_000, 'exec to end after SIGINT')).code).toBe(130);
    const trapper = `trap 'echo term' TERM; echo ready; while :; do sleep 0.1; done`;
    const stubborn = await startCli(['exec', 'svc', 'sh', '-c', trapper], 1, 30_000, {
      env: e.env,
    });
    let out = stubborn.lines.join('\n');
    stubborn.child.stdout?.on('data', (d: string) => (out += d));
    stubborn.child.kill('SIGTERM');
    await waitFor(() => out.includes('term'), 'the first SIGTERM to be heard', 20_000);
    stubborn.child.kill('SIGTERM');
    expect((await withDeadline(stubborn.exited, 20_000, 'exec to end')).code).toBe(137);
  });

  it('-i passes stdin on; -it on a terminal reads what is typed', async (ctx) => {
    requireNetns(ctx);
    requireScript(ctx);
    const e = runEnv();
    await started(e, 'svc', ['--', ...IDLE]);
    expect(await piped(e, ['-i'], 'read l; echo "got:$l"')).toEqual({
      out: 'got:hello\n',
      code: 0,
    });
    // Without -i what portpub's stdin holds does not reach the command.
    expect(await piped(e, [], 'read l; echo "read:$?:$l"')).toEqual({ out: 'read:1:\n', code: 0 });
    const t = onTerminal(
      ['exec', '-it', 'svc', 'sh', '-c', 'echo ready; read l; echo "typed:$l"'],
      e,
    );
    await waitFor(() => t.output().includes('ready'), 'the command to start', 20_000);
    t.child.stdin.write('hello\r');
    await waitFor(() => t.output().includes('typed:hello'), 'the typed line to be read', 20_000);
    expect(await withDeadline(t.exited, 20_000, 'exec -it to end')).toBe(0);
  });

  it('-d leaves the command running in the service, and stopping the service ends it', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const marker = `exec-d-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    await started(e, 'svc', ['--', ...IDLE]);
    const dir = mkdtempSync(join(tmpdir(), 'portpub-exec-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const ran = join(dir, 'ran');
    const script = `echo $$ > '${ran}'; while :; do sleep 0.1; done`;
    const d = await cli(e, 'exec', '-d', 'svc', 'sh', '-c', script, marker);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toBe('');
    // Its pid in the service's PID namespace, which the service's own command holds as 1's child.
    await waitFor(
      () => existsSync(ran) && readFileSync(ran, 'utf8').endsWith('\n'),
      'it to run',
      10_000,
    );
    expect(Number(readFileSync(ran, 'utf8'))).toBeGreaterThan(1);
    expect((await cli(e, 'stop', 'svc')).code).toBe(0);
    // The PID namespace ended with the service, and so did everything in it.
    await waitFor(() => processesWith(marker).length === 0, 'the command to end', 10_000);
  });

  it('on a --network host service: the command on the host, with its variables', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    // No namespace ends these with their portpub (runEnv's cleanup SIGKILLs it): killed by mark.
    const marker = `exec-host-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(marker);
    await started(e, 'hostly', [
      '--network',
      'host',
      '-e',
      'GREETING=hi',
      '-w',
      '/tmp',
      '--',
      ...IDLE,
      marker,
    ]);
    const r = await cli(e, 'exec', 'hostly', 'sh', '-c', 'echo "$GREETING|$(pwd)"');
    expect(r.stdout).toBe('hi|/tmp\n');
    expect(r.code).toBe(0);
    // Without -w: the directory the service was started in, not the one exec is run from.
    const dir = mkdtempSync(join(tmpdir(), 'portpub-exec-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    await started(e, 'here', ['--network', 'host', '--', ...IDLE, marker], dir);
    const here = await runCli(['exec', 'here', 'pwd'], 30_000, { env: e.env, cwd: '/' });
    expect(here.stdout).toBe(`${dir}\n`);
    expect((await cli(e, 'stop', 'hostly', 'here')).code).toBe(0);
    await waitFor(() => processesWith(marker).length === 0, 'the services to end', 15_000);
  });

  it('on a --network host service, what exec started ends with the service, however it ends', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const base = `exec-host-end-${process.pid}-${Date.now()}`;
    killMarkedOnFinish(base);
    const dir = mkdtempSync(join(tmpdir(), 'portpub-exec-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const loop = 'while :; do sleep 0.1; done';
    const execs = async (name: string, tag: string) => {
      const d = await cli(e, 'exec', '-d', name, 'sh', '-c', loop, `${base}-${tag}-d`);
      expect(d.code, d.stderr).toBe(0);
      // In the foreground too: `portpub exec` waits for it, and says how it ended.
      const fg = cli(e, 'exec', name, 'sh', '-c', loop, `${base}-${tag}-fg`);
      await waitFor(
        () =>
          processesWith(`${base}-${tag}-d`).length > 0 &&
          processesWith(`${base}-${tag}-fg`).length > 1,
        `${tag}: both execs running`,
        10_000,
      );
      return { fg };
    };
    const ended = (tag: string) =>
      waitFor(
        () => processesWith(`${base}-${tag}-`).length === 0,
        `${tag}: the execs ended`,
        10_000,
      );

    // Stopped: SIGTERM, the portpub ends its command, then what exec started.
    await started(e, 'hstop', ['--network', 'host', '--', ...IDLE, `${base}-svc`]);
    const { fg: stopFg } = await execs('hstop', 'stop');
    expect((await cli(e, 'stop', 'hstop')).code).toBe(0);
    await ended('stop');
    expect((await stopFg).code).toBe(137);

    // Its command ended by itself.
    const flag = join(dir, 'end');
    const until = `echo up; while [ ! -e '${flag}' ]; do sleep 0.1; done`;
    await started(e, 'hself', ['--network', 'host', '--', 'sh', '-c', until, `${base}-svc`]);
    const { fg: selfFg } = await execs('hself', 'self');
    writeFileSync(flag, '');
    await waitFor(() => record(e.dir, 'hself').state.status === 'exited', 'hself to end', 10_000);
    await ended('self');
    expect((await selfFg).code).toBe(137);

    // Its portpub SIGKILLed: nothing is left to end them but stop.
    await started(e, 'hkill', ['--network', 'host', '--', ...IDLE, `${base}-svc`]);
    const { fg: killFg } = await execs('hkill', 'kill');
    process.kill(record(e.dir, 'hkill').state.pid!, 'SIGKILL');
    expect((await cli(e, 'stop', 'hkill')).code).toBe(0);
    await ended('kill');
    expect((await killFg).code).toBe(137);
    await waitFor(() => processesWith(base).length === 0, 'the services to end', 10_000);
  });

  it.for([
    { as: 'nobody', uidMap: '0 65534 1' },
    { as: 'root, PORTPUB_USERNS=always', uidMap: '0 0 1' },
  ])('enters a user namespace of its own too, as $as: root inside', async ({ as, uidMap }, ctx) => {
    requireNetns(ctx);
    const nobody = as === 'nobody';
    needs(ctx, [
      nobody && process.getuid?.() !== 0 && 'root, to become nobody',
      nobody && !existsSync(SETPRIV) && `setpriv (${SETPRIV}, util-linux)`,
    ]);
    const e = runEnv();
    let argv0 = [process.execPath, BIN];
    let env: Record<string, string> = { ...e.env, PORTPUB_USERNS: 'always' };
    if (nobody) {
      const probe = spawnSync(SETPRIV, [...AS_NOBODY, 'unshare', '--user', 'true']);
      needs(ctx, [probe.status !== 0 && 'unprivileged user namespaces (unshare --user as nobody)']);
      chownSync(e.env.XDG_RUNTIME_DIR!, 65534, 65534);
      argv0 = [SETPRIV, ...AS_NOBODY, process.execPath, binForNobody()];
      env = { ...e.env, PORTPUB_USERNS: 'auto' };
    }
    const as0 = (...args: string[]) => runCli(args, 30_000, { env, argv0 });
    const d = await as0('run', '-d', '--name', 'userns', '--', ...IDLE);
    expect(d.code, d.stderr).toBe(0);
    const r = await as0('exec', 'userns', 'sh', '-c', 'id -u; cat /proc/self/uid_map; hostname');
    expect(r.stderr).toBe('');
    const [uid, map, host] = r.stdout.trim().split('\n');
    expect(uid).toBe('0');
    expect(map!.trim().split(/\s+/).join(' ')).toBe(uidMap);
    expect(host).toBe(record(e.dir, 'userns').id.slice(0, 12));
    expect((await as0('stop', 'userns')).code).toBe(0);
  });

  it("refuses what it cannot do, with Docker's words: exit 1, or 2 for a bad flag", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const missing = await cli(e, 'exec', 'nope', 'true');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('No such container: nope');
    await started(e, 'brief', ['--', ...IDLE]);
    const id = record(e.dir, 'brief').id;
    expect((await cli(e, 'stop', 'brief')).code).toBe(0);
    const stopped = await cli(e, 'exec', 'brief', 'true');
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain(`container ${id} is not running`);
    const port = await reservePorts(1);
    const plain = await cli(e, '-d', '--name', 'plain', '-p', `127.0.0.1:${port}:80`);
    expect(plain.code, plain.stderr).toBe(0);
    const ports = await cli(e, 'exec', 'plain', 'true');
    expect(ports.code).toBe(1);
    expect(ports.stderr).toContain('plain publishes ports only (portpub -d): it runs no command');
    const relative = await cli(e, 'exec', '-w', 'tmp', 'plain', 'true');
    expect(relative.code).toBe(2);
    expect(relative.stderr).toContain(
      "the working directory 'tmp' is invalid, it needs to be an absolute path",
    );
    const noTty = await cli(e, 'exec', '-it', 'plain', 'true');
    expect(noTty.code).toBe(1);
    expect(noTty.stderr).toContain('the input device is not a TTY');
    for (const args of [['plain'], ['plain', '--']]) {
      const usage = await cli(e, 'exec', ...args);
      expect(usage.code, args.join(' ')).toBe(2);
      expect(usage.stderr).toMatch(/argument/);
    }
  });
});
