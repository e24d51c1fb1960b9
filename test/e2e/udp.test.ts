// End to end through the built CLI (bin/portpub.js -> dist/): a real DNS server (dnsmasq) as the
// target and a real DNS client (dig) talking to it through portpub's UDP forwarding.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import { BIN, parsePortLine, startCli } from '../helpers/cli.js';
import { needs, waitFor } from '../helpers/udp.js';
import { freePort } from '../helpers/net.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const ANSWER = '10.1.2.3';

function hasCommand(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { timeout: 5_000, stdio: 'ignore' }).status === 0;
}

const tools = {
  dnsmasq: existsSync(DNSMASQ) && hasCommand(DNSMASQ, ['--version']),
  dig: hasCommand('dig', ['-v']),
  // dist/cli.js is built by `npm run build`, which `npm test` runs first.
  cli: existsSync(new URL('../../dist/cli/main.js', import.meta.url)),
};

/** needTools skips (or under CI=true fails) a test when a tool is missing. */
function needTools(ctx: TestContext): void {
  needs(ctx, [
    !tools.dnsmasq && 'dnsmasq (apt-get install dnsmasq-base)',
    !tools.dig && 'dig (apt-get install bind9-dnsutils)',
    !tools.cli && 'dist/cli.js (npm run build)',
  ]);
}

/** freeUdpPort returns a port nothing on 127.0.0.1 uses, from this worker's block (for a child to bind). */
function freeUdpPort(): Promise<number> {
  return freePort();
}

interface Dig {
  code: number | null;
  answer: string;
}

/** dig runs one query with dig's own 2 s deadline, plus a hard kill after 10 s. */
function dig(server: string, port: number, name: string, extra: string[] = []): Promise<Dig> {
  return new Promise((resolve, reject) => {
    const args = [
      `@${server}`,
      '-p',
      String(port),
      name,
      '+short',
      '+time=2',
      '+tries=1',
      ...extra,
    ];
    execFile('dig', args, { timeout: 10_000 }, (err, stdout) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      if (err && err.killed) reject(new Error(`dig ${args.join(' ')} hung`));
      else resolve({ code, answer: stdout.trim() });
    });
  });
}

/**
 * startDnsmasq runs dnsmasq in the foreground on 127.0.0.1:port with fixed records, and resolves
 * once it answers. It is killed when the test ends.
 */
async function startDnsmasq(port: number): Promise<void> {
  const child = spawn(
    DNSMASQ,
    [
      '--no-daemon',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--pid-file=',
      '--user=root',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      `--address=/portpub.test/${ANSWER}`,
      '--host-record=both.portpub.test,10.1.2.4,fd00::1:4',
      '--log-facility=-',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`dnsmasq exited (${code}):\n${stderr}`))),
  );
  exited.catch(() => undefined);
  for (let i = 0; i < 10; i++) {
    const r = await Promise.race([dig('127.0.0.1', port, 'portpub.test'), exited]);
    if (r.answer === ANSWER) return;
  }
  throw new Error(`dnsmasq on port ${port} never answered:\n${stderr}`);
}

/** logLines parses portpub's JSON log lines. */
function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe(`portpub UDP end to end (${BIN})`, () => {
  it('answers DNS queries through portpub, over IPv4 and from an IPv6 client', async (ctx) => {
    needTools(ctx);
    const dnsPort = await freeUdpPort();
    await startDnsmasq(dnsPort);
    const run = await startCli(
      [
        '-p',
        `127.0.0.1::${dnsPort}/udp`,
        '-p',
        `[::1]::${dnsPort}/udp`,
        '--target',
        '127.0.0.1',
        '--log-level',
        'debug',
        '--log-format',
        'json',
      ],
      2,
    );
    const [v4, v6] = run.lines.map(parsePortLine);
    expect(v4).toMatchObject({ target: `${dnsPort}/udp`, host: '127.0.0.1' });
    expect(v6).toMatchObject({ target: `${dnsPort}/udp`, host: '[::1]' });

    expect(await dig('127.0.0.1', v4!.port, 'portpub.test')).toEqual({ code: 0, answer: ANSWER });
    expect(await dig('127.0.0.1', v4!.port, 'both.portpub.test', ['AAAA'])).toEqual({
      code: 0,
      answer: 'fd00::1:4',
    });
    expect(await dig('::1', v6!.port, 'both.portpub.test')).toEqual({
      code: 0,
      answer: '10.1.2.4',
    });

    // Ten clients at once: each dig has its own source port, so its own flow.
    const many = await Promise.all(
      Array.from({ length: 10 }, () => dig('127.0.0.1', v4!.port, 'portpub.test')),
    );
    expect(many).toEqual(Array.from({ length: 10 }, () => ({ code: 0, answer: ANSWER })));
    const opened = logLines(run.stderr()).filter((l) => l.msg === 'udp flow opened');
    expect(opened).toHaveLength(13);
    expect(new Set(opened.map((l) => l.client)).size).toBe(13);

    const r = await run.stop('SIGTERM');
    expect(r.code).toBe(0);
  });

  it('keeps a client flow while the target is down, then answers once it is up', async (ctx) => {
    needTools(ctx);
    const dnsPort = await freeUdpPort(); // nothing listens there yet
    const run = await startCli(
      [
        '-p',
        `127.0.0.1::${dnsPort}/udp`,
        '--target',
        '127.0.0.1',
        '--log-level',
        'debug',
        '--log-format',
        'json',
      ],
      1,
    );
    const { port } = parsePortLine(run.lines[0]!);
    // One client address for both queries (dig -b), so both go through one flow.
    const clientPort = await freeUdpPort();
    const from = ['-b', `127.0.0.1#${clientPort}`, '+time=1'];
    const down = await dig('127.0.0.1', port, 'portpub.test', from);
    expect(down.code).not.toBe(0); // no answer: the target's ICMP error is not relayed
    await waitFor(
      () => logLines(run.stderr()).some((l) => l.reason === 'target-refused'),
      'portpub to see the target refuse',
    );
    await startDnsmasq(dnsPort);
    expect(await dig('127.0.0.1', port, 'portpub.test', from)).toEqual({ code: 0, answer: ANSWER });
    const opened = logLines(run.stderr()).filter(
      (l) => l.msg === 'udp flow opened' && l.client === `127.0.0.1:${clientPort}`,
    );
    expect(opened).toHaveLength(1);
    expect((await run.stop('SIGTERM')).code).toBe(0);
  });

  it('ends idle flows after --udp-timeout', async (ctx) => {
    needTools(ctx);
    const dnsPort = await freeUdpPort();
    await startDnsmasq(dnsPort);
    const run = await startCli(
      [
        '-p',
        `127.0.0.1::${dnsPort}/udp`,
        '--target',
        '127.0.0.1',
        '--udp-timeout',
        '200ms',
        '--log-level',
        'debug',
        '--log-format',
        'json',
      ],
      1,
    );
    const { port } = parsePortLine(run.lines[0]!);
    expect(await dig('127.0.0.1', port, 'portpub.test')).toEqual({ code: 0, answer: ANSWER });
    await waitFor(
      () => logLines(run.stderr()).some((l) => l.msg === 'udp flow expired'),
      'the flow to expire',
      5_000,
    );
    expect((await run.stop('SIGTERM')).code).toBe(0);
  });
});
