// More of the README checked against the program (issue 13 item 7): the Options table's defaults
// are the ones --help shows, every row of the exit-code table is provoked, the Logs table's
// messages are the ones the program logs, the bind errors of "Binding and stopping" are the
// real texts, and the Library snippet runs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { echoServer, withDeadline } from '../helpers/net.js';
import { fakeHost, runMain, startMain, tempDir, useStateDir } from './cli-harness.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** section is the text of `## title` up to the next `## ` heading. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  expect(start, `README section ${title}`).toBeGreaterThan(0);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end === -1 ? undefined : end);
}

/** tableRows are the body rows of the section's tables, as trimmed cells. */
function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('| ') && !/^\| -/.test(l))
    .map((l) =>
      l
        .slice(1, -1)
        .split(' | ')
        .map((c) => c.trim()),
    );
}

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

describe('README Options: the defaults column', () => {
  it('is what --help shows for each option', () => {
    const io = { stdout: process.stdout, stderr: process.stderr };
    const program = buildProgram({ io, host: fakeHost(), setExit: () => undefined });
    const help = program.createHelp();
    const shown = new Map<string, string | undefined>();
    for (const option of program.options) {
      const text = help.optionDescription(option);
      const m = /[(,] ?default: ([^)]*)\)/.exec(text);
      shown.set(option.long!, m ? m[1]!.replace(/^"(.*)"$/, '$1') : undefined);
    }
    const rows = tableRows(section('Options')).filter((r) => r[0]!.startsWith('`-'));
    expect(rows.length).toBeGreaterThan(15);
    let compared = 0;
    for (const [flags, cell] of rows) {
      const long = /--[a-z-]+/.exec(flags!)![0];
      if (long === '--version' || long === '--help') continue;
      expect(shown.has(long), `${long} is an option of portpub`).toBe(true);
      // The README writes `0` (off) where --help writes 0, and off (or nothing) where it has none.
      const readme = cell!
        .replaceAll('`', '')
        .replace(/ \((?:off|unlimited)\)$/, '')
        .replace(/^off$/, '');
      expect(readme, `README default of ${long}`).toBe(shown.get(long) ?? '');
      compared++;
    }
    expect(compared).toBe(shown.size - 2); // every option but --version and --help
  });
});

describe('README Exit codes: every row provoked', () => {
  /** serveThenStop serves one mapping in-process and stops it with `signal`. */
  async function serveThenStop(signal: 'SIGINT' | 'SIGTERM'): Promise<number> {
    useStateDir();
    const run = startMain(['-p', '127.0.0.1::80', '-t', '192.0.2.1', '--log-level', 'silent']);
    await withDeadline(
      run.stdout.until((t) => t.includes('\n')),
      10_000,
      'the binding',
    );
    run.host.stop(signal);
    return withDeadline(run.code, 10_000, 'portpub to stop');
  }
  const code = async (args: string[]) => (await runMain(args)).code;

  const cases: [number, string, () => Promise<number>][] = [
    [
      0,
      'stopped by SIGINT/SIGTERM after draining',
      async () => {
        expect(await serveThenStop('SIGINT')).toBe(0);
        return serveThenStop('SIGTERM');
      },
    ],
    [0, '`--help`', () => code(['--help'])],
    [0, '`--version`', () => code(['--version'])],
    [0, '`--dry-run`', () => code(['--dry-run', '-p', '80', '-t', '192.0.2.1'])],
    [
      1,
      'a host port could not be bound',
      async () => {
        useStateDir();
        return code(['-p', `127.0.0.1:${(await listening()).port}:80`, '-t', '192.0.2.1']);
      },
    ],
    [1, 'an `sctp` mapping', () => code(['-p', '127.0.0.1::80/sctp'])],
    [
      1,
      'a `--name` in use',
      async () => {
        const dir = useStateDir();
        mkdirSync(dir, { recursive: true });
        // A live process holds the name: our parent stands for a portpub still binding (not
        // this process, as which main() runs here).
        writeFileSync(join(dir, 'web.name'), `${process.ppid}\n`);
        return code(['--name', 'web', '-p', '127.0.0.1::80', '-t', '192.0.2.1']);
      },
    ],
    [
      1,
      'an unexpected error',
      async () => {
        // A failure portpub did not raise on purpose: here, a stdout that throws.
        const stdout = Object.assign(
          new (await import('node:stream')).Writable({ write: () => undefined }),
          {
            write: () => {
              throw new TypeError('boom');
            },
          },
        );
        const stderr = (await import('./cli-harness.js')).sink();
        const { main } = await import('../../src/cli/main.js');
        const c = await main(
          ['node', 'portpub', '--dry-run', '-p', '80', '-t', '192.0.2.1'],
          { stdout, stderr },
          fakeHost(),
        );
        expect(stderr.text()).toContain('portpub: unexpected error: TypeError: boom');
        return c;
      },
    ],
    [
      1,
      'Nothing is left bound.',
      async () => {
        useStateDir();
        const busy = await listening();
        const free = await listening();
        const port = free.port;
        await new Promise((resolve) => free.close(resolve));
        const c = await code([
          '-p',
          `127.0.0.1:${port}:80`,
          '-p',
          `127.0.0.1:${busy.port}:81`,
          '-t',
          '192.0.2.1',
        ]);
        // The first mapping was bound before the second failed: it is free again.
        const again = createServer();
        await new Promise<void>((resolve, reject) => {
          again.once('error', reject);
          again.listen(port, '127.0.0.1', resolve);
        });
        await new Promise((resolve) => again.close(resolve));
        return c;
      },
    ],
    [2, 'a `-p` value Docker rejects', () => code(['-p', 'localhost:8080:80'])],
    [2, 'an unknown flag', () => code(['--nosuch'])],
    [2, 'or command', () => code(['upp'])],
    [2, 'a bad option value', () => code(['-p', '80', '--drain-timeout', 'soon'])],
    [
      2,
      'a file with nothing to publish',
      () => {
        const file = join(tempDir(), 'compose.yaml');
        writeFileSync(file, 'services:\n  web:\n    image: nginx\n');
        return code(['up', '-f', file]);
      },
    ],
  ];

  it.each(cases)('exit %i: %s', async (exit, phrase, provoke) => {
    const row = tableRows(section('Exit codes')).find((r) => r[0] === String(exit));
    expect(row, `a row for exit ${exit}`).toBeDefined();
    expect(row![1]).toContain(phrase);
    expect(await provoke()).toBe(exit);
  });

  it('names nothing the cases above do not provoke', () => {
    for (const [exit, when] of tableRows(section('Exit codes')).filter((r) => /^\d$/.test(r[0]!))) {
      let rest = when!.replace(/^(runtime failure|bad input): /, '');
      for (const [e, phrase] of cases) if (String(e) === exit) rest = rest.replace(phrase, '');
      expect(rest.replace(/[\s,;.]|\band\b/g, ''), `exit ${exit}: ${when}`).toBe('');
    }
  });
});

describe('README Logs: the table is what the program logs', () => {
  interface Line {
    level: number;
    msg: string;
    [field: string]: unknown;
  }
  const LEVELS: Record<string, number> = { info: 30, warn: 40, error: 50 };
  const lines = (text: string): Line[] =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);

  /** openThrough opens a TCP connection through a bound port and waits for one echo. */
  async function openThrough(port: number): Promise<void> {
    const sock = connect({ host: '127.0.0.1', port });
    onTestFinished(() => void sock.destroy());
    sock.on('error', () => undefined);
    await withDeadline(
      new Promise<void>((resolve) => {
        sock.once('data', () => resolve());
        sock.write('x');
      }),
      10_000,
      'an echo through portpub',
    );
  }
  const portOf = (stdout: string) => Number(/:(\d+)\n/.exec(stdout)![1]);

  it('every row: its message, level and fields appear in what portpub logs', async () => {
    useStateDir();
    const echo = await echoServer();
    const logged: Line[] = [];

    // up: a reload that works, one that fails, then Ctrl-C with a connection that outlasts the drain.
    const file = join(tempDir(), 'compose.yaml');
    const web = (ports: string[]) =>
      `services:\n  web:\n    ports: [${ports.map((p) => `"${p}"`).join(', ')}]\n`;
    writeFileSync(file, web([`127.0.0.1::${echo.port}`]));
    const up = startMain(['up', '-f', file, '--log-format', 'json', '--drain-timeout', '300ms']);
    const out = await withDeadline(
      up.stdout.until((t) => t.includes('\n')),
      10_000,
      'up',
    );
    writeFileSync(file, web([`127.0.0.1::${echo.port}`, `127.0.0.1::${echo.port}/udp`]));
    up.host.reload();
    await withDeadline(
      up.stderr.until((t) => t.includes('"reloaded"')),
      10_000,
      'reloaded',
    );
    writeFileSync(file, 'services:\n  web:\n    ports: ["127.0.0.1:x:80"]\n');
    up.host.reload();
    await withDeadline(
      up.stderr.until((t) => t.includes('reload failed')),
      10_000,
      'reload failed',
    );
    await openThrough(portOf(out));
    up.host.stop('SIGINT');
    expect(await withDeadline(up.code, 10_000, 'up to stop')).toBe(0);
    logged.push(...lines(up.stderr.text()));

    // -p: SIGTERM, then a second one while a connection is open.
    const plain = startMain(['-p', `127.0.0.1::${echo.port}`, '--log-format', 'json']);
    const plainOut = await withDeadline(
      plain.stdout.until((t) => t.includes('\n')),
      10_000,
      '-p',
    );
    await openThrough(portOf(plainOut));
    plain.host.stop('SIGTERM');
    await withDeadline(
      plain.stderr.until((t) => t.includes('stopping')),
      10_000,
      'stopping',
    );
    plain.host.stop('SIGTERM');
    expect(await withDeadline(plain.code, 10_000, '-p to stop')).toBe(0);
    logged.push(...lines(plain.stderr.text()));

    // host_ip= in long syntax.
    const hostIp = await runMain([
      '--dry-run',
      '-p',
      'host_ip=127.0.0.1,target=80',
      '-t',
      '192.0.2.1',
    ]);
    logged.push(...lines(hostIp.stderr));

    const rows = tableRows(section('Logs')).filter((r) => r[0]!.startsWith('`'));
    expect(rows.length).toBeGreaterThanOrEqual(9);
    for (const [msgCell, level, fieldsCell] of rows) {
      const msg = /^`(.*)`$/.exec(msgCell!)![1]!;
      const pattern = new RegExp(
        '^' +
          msg
            .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
            .replace(/\\\.\\\.\\\.$/, '.*') // `...` elides the rest
            .replace('\\(N TCP, M UDP flows\\)', '\\(\\d+ TCP, \\d+ UDP flows\\)')
            .replace('up to 10s', 'up to [0-9a-z.]+') +
          '$',
      );
      const hit = logged.find((l) => pattern.test(l.msg));
      expect(hit, `a log line like ${msg}\n${logged.map((l) => l.msg).join('\n')}`).toBeDefined();
      expect(hit!.level, msg).toBe(LEVELS[level!]);
      for (const m of fieldsCell!.matchAll(/`([A-Za-z]+)`/g)) {
        expect(Object.keys(hit!), `${msg}: field ${m[1]}`).toContain(m[1]);
      }
    }
  }, 60_000);
});

describe('README Binding and stopping: the bind errors', () => {
  /** quoted is the README's backticked text that starts with `start`, line breaks undone. */
  const quoted = (start: string) => {
    const text = section('Binding and stopping').replace(/\s+/g, ' ');
    const m = new RegExp('`(' + start + '[^`]*)`').exec(text);
    expect(m, start).not.toBeNull();
    return m![1]!;
  };

  it('a port this portpub already holds, and one the OS refuses, are worded as shown', async () => {
    useStateDir();
    const busy = await listening();
    const at = (text: string, port: number) => text.replace('0.0.0.0:8080', `127.0.0.1:${port}`);

    const free = await listening();
    const port = free.port;
    await new Promise((resolve) => free.close(resolve));
    const twice = await runMain([
      '-p',
      `127.0.0.1:${port}:80`,
      '-p',
      `127.0.0.1:${port}:81`,
      '-t',
      '192.0.2.1',
      '--log-level',
      'warn',
    ]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toBe(`portpub: ${at(quoted('Bind for '), port)}\n`);

    const refused = await runMain([
      '-p',
      `127.0.0.1:${busy.port}:80`,
      '-t',
      '192.0.2.1',
      '--log-level',
      'warn',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`portpub: ${at(quoted('failed to bind host port '), busy.port)}\n`);
  });
});

describe('README Library: the snippet runs', () => {
  it('binds, prints the bindings as the comment shows, and closes', async () => {
    const block = /```js\n([\s\S]*?)```/.exec(section('Library'))?.[1];
    expect(block).toBeDefined();
    // The snippet as written, with `portpub` resolved to this checkout's source.
    const code = block!.replace("from 'portpub'", `from '${join(ROOT, 'src', 'index.ts')}'`);
    const logged: unknown[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => void logged.push(...args);
    try {
      const dir = tempDir();
      const file = join(dir, 'snippet.ts');
      writeFileSync(file, code);
      await import(file);
    } finally {
      console.log = log;
    }
    expect(logged).toHaveLength(1);
    const comment = /console\.log\(publisher\.bindings\); \/\/ \[\{ (.*), \.\.\. \}\]/.exec(
      block!,
    )![1]!;
    const [binding] = logged[0] as Record<string, unknown>[];
    for (const pair of comment.split(', ')) {
      const [key, value] = pair.split(': ') as [string, string];
      // hostPort is ephemeral: the README's 32768 stands for whichever port the kernel's range gave.
      if (key === 'hostPort') expect(binding![key]).toEqual(expect.any(Number));
      else expect(binding![key], key).toEqual(JSON.parse(value.replaceAll("'", '"')));
    }
    expect(logged[0]).toHaveLength(1);
  });
});
