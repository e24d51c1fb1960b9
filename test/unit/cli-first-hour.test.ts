// Issue 13, the CLI side of a newcomer's first hour, in-process through main(argv, io, host):
// unknown commands and help, help text, --target and --name checks, durations, nothing to
// publish, bind errors printed once, reload and port reports, the first Ctrl-C.
import { createServer, connect, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { formatDuration } from '../../src/duration.js';
import { DEFAULTS as TCP_DEFAULTS } from '../../src/tcp/options.js';
import { UDP_DEFAULTS } from '../../src/udp/options.js';
import { writeState } from '../../src/registry/state.js';
import { echoServer, withDeadline } from '../helpers/net.js';
import { fakeHost, runMain, startMain, tempDir, useStateDir } from './cli-harness.js';

function listening(): Promise<Server & { port: number }> {
  const server = createServer();
  onTestFinished(() => void server.close());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve(Object.assign(server, { port: (server.address() as { port: number }).port })),
    );
  });
}

describe('commands (defect 3)', () => {
  it('an unknown command says so, with a suggestion (exit 2)', async () => {
    const r = await runMain(['upp']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("error: unknown command 'upp'");
    expect(r.stderr).toContain('(Did you mean up?)');
    expect(r.stderr).not.toContain('too many arguments');
  });

  it('help with an unknown command says so, as portpub upp does (exit 2)', async () => {
    for (const [name, suggestion] of [
      ['upp', '(Did you mean up?)'],
      ['nosuch', undefined],
    ] as const) {
      const r = await runMain(['help', name]);
      expect(r.code, name).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`error: unknown command '${name}'`);
      if (suggestion) expect(r.stderr).toContain(suggestion);
      else expect(r.stderr).not.toContain('Did you mean');
      // The one-line pointer, not the whole root help.
      expect(r.stderr).toContain('(run portpub --help for usage)');
      expect(r.stderr).not.toContain('Usage:');
    }
  });

  it('help and help COMMAND print help (exit 0)', async () => {
    const all = await runMain(['help']);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain('Usage: portpub [options] [command]');
    const up = await runMain(['help', 'up']);
    expect(up.code).toBe(0);
    expect(up.stdout).toContain('Usage: portpub up [options]');
    expect(up.stdout).toContain('--target-for <service=host>');
  });
});

describe('help text (defect 4)', () => {
  const names = () => {
    const io = { stdout: process.stdout, stderr: process.stderr };
    return buildProgram({ io, host: fakeHost(), setExit: () => undefined }).commands.map((c) =>
      c.name(),
    );
  };

  it('the root help wraps its options and commands at 80 columns', async () => {
    // Commander stops wrapping when the description column would be narrower than 40: one long
    // command synopsis (exec's once) makes every line of the list as long as it likes.
    const r = await runMain(['--help']);
    const table = r.stdout.slice(0, r.stdout.indexOf('\nExamples:'));
    expect(table).toContain('  exec [options]');
    expect(table.split('\n').filter((l) => l.length > 80)).toEqual([]);
  });

  it('shows durations as typed and no empty defaults, in every command', async () => {
    const root = await runMain(['--help']);
    // As read: a default may wrap onto the next line.
    const text = root.stdout.replace(/\s+/g, ' ');
    expect(text).toContain('(default: 10s)');
    expect(text).toContain('(default: 5s)');
    expect(text).toContain('(default: 90s)');
    expect(text).not.toContain('(default: 10000)');
    for (const name of ['', ...names()]) {
      const r = await runMain(name === '' ? ['--help'] : ['help', name]);
      expect(r.code, name).toBe(0);
      for (const noise of ['(default: [])', '(default: false)', '(default: {})']) {
        expect(r.stdout, `portpub ${name} --help`).not.toContain(noise);
      }
    }
  });

  it('every --help: a duration default reads as a duration, no default is JSON noise', async () => {
    const io = { stdout: process.stdout, stderr: process.stderr };
    const program = buildProgram({ io, host: fakeHost(), setExit: () => undefined });
    let durations = 0;
    for (const cmd of [program, ...program.commands]) {
      const name = cmd === program ? '' : cmd.name();
      const r = await runMain(name === '' ? ['--help'] : ['help', name]);
      expect(r.code, name).toBe(0);
      const text = r.stdout.replace(/\s+/g, ' ');
      const shown = [...text.matchAll(/\(default: ([^)]*)\)/g)].map((m) => m[1]!);
      for (const value of shown) {
        expect(
          ['null', '[]', '{}', 'false', 'true', 'undefined'],
          `portpub ${name} --help`,
        ).not.toContain(value);
      }
      for (const option of cmd.options) {
        if (!option.flags.endsWith('<duration>') || option.defaultValue === undefined) continue;
        durations++;
        const at = text.indexOf(`${option.flags} `);
        expect(at, `${name} ${option.flags}`).toBeGreaterThanOrEqual(0);
        const m = /\(default: ([^)]*)\)/.exec(text.slice(at));
        // A bare number of milliseconds reads as seconds by portpub's own rule; 0 is 0 in any unit.
        expect(m?.[1], `portpub ${name} --help: ${option.flags}`).toMatch(
          /^(0|[0-9.]+(ms|s|m|h)(\S*))$/,
        );
      }
    }
    // stats and top --interval, reload --timeout, and the serving commands' four each.
    expect(durations).toBeGreaterThanOrEqual(4 * 3 + 3);
  });

  it("shows the forwarders' own defaults (issue 12 item 5)", async () => {
    const help = (await runMain(['--help'])).stdout.replace(/\s+/g, ' ');
    const shown = (flag: string, ms: number) =>
      expect(help).toMatch(
        new RegExp(`${flag} <duration> (?:(?! --[a-z]).)*?\\(default: ${formatDuration(ms)}\\)`),
      );
    shown('--connect-timeout', TCP_DEFAULTS.connectTimeoutMs);
    shown('--idle-timeout', TCP_DEFAULTS.idleTimeoutMs);
    shown('--udp-timeout', UDP_DEFAULTS.flowTimeoutMs);
    expect(help).toMatch(
      new RegExp(`--max-udp-flows <n> (?:(?! --[a-z]).)*?\\(default: ${UDP_DEFAULTS.maxFlows}\\)`),
    );
  });

  it('the description is one paragraph (no hard line break)', () => {
    const io = { stdout: process.stdout, stderr: process.stderr };
    const program = buildProgram({ io, host: fakeHost(), setExit: () => undefined });
    expect(program.description()).not.toContain('\n');
  });
});

describe('--target in a plain run (defect 5)', () => {
  it.each(['127.0.0.1:3000', 'bad host!', '', 'http://x'])(
    '--target %j is refused naming the flag (exit 2)',
    async (target) => {
      const r = await runMain(['--dry-run', '-p', '80', '--target', target]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`--target: invalid target address ${JSON.stringify(target)}`);
      expect(r.stderr).not.toContain('targetHost');
    },
  );

  it('[::1] is taken as ::1, host names pass', async () => {
    const v6 = await runMain(['--dry-run', '-p', '127.0.0.1:8080:80', '--target', '[::1]']);
    expect(v6.code).toBe(0);
    expect(v6.stdout).toBe('80/tcp -> 127.0.0.1:8080 => [::1]:80\n');
    const named = await runMain(['--dry-run', '-p', '127.0.0.1:8080:80', '-t', 'db.internal']);
    expect(named.stdout).toBe('80/tcp -> 127.0.0.1:8080 => db.internal:80\n');
  });
});

describe('--name (defect 7)', () => {
  it.each(['', 'a b/../x', '-web', 'w'])("--name %j breaks Docker's rule (exit 2)", async (n) => {
    const r = await runMain(['--dry-run', '-p', '80', '--name', n]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `--name: Invalid container name (${n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  });

  it("a name a running portpub holds is Docker's conflict (exit 1), nothing bound", async () => {
    const dir = useStateDir();
    writeState(dir, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      name: 'web',
      bindings: [],
    });
    const target = await listening();
    const r = await runMain(['-p', `127.0.0.1::${target.port}`, '--name', 'web']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `portpub: Conflict. The container name "/web" is already in use by portpub pid ${process.pid}. ` +
        'You have to remove (or rename) that container to be able to reuse that name.\n',
    );
  });
});

describe('durations (defects 4, 14)', () => {
  it("accepts compose's 1m30s", async () => {
    const r = await runMain(['--dry-run', '-p', '80', '--drain-timeout', '1m30s']);
    expect(r.code).toBe(0);
  });

  it('--idle-timeout 1000h names the timer limit', async () => {
    const r = await runMain(['--dry-run', '-p', '80', '--idle-timeout', '1000h']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--idle-timeout 1000h is longer than the longest timer');
    expect(r.stderr).toContain('about 24.8 days');
  });
});

describe('host_ip= in long syntax (defect 14)', () => {
  it('is ignored as Docker ignores it, with a warning that the port is on every interface', async () => {
    const r = await runMain(['--dry-run', '--json', '-p', 'host_ip=127.0.0.1,target=80']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      mappings: [{ hostIp: '', hostPort: '', targetPort: 80, protocol: 'tcp' }],
    });
    const warn = JSON.parse(r.stderr.trim()) as { level: number; msg: string; publish: string };
    expect(warn).toMatchObject({ level: 40, publish: 'host_ip=127.0.0.1,target=80' });
    expect(warn.msg).toContain('published on every interface');
  });
});

describe('--default-host-ip as Go writes an address (item 9)', () => {
  it.each([
    [['--default-host-ip', '0:0:0:0:0:0:0:1', '-p', '42104:80'], '80/tcp -> [::1]:42104'],
    [['--default-host-ip', 'FE80:0:0:0::1', '-p', '42104:80'], '80/tcp -> [fe80::1]:42104'],
    [
      ['--default-host-ip', '::FFFF:127.0.0.1', '-p', '42104:80'],
      '80/tcp -> [::ffff:127.0.0.1]:42104',
    ],
  ])('portpub --dry-run %j prints %s', async (args, line) => {
    const r = await runMain(['--dry-run', ...args, '-t', '192.0.2.1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${line} => 192.0.2.1:80\n`);
  });

  it('up --dry-run too', async () => {
    const file = join(tempDir(), 'compose.yaml');
    writeFileSync(file, 'services:\n  web:\n    target: 192.0.2.1\n    ports: ["42104:80"]\n');
    const r = await runMain(['up', '-f', file, '--dry-run', '--default-host-ip', '0:0::0:1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[::1]:42104');
    expect(r.stdout).not.toContain('0:0::0:1');
  });
});

describe('a self-loop in a plain --dry-run (defect 1)', () => {
  it('is warned about as in up --dry-run: the plan, then why serving it is refused', async () => {
    const r = await runMain(['--dry-run', '-p', '42012:42012']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('42012/tcp -> 0.0.0.0:42012 => 127.0.0.1:42012');
    const warn = JSON.parse(r.stderr.trim()) as { level: number; code: string; msg: string };
    expect(warn).toMatchObject({ level: 40, code: 'ERR_SELF_LOOP' });
    expect(warn.msg).toContain(
      "-p 42012:42012/tcp: the target 127.0.0.1:42012/tcp is portpub's own",
    );
    expect(warn.msg).toContain('--target 127.0.0.2');
    // Another target address, or another host port, is no loop: no warning.
    for (const args of [
      ['-p', '127.0.0.1:42012:42012', '-t', '127.0.0.2'],
      ['-p', '42013:42012'],
    ]) {
      const ok = await runMain(['--dry-run', ...args]);
      expect(ok.code).toBe(0);
      expect(ok.stderr).toBe('');
    }
  });
});

describe('portpub up with nothing to publish (defect 2)', () => {
  it.each([
    ['only image:', 'services:\n  web:\n    image: nginx\n'],
    ['only expose:', 'services:\n  db:\n    image: postgres\n    expose: ["5432"]\n'],
    ['a typo', 'services:\n  web:\n    image: nginx\n    prots: ["8080:80"]\n'],
  ])('%s: "nothing to publish", exit 2', async (_what, text) => {
    useStateDir();
    const file = join(tempDir(), 'compose.yaml');
    writeFileSync(file, text);
    for (const extra of [[], ['--dry-run']]) {
      const r = await runMain(['up', '-f', file, ...extra]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`portpub: nothing to publish: no service in ${file} has ports:`);
    }
  });
});

describe('bind errors (defect 11)', () => {
  it('are printed once, and in up name the service', async () => {
    useStateDir();
    const busy = await listening();
    const file = join(tempDir(), 'compose.yaml');
    writeFileSync(file, `services:\n  web:\n    ports: ["127.0.0.1:${busy.port}:80"]\n`);
    const r = await runMain(['up', '-f', file]);
    expect(r.code).toBe(1);
    const message = `web: failed to bind host port 127.0.0.1:${busy.port}/tcp: address already in use`;
    expect(r.stderr.split(message).length - 1).toBe(1);
    expect(r.stderr).toContain(`portpub: ${message}`);
    const plain = await runMain(['-p', `127.0.0.1:${busy.port}:80`]);
    expect(plain.code).toBe(1);
    expect(plain.stderr.split('failed to bind host port').length - 1).toBe(1);
  });
});

describe('stopping (defect 14)', () => {
  it('the first Ctrl-C says how many connections drain and that a second one cuts', async () => {
    useStateDir();
    const target = await echoServer();
    const run = startMain(['-p', `127.0.0.1::${target.port}`, '--log-level', 'info']);
    const line = await withDeadline(
      run.stdout.until((t) => t.endsWith('\n')),
      10_000,
      'bound',
    );
    const port = Number(/:(\d+)\n$/.exec(line)![1]);
    const client = connect({ host: '127.0.0.1', port });
    onTestFinished(() => void client.destroy());
    client.on('error', () => undefined);
    await withDeadline(
      new Promise<void>((resolve) => {
        client.once('data', () => resolve());
        client.write('hi');
      }),
      10_000,
      'echo',
    );
    run.host.stop('SIGINT');
    const drained = await withDeadline(
      run.stderr.until((t) => t.includes('stopping: draining')),
      10_000,
      'drain line',
    );
    expect(drained).toContain('stopping: draining open connections (1 TCP, 0 UDP flows)');
    expect(drained).toContain('a second Ctrl-C cuts them');
    run.host.stop('SIGINT');
    expect(await withDeadline(run.code, 10_000, 'exit after the second Ctrl-C')).toBe(0);
  });
});

describe('portpub port without NAME (defect 8)', () => {
  it('labels each process with its name and pid when several run', async () => {
    const dir = useStateDir();
    const b = (hostPort: number, targetPort: number, name?: string) => ({
      ...(name !== undefined ? { name } : {}),
      hostIp: '0.0.0.0',
      hostPort,
      targetHost: '127.0.0.1',
      targetPort,
      protocol: 'tcp' as const,
    });
    const startedAt = new Date().toISOString();
    writeState(dir, { pid: process.pid, startedAt, bindings: [b(5000, 5000)] });
    writeState(dir, {
      pid: process.ppid,
      startedAt: new Date(Date.now() + 1000).toISOString(),
      configFile: '/x/compose.yaml',
      bindings: [b(5001, 5000, 'web'), b(6000, 6000, 'db')],
    });
    const r = await runMain(['port']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `pid ${process.pid}: 5000/tcp -> 0.0.0.0:5000\n` +
        `web (pid ${process.ppid}): 5000/tcp -> 0.0.0.0:5001\n` +
        `db (pid ${process.ppid}): 6000/tcp -> 0.0.0.0:6000\n`,
    );
  });

  it('one process alone prints docker port lines as they are', async () => {
    const dir = useStateDir();
    writeState(dir, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      name: 'api',
      bindings: [
        {
          hostIp: '127.0.0.1',
          hostPort: 8080,
          targetHost: '127.0.0.1',
          targetPort: 80,
          protocol: 'tcp',
        },
      ],
    });
    const r = await runMain(['port']);
    expect(r.stdout).toBe('80/tcp -> 127.0.0.1:8080\n');
  });
});

describe('portpub reload --pid (defect 14)', () => {
  it('a live pid that is no portpub is named as such, and not signalled', async () => {
    useStateDir();
    const host = fakeHost();
    const r = await runMain(['reload', '--pid', String(process.ppid)], host);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`portpub: pid ${process.ppid} is not a portpub (it runs, but left`);
    expect(host.kills.filter(([, s]) => s !== 0)).toEqual([]);
  });

  it('a portpub that reports no outcome within --timeout is ERR_RELOAD_TIMEOUT (exit 1)', async () => {
    const dir = useStateDir();
    // This process stands for a portpub up: its state file is real, the SIGHUP goes to the fake
    // host, so no outcome ever comes.
    writeState(dir, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      configFile: '/srv/compose.yaml',
      bindings: [],
    });
    const host = fakeHost();
    const r = await runMain(['reload', '--pid', String(process.pid), '--timeout', '200ms'], host);
    expect(r.code).toBe(1);
    expect(host.kills).toContainEqual([process.pid, 'SIGHUP']);
    expect(r.stdout).toBe(`sent SIGHUP to portpub pid ${process.pid} (/srv/compose.yaml)\n`);
    expect(r.stderr).toBe(
      `portpub: portpub pid ${process.pid} got SIGHUP but reported no outcome within 200ms ` +
        '(see its log; --timeout waits longer)\n',
    );
  });
});
