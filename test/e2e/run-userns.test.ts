// `portpub run` through the built CLI in a user namespace of its own: as `nobody` (the path every
// unprivileged user takes) and as root with PORTPUB_USERNS=always (CI runs as root, where portpub
// needs no user namespace and so would never take this path). -p N:N, traffic, the hostname, lo.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN, type CliResult, type Running } from '../helpers/cli.js';
import { withDeadline } from '../helpers/net.js';
import { AS_NOBODY, binForNobody, SETPRIV } from '../helpers/nobody.js';
import { needs } from '../helpers/udp.js';
import { exchange, record, refused, requireNetns, runEnv } from '../fixtures/netns-run.js';

/**
 * SERVICE prints its hostname, `lo` as ip(8) shows it and its uid_map (so which user namespace it
 * is in), then answers each TCP connection on argv[1] with `ns:` + what it reads, and prints `up`.
 */
const SERVICE = `
const { execFileSync } = require('node:child_process');
const port = Number(process.argv[1]);
console.log('hostname ' + require('node:os').hostname());
console.log(execFileSync('ip', ['-o', 'link', 'show', 'lo'], { encoding: 'utf8' }).split('\\\\')[0].trim());
console.log('uid_map ' + require('node:fs').readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\\s+/).join(' '));
require('node:net')
  .createServer((c) => { c.on('error', () => {}); c.on('data', (d) => c.write('ns:' + d)); })
  .listen(port, '127.0.0.1', () => console.log('up'));
process.on('SIGTERM', () => process.exit(0));
`;

const MODES = [
  { as: 'nobody', uidMap: 'uid_map 0 65534 1' },
  { as: 'root, PORTPUB_USERNS=always', uidMap: 'uid_map 0 0 1' },
];

describe('portpub run in a user namespace', { timeout: 90_000 }, () => {
  it.for(MODES)('publishes -p N:N as $as', async ({ as, uidMap }, ctx) => {
    requireNetns(ctx);
    const root = process.getuid?.() === 0;
    needs(ctx, [
      as === 'nobody' && !root && 'root, to become nobody',
      as === 'nobody' && !existsSync(SETPRIV) && `setpriv (${SETPRIV}, util-linux)`,
    ]);
    const e = runEnv();
    let argv0: string[] = [process.execPath, BIN];
    let env = { ...e.env, PORTPUB_USERNS: 'always' };
    if (as === 'nobody') {
      // nobody's own state directory (XDG_RUNTIME_DIR), and a CLI it can read.
      chownSync(e.env.XDG_RUNTIME_DIR!, 65534, 65534);
      argv0 = [SETPRIV, ...AS_NOBODY, process.execPath, binForNobody()];
      env = { ...e.env, PORTPUB_USERNS: 'auto' };
      const probe = spawnSync(SETPRIV, [...AS_NOBODY, 'unshare', '--user', 'true']);
      needs(ctx, [probe.status !== 0 && 'unprivileged user namespaces (unshare --user as nobody)']);
    }
    let run: Running | undefined;
    let port = 0;
    // As in run-netns.test.ts: N outside the ephemeral range, free on the host, tried in turn.
    for (let i = 0; i < 8 && !run; i++) {
      port = 21_000 + ((process.pid * 13 + i * 997) % 9_000);
      if (!(await refused(port))) continue;
      try {
        run = await startRaw(argv0, port, env);
      } catch (err) {
        if (!String(err).includes('address already in use')) throw err;
      }
    }
    expect(run, 'no free port found for -p N:N').toBeDefined();
    const short = record(e.dir, 'userns').id.slice(0, 12);
    expect(run!.lines).toEqual([
      `hostname ${short}`,
      expect.stringMatching(/^1: lo: <LOOPBACK,UP,LOWER_UP> .* state UNKNOWN /),
      uidMap,
      'up',
    ]);
    expect(await exchange(port, 'hi')).toBe('ns:hi');
    expect((await run!.stop('SIGTERM')).code).toBe(0);
    expect(await refused(port)).toBe(true);
  });
});

/**
 * startRaw runs `ARGV0... run --name userns -p N:N -- SERVICE N` (ARGV0 is node and the CLI, maybe
 * behind setpriv) and resolves once the service has printed its four lines; killed in cleanup.
 */
function startRaw(argv0: string[], port: number, env: Record<string, string>): Promise<Running> {
  const args = ['run', '--name', 'userns', '-p', `127.0.0.1:${port}:${port}`, '--'];
  const child = spawn(
    argv0[0]!,
    [...argv0.slice(1), ...args, process.execPath, '-e', SERVICE, `${port}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    },
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no service lines in 20 s\n${stderr}`)),
      20_000,
    );
    void exited.then((r) => {
      clearTimeout(timer);
      reject(new Error(`portpub exited early (${r.code ?? r.signal})\n${r.stdout}\n${r.stderr}`));
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const lines = stdout.split('\n').filter((l) => l !== '');
      if (lines.length < 4 || !stdout.endsWith('\n')) return;
      clearTimeout(timer);
      resolve({
        child,
        lines,
        stderr: () => stderr,
        exited,
        stop: (signal = 'SIGTERM', ms = 15_000) => {
          // setpriv execs: the child is portpub itself.
          child.kill(signal);
          return withDeadline(exited, ms, `portpub to exit after ${signal}`);
        },
      });
    });
  });
}
