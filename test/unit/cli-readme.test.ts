// The README's examples are the program's (issue 13 defect 12): every example of its Output
// section and of `portpub port` runs in-process and prints what the README shows (ephemeral
// ports aside), the error example of the grammar section is the real text, and the exit-code
// catalog is ERRORS.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors.js';
import { withDeadline } from '../helpers/net.js';
import { writeState } from '../../src/registry/state.js';
import { runMain, startMain, useStateDir } from './cli-harness.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** section is the text of `## title` up to the next `## ` heading. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  expect(start, `README section ${title}`).toBeGreaterThan(0);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end === -1 ? undefined : end);
}

interface Example {
  args: string[];
  output: string[];
}

/** examples are the `$ portpub ...` commands of fenced blocks, each with the lines after it. */
function examples(text: string): Example[] {
  const out: Example[] = [];
  for (const block of text.matchAll(/```[a-z]*\n([\s\S]*?)```/g)) {
    for (const part of block[1]!.split(/^(?=\$ )/m)) {
      const [command, ...output] = part.split('\n').filter((l) => l !== '');
      if (!command?.startsWith('$ portpub ')) continue;
      out.push({ args: command.slice('$ portpub '.length).split(' '), output });
    }
  }
  return out;
}

/** normalizePorts hides host port numbers, which the kernel's range decides. */
function normalizePorts(line: string): string {
  return line
    .replace(/(-> (?:\[[^\]]+\]|[^ :]+)):\d+$/, '$1:PORT')
    .replace(/"hostPort":\d+/g, '"hostPort":PORT');
}

describe('README Output examples', () => {
  const all = examples(section('Output'));

  it('has the examples this test knows how to run', () => {
    expect(all.length).toBeGreaterThanOrEqual(4);
  });

  it.each(
    all.filter((e) => e.args.includes('--dry-run')).map((e) => [e.args.join(' '), e] as const),
  )('portpub %s', async (_name, e) => {
    const r = await runMain(e.args);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(e.output.map((l) => `${l}\n`).join(''));
  });

  it.each(
    all.filter((e) => !e.args.includes('--dry-run')).map((e) => [e.args.join(' '), e] as const),
  )('portpub %s (serving; ephemeral ports vary)', async (_name, e) => {
    useStateDir();
    const run = startMain([...e.args, '--log-level', 'silent']);
    const lines = e.output.length;
    const text = await withDeadline(
      Promise.race([
        run.stdout.until((t) => t.split('\n').length > lines),
        run.code.then((code) => `exited ${code}: ${run.stderr.text()}`),
      ]),
      10_000,
      'the bindings',
    );
    run.host.stop('SIGTERM');
    expect(await withDeadline(run.code, 10_000, 'portpub to stop')).toBe(0);
    const got = text.split('\n').filter((l) => l !== '');
    expect(got.map(normalizePorts)).toEqual(e.output.map(normalizePorts));
    // Both sockets of one mapping (0.0.0.0 and ::) share a port, as the README shows.
    const portsOf = (ls: string[], target: string) =>
      new Set(ls.filter((l) => l.startsWith(target)).map((l) => /:(\d+)$/.exec(l)?.[1]));
    const portLines = e.output.filter((l) => l.includes(' -> '));
    for (const target of new Set(portLines.map((l) => l.split(' ')[0]!))) {
      expect(portsOf(got, target).size, target).toBe(portsOf(e.output, target).size);
    }
  });
});

describe('README grammar error example', () => {
  it('prints the error the README shows', async () => {
    const [e] = examples(section('The `-p` grammar'));
    expect(e).toBeDefined();
    const r = await runMain(e!.args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(e!.output[0]);
  });
});

describe('README Exit codes', () => {
  it('lists the error catalog exactly', () => {
    const rows = [
      ...section('Exit codes').matchAll(/^\| `(ERR_[A-Z_]+)`\s*\| (\d)\s*\| (.*?)\s*\|$/gm),
    ];
    expect(rows.map((m) => [m[1], Number(m[2]), m[3]])).toEqual(
      Object.entries(ERRORS).map(([code, [exit, meaning]]) => [code, exit, meaning]),
    );
  });
});

describe('README Options', () => {
  it('names only options the program has, --name among them', async () => {
    const help = (await runMain(['--help'])).stdout;
    const flags = [...section('Options').matchAll(/^\| `(--[a-z-]+)/gm)].map((m) => m[1]!);
    expect(flags).toContain('--name');
    for (const flag of flags) expect(help, flag).toContain(flag);
  });

  it('has a row for every option the help shows', async () => {
    const help = (await runMain(['--help'])).stdout;
    const options = help.slice(help.indexOf('Options:'), help.indexOf('Commands:'));
    const shown = new Set([...options.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!));
    const rows = section('Options')
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .join('\n');
    const documented = new Set([...rows.matchAll(/`(?:-\w, )?(--[a-z-]+)/g)].map((m) => m[1]!));
    expect(shown.size).toBeGreaterThan(10);
    expect([...shown].filter((f) => !documented.has(f))).toEqual([]);
  });
});

describe('README Library', () => {
  it('imports only names the package exports, and names the aliases it keeps', async () => {
    const api = (await import('../../src/index.js')) as Record<string, unknown>;
    const text = section('Library');
    const imports = [...text.matchAll(/^import \{ (.*) \} from 'portpub';$/gm)];
    expect(imports.length).toBeGreaterThan(0);
    for (const m of imports) {
      for (const name of m[1]!.split(', ')) expect(api[name], name).toBeDefined();
    }
    expect(text).toContain('startPublisher');
    for (const name of ['startPublisher', 'Publisher', 'startForwarding', 'Forwarding']) {
      expect(text, name).toContain(`\`${name}\``);
      expect(api[name], name).toBeDefined();
    }
  });
});

describe('README portpub port examples', () => {
  it('print what the README shows, for the service it describes', async () => {
    // The README's `web`: 80 published on 8080 (both families) and 3000 on an ephemeral port.
    const dir = useStateDir();
    const b = (hostIp: string, hostPort: number, targetPort: number) => ({
      name: 'web',
      hostIp,
      hostPort,
      targetHost: '127.0.0.1',
      targetPort,
      protocol: 'tcp' as const,
    });
    writeState(dir, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      configFile: '/srv/compose.yaml',
      bindings: [b('0.0.0.0', 8080, 80), b('::', 8080, 80), b('127.0.0.1', 32768, 3000)],
    });
    const all = examples(section('Where did it land: `portpub port`'));
    expect(all.length).toBe(4);
    for (const e of all) {
      const r = await runMain(e.args);
      const shown = e.output.map((l) => l.replace(/\s+# exit (\d)$/, ''));
      const exit = /# exit (\d)$/.exec(e.output.at(-1) ?? '')?.[1];
      expect(r.code, e.args.join(' ')).toBe(exit === undefined ? 0 : Number(exit));
      const got = (exit === undefined ? r.stdout : r.stderr).split('\n').filter((l) => l !== '');
      // `...` in the README elides the rest of a line.
      expect(got.length, e.args.join(' ')).toBe(shown.length);
      shown.forEach((line, i) => {
        const [head] = line.split('...');
        if (line.includes('...')) expect(got[i]!.startsWith(head!), line).toBe(true);
        else expect(got[i], e.args.join(' ')).toBe(line);
      });
    }
  });
});
