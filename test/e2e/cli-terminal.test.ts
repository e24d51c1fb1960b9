// Issue 13 item 6 on a terminal: a bind error is printed once (the `portpub:` line, no log line
// repeating it), and in `up` it names its service. script(1) gives portpub a pseudo-terminal, so
// stderr is a TTY and the logs are pretty, as a newcomer sees them.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { withDeadline } from '../helpers/net.js';
import { needs } from '../helpers/udp.js';

const SCRIPT = '/usr/bin/script';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-tty-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** busyPort holds a loopback port, so that publishing it fails with EADDRINUSE. */
function busyPort(): Promise<number> {
  const server: Server = createServer();
  onTestFinished(() => void server.close());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

/** onTerminal runs portpub on a pseudo-terminal and resolves its exit code and all it wrote. */
async function onTerminal(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // -e: script exits with the command's code; -q: no "Script started" lines; -f: flush each write.
  const child = spawn(SCRIPT, ['-qfec', `exec ${process.execPath} ${BIN} ${quoted}`, '/dev/null'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await withDeadline(
    new Promise<number | null>((resolve) => child.on('close', resolve)),
    20_000,
    `portpub ${args.join(' ')} on a terminal to exit`,
  );
  return { code, out };
}

describe('bind errors on a terminal', () => {
  it('portpub -p: printed once, exit 1', async (t) => {
    needs(t, [!existsSync(SCRIPT) && `script (${SCRIPT}, util-linux)`]);
    const port = await busyPort();
    const dir = tempDir();
    const r = await onTerminal(['-p', `127.0.0.1:${port}:80`, '-t', '127.0.0.2'], {
      PORTPUB_STATE_DIR: join(dir, 'state'),
    });
    expect(r.code).toBe(1);
    const message = `failed to bind host port 127.0.0.1:${port}/tcp: address already in use`;
    expect(r.out).toContain(`portpub: ${message}`);
    expect(r.out.split(message).length - 1, r.out).toBe(1);
  });

  it('portpub up: printed once, naming the service, exit 1', async (t) => {
    needs(t, [!existsSync(SCRIPT) && `script (${SCRIPT}, util-linux)`]);
    const port = await busyPort();
    const dir = tempDir();
    const file = join(dir, 'compose.yaml');
    writeFileSync(
      file,
      `services:\n  web:\n    target: 127.0.0.2\n    ports: ["127.0.0.1:${port}:80"]\n`,
    );
    const r = await onTerminal(['up', '-f', file], { PORTPUB_STATE_DIR: join(dir, 'state') });
    expect(r.code).toBe(1);
    const message = `web: failed to bind host port 127.0.0.1:${port}/tcp: address already in use`;
    expect(r.out).toContain(`portpub: ${message}`);
    expect(r.out.split(`host port 127.0.0.1:${port}/tcp`).length - 1, r.out).toBe(1);
  });

  it('portpub up with an sctp port: printed once, exit 1', async (t) => {
    needs(t, [!existsSync(SCRIPT) && `script (${SCRIPT}, util-linux)`]);
    const dir = tempDir();
    const file = join(dir, 'compose.yaml');
    writeFileSync(file, 'services:\n  sig:\n    ports: ["127.0.0.1::2905/sctp"]\n');
    const r = await onTerminal(['up', '-f', file], { PORTPUB_STATE_DIR: join(dir, 'state') });
    expect(r.code).toBe(1);
    expect(r.out).toContain('portpub: sig: cannot publish 127.0.0.1::2905/sctp: sctp is');
    expect(r.out.split('Node.js has no SCTP sockets').length - 1, r.out).toBe(1);
  });
});
