// How a `portpub run` service hears signals, through the built CLI: one Ctrl-C on a terminal is one
// SIGINT for the command (as under docker run), with or without -i.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { waitFor, withDeadline } from '../helpers/net.js';
import { needs } from '../helpers/udp.js';
import { records, requireNetns, runEnv } from '../fixtures/netns-run.js';

const SCRIPT = '/usr/bin/script';

/**
 * COUNTER counts the SIGINTs it gets; the first starts a 1 s exit, time for a second one sent for
 * the same Ctrl-C (the defect: the terminal's and portpub's own) to arrive, and it prints the count.
 */
const COUNTER = `
let n = 0;
process.on('SIGINT', () => {
  n++;
  if (n === 1) setTimeout(() => { console.log('SIGINTS ' + n); process.exit(0); }, 1000);
});
console.log('up');
setInterval(() => {}, 1000);
`;

describe('portpub run: signals', { timeout: 90_000 }, () => {
  it.for([[], ['-i']])(
    'one Ctrl-C on a terminal is one SIGINT for the command (%j)',
    async (extra, ctx) => {
      requireNetns(ctx);
      needs(ctx, [!existsSync(SCRIPT) && `script (${SCRIPT}, util-linux)`]);
      const e = runEnv();
      const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
      const cmd = [process.execPath, BIN, 'run', ...extra, '--name', 'tty', '--']
        .concat([process.execPath, '-e', COUNTER])
        .map(quote)
        .join(' ');
      // script(1) puts portpub on a pseudo-terminal, as the foreground process group; a \x03
      // written to it is the terminal's Ctrl-C.
      const child = spawn(SCRIPT, ['-qfec', `exec ${cmd}`, '/dev/null'], {
        env: { ...process.env, ...e.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      onTestFinished(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      // The service runs and portpub listens for signals once its record says running.
      await waitFor(
        () => out.includes('up') && records(e.dir)[0]?.state.status === 'running',
        'the service to run',
        20_000,
      );
      child.stdin.write('\x03');
      await waitFor(() => out.includes('SIGINTS'), 'the command to count its signals', 20_000);
      expect(out).toMatch(/SIGINTS 1\r?\n/);
      child.stdin.end();
      expect(await withDeadline(exited, 20_000, 'portpub to exit')).toBe(0);
    },
  );
});
