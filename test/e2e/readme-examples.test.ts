// The README's command examples run for real (issue 13 item 12): each block below is parsed out
// of README.md at test time, run through the built CLI (bin/portpub.js -> dist/), and compared
// with what the README prints. Only variable parts (ephemeral ports, ids, addresses derived from
// ids, ages, rates) are normalised, each by a narrow regex named where it is used.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN, runCli, startCli, withTimeout } from '../helpers/cli.js';
import { nativeLoaded, nativeRequired } from '../helpers/engines.js';
import { echoServer, freePort, roundTrip, waitFor } from '../helpers/net.js';
import { needs } from '../helpers/udp.js';
import { userNamespaceProblem, wantUserNamespace } from '../../src/netns/userns.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** section is the text of `## title` up to the next `## ` heading. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no section "${title}"`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end === -1 ? undefined : end);
}

/** fenced returns the bodies of the section's fenced blocks in a given language. */
function fenced(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

interface Example {
  command: string;
  output: string[];
}

/** examples are the `$ ...` commands of a block, each with the lines printed after it. */
function examples(block: string): Example[] {
  const out: Example[] = [];
  for (const part of block.split(/^(?=\$ )/m)) {
    const [command, ...output] = part.split('\n').filter((l) => l !== '');
    if (command?.startsWith('$ ')) out.push({ command: command.slice(2), output });
  }
  return out;
}

/** words splits a shell command into words: plain words and '...' quoting only. */
function words(command: string): string[] {
  const out: string[] = [];
  for (const m of command.matchAll(/'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2]!);
  return out;
}

/** portpubArgs is the argument list of a `portpub ...` command. */
function portpubArgs(command: string): string[] {
  const w = words(command);
  expect(w[0], command).toBe('portpub');
  return w.slice(1);
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-readme-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** useState gives the test a state directory of its own, so it sees only its own portpubs. */
function useState(): { env: Record<string, string>; dir: string } {
  const dir = tempDir();
  return { env: { PORTPUB_STATE_DIR: dir }, dir };
}

/** cells splits a table row on its column gaps (two or more spaces). */
function cells(row: string): string[] {
  return row.trim().split(/\s{2,}/);
}

async function open(port: number): Promise<Socket> {
  const sock = connect({ host: '127.0.0.1', port });
  onTestFinished(() => void sock.destroy());
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    }),
    5000,
    `connect to ${port}`,
  );
  return sock;
}

describe('README: Compose files and Where did it land', () => {
  it('portpub up serves the README portpub.yaml and portpub port answers as shown', async () => {
    const { env } = useState();
    const dir = tempDir();
    const yaml = fenced(section('Compose files: `portpub up`'), 'yaml')[0]!;
    expect(yaml).toContain("'8080:80'");
    const [web, dns] = [await freePort(), await freePort()];
    // The README's fixed host ports become ports this test found free; nothing else changes.
    writeFileSync(
      join(dir, 'portpub.yaml'),
      yaml.replace("'8080:80'", `'${web}:80'`).replace("published: '5353'", `published: '${dns}'`),
    );
    const run = await startCli(['up'], 4, 15_000, { env, cwd: dir });
    // The up block's comment shows the first line: `web: 80/tcp -> 0.0.0.0:8080 ...`.
    const upBlock = fenced(section('Compose files: `portpub up`'), 'sh')[0]!;
    const shown = /^portpub up\s+# (.*) \.\.\.$/m.exec(upBlock)![1]!;
    expect(run.lines[0]).toBe(shown.replace(':8080', `:${web}`));

    const portBlock = fenced(section('Where did it land: `portpub port`'), 'sh')[0]!;
    const all = examples(portBlock);
    expect(all.length).toBeGreaterThanOrEqual(4);
    let ephemeral: string | undefined;
    for (const e of all) {
      const [command, exitComment] = e.command.split(/\s+# /);
      let want = e.output.map((l) => l.replace(/\s+# exit (\d+)$/, ''));
      const wantCode = Number(/# exit (\d+)$/.exec(e.output.join('\n'))?.[1] ?? 0);
      expect(exitComment).toBeUndefined();
      const r = await runCli(portpubArgs(command!), 15_000, { env, cwd: dir });
      expect(r.code, `${command}\n${r.stderr}`).toBe(wantCode);
      const got = (wantCode === 0 ? r.stdout : r.stderr).split('\n').filter((l) => l !== '');
      // 8080 is this test's web port; 32768 is the kernel's ephemeral pick, the same each time.
      want = want.map((l) => l.replaceAll(':8080', `:${web}`).replaceAll('"8080"', `"${web}"`));
      const eph = /127\.0\.0\.1:(\d+)$/.exec(got.find((l) => l.startsWith('3000/tcp')) ?? '');
      ephemeral ??= eph?.[1];
      if (ephemeral) want = want.map((l) => l.replaceAll('32768', ephemeral!));
      if (want.length === 1 && want[0]!.includes('[...]')) {
        // The JSON example elides the 80/tcp list: compare what it shows, up to the elision.
        expect(got).toHaveLength(1);
        expect(got[0]!.startsWith(want[0]!.slice(0, want[0]!.indexOf('[...]')))).toBe(true);
        expect(JSON.parse(got[0]!)).toHaveProperty('80/tcp');
      } else {
        expect(got, command).toEqual(want);
      }
    }
    expect(ephemeral).toBeDefined();

    // portpub reload, after the edit the README describes.
    const [reloadEx] = examples(fenced(section('Compose files: `portpub up`'), 'console')[0]!);
    expect(reloadEx!.command).toBe('portpub reload');
    const added = "- '127.0.0.1::4000'";
    expect(section('Compose files: `portpub up`')).toContain(`adding \`${added}\` to`);
    const file = join(dir, 'portpub.yaml');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(/^( +)(- '127\.0\.0\.1::3000'.*)$/m, `$1$2\n$1${added}`));
    expect(readFileSync(file, 'utf8')).toContain(added);
    const reload = await runCli(portpubArgs(reloadEx!.command), 30_000, { env, cwd: dir });
    expect(reload.code, reload.stderr).toBe(0);
    // Variable: the pid and the file's directory.
    const norm = (l: string) =>
      l.replace(/pid \d+ \(.*\/portpub\.yaml\)$/, 'pid PID (DIR/portpub.yaml)');
    expect(
      reload.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map(norm),
    ).toEqual(reloadEx!.output.map(norm));
    await run.stop();
  }, 60_000);

  it('portpub up -f docker-compose.yml --target-for db=127.0.0.1 serves an existing compose file', async () => {
    const { env } = useState();
    const dir = tempDir();
    const line = fenced(section('Compose files: `portpub up`'), 'sh')[0]!
      .split('\n')
      .find((l) => l.includes('--target-for'))!;
    const args = portpubArgs(line.replace(/\s+#.*$/, ''));
    expect(args).toEqual(['up', '-f', 'docker-compose.yml', '--target-for', 'db=127.0.0.1']);
    // A docker-compose.yml as found in the wild: images, volumes, networks; db's port is free.
    const db = await freePort();
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      'services:\n  db:\n    image: postgres:16\n    volumes: ["data:/var/lib/postgresql/data"]\n' +
        `    ports: ["127.0.0.1:${db}:5432"]\n    networks: [back]\n` +
        'volumes:\n  data: {}\nnetworks:\n  back: {}\n',
    );
    const run = await startCli(args, 1, 15_000, { env, cwd: dir });
    expect(run.lines).toEqual([`db: 5432/tcp -> 127.0.0.1:${db}`]);
    // Keys portpub does not serve (image, volumes, networks) are ignored, as the README says,
    // without failing the start.
    await run.stop();
  }, 30_000);
});

describe('README: Links', () => {
  it('portpub env db --parent web2 --format dotenv prints the README lines', async () => {
    const { env } = useState();
    const e = examples(
      fenced(section('Links: `portpub env` and `portpub run --link`'), 'sh')[0]!,
    )[0]!;
    expect(e.command).toBe('portpub env db --parent web2 --format dotenv');
    // db is a named plain run publishing target port 5432 of 127.0.0.1, as the README's db.
    const run = await startCli(
      ['--name', 'db', '-p', '127.0.0.1::5432', '-t', '127.0.0.1'],
      1,
      15_000,
      { env },
    );
    const r = await runCli(portpubArgs(e.command), 15_000, { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(e.output.map((l) => `${l}\n`).join(''));
    await run.stop();
  }, 30_000);
});

/** onPath says whether a program is on PATH, as the shell that runs the README would find it. */
function onPath(program: string): boolean {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .some((dir) => dir !== '' && existsSync(join(dir, program)));
}

/**
 * netnsMissing names what `portpub run` needs and this host lacks: unshare(1), and user
 * namespaces where portpub wants one (every user but root). Under CI=true needs() fails instead.
 */
function netnsMissing(): (string | false)[] {
  const problem = wantUserNamespace() ? userNamespaceProblem() : undefined;
  return [
    !onPath('unshare') && 'unshare (util-linux)',
    problem !== undefined && `unprivileged user namespaces (${problem.message})`,
  ];
}

/** run_ runs a program (a shell, here) to its end within 15 s; a non-zero exit rejects. */
const run_ = (file: string, args: string[], env: NodeJS.ProcessEnv) =>
  promisify(execFile)(file, args, { env, timeout: 15_000 });

describe('README: the quick start', () => {
  it('node bin/portpub.js -p 127.0.0.1:8080:3000 publishes the service, Ctrl-C stops it', async () => {
    const block = fenced(README.slice(0, README.indexOf('\n## ')), 'sh')[0]!;
    const [serveLine, testLine] = block.split('\n');
    // `npm ci` (the install) and `npm test` (this very suite) are what CI runs around this test.
    expect(testLine).toBe('npm ci && npm test');
    const command = serveLine!.split(' && ')[1]!;
    const w = words(command);
    expect(w.slice(0, 2)).toEqual(['node', 'bin/portpub.js']);
    expect(w.slice(2)).toEqual(['-p', '127.0.0.1:8080:3000']);
    // The README's 8080 and 3000 become a free port and an echo server standing for the service.
    const { env } = useState();
    const echo = await echoServer();
    const host = await freePort();
    const run = await startCli(['-p', `127.0.0.1:${host}:${echo.port}`], 1, 15_000, { env });
    expect(run.lines).toEqual([`${echo.port}/tcp -> 127.0.0.1:${host}`]);
    const client = await open(host);
    expect(await roundTrip(client, 'hello')).toBe('hello');
    client.destroy(); // nothing left to drain: Ctrl-C stops at once
    const stopped = await run.stop('SIGINT');
    expect(stopped.code).toBe(0);
  }, 30_000);
});

describe('README: Links, eval and run --link', () => {
  const block = () => fenced(section('Links: `portpub env` and `portpub run --link`'), 'sh')[0]!;

  /** bin is a PATH directory where `portpub` is the built CLI (and `extra` more scripts). */
  function bin(extra: Record<string, string> = {}): string {
    const dir = tempDir();
    const scripts = { portpub: `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, ...extra };
    for (const [name, text] of Object.entries(scripts)) {
      writeFileSync(join(dir, name), text, { mode: 0o755 });
    }
    return dir;
  }

  it('eval "$(portpub env db)" sets the link variables in the shell', async () => {
    const { env } = useState();
    const line = examples(block()).find((e) => e.command.startsWith('eval '))!;
    expect(line.command).toBe('eval "$(portpub env db)"');
    const db = await startCli(['--name', 'db', '-p', '127.0.0.1::5432'], 1, 15_000, { env });
    const r = await run_(
      '/bin/sh',
      ['-c', `${line.command}; echo "$DB_PORT|$DB_PORT_5432_TCP_ADDR|$DB_NAME"`],
      { ...process.env, ...env, PATH: `${bin()}${delimiter}${process.env.PATH ?? ''}` },
    );
    expect(r.stdout).toBe('tcp://127.0.0.1:5432|127.0.0.1|/portpub/db\n');
    await db.stop();
  }, 30_000);

  it("portpub run --link db:pg -- sh -c 'psql -h ... -p ...' reaches db under the alias", async (t) => {
    needs(t, netnsMissing());
    const { env } = useState();
    const line = examples(block()).find((e) => e.command.startsWith('portpub run --link'))!;
    expect(line.command).toContain('--link db:pg');
    // db: an echo server on 127.0.0.1, published by a named portpub; the README's 5432 is its
    // port. psql: a stand-in that connects to -h HOST -p PORT and says what came back.
    const echo = await echoServer();
    const run = await startCli(['--name', 'db', '-p', `127.0.0.1::${echo.port}`], 1, 15_000, {
      env,
    });
    const psql =
      '#!/bin/sh\n' +
      `exec "${process.execPath}" -e "const s=require('net').connect(+process.argv[4],process.argv[2]);` +
      `s.on('connect',()=>s.write('ping'));s.on('data',d=>{console.log(process.argv[2]+' '+d);s.end()})" -- "$@"\n`;
    // `portpub run` gives the command Docker's default PATH, so the stand-in goes by its path.
    const psqlPath = join(bin({ psql }), 'psql');
    const args = portpubArgs(
      line.command.replaceAll('5432', String(echo.port)).replace("'psql ", `'${psqlPath} `),
    );
    expect(args.at(-1)).toContain(psqlPath);
    const r = await runCli(args, 30_000, { env });
    expect(r.code, r.stderr).toBe(0);
    // Inside its namespace the link address is db's own 127.x address; the bytes came back.
    expect(r.stdout).toMatch(/^127\.\d+\.\d+\.\d+ ping\n$/);
    await run.stop();
  }, 60_000);
});

describe('README: A network of its own', () => {
  const text = section('A network of its own: `portpub run`');
  const [first, second] = fenced(text, 'sh');
  const ID = /^[0-9a-f]{64}$/;

  it('run -d python3 http.server, curl, ps', async (t) => {
    needs(t, [...netnsMissing(), !onPath('python3') && 'python3']);
    const { env } = useState();
    const cwd = tempDir();
    const [runEx, curlEx, psEx] = examples(first!);
    const hostPort = await freePort();
    // The README's host port 5000 becomes a port this test found free; the namespace keeps 5000.
    const args = portpubArgs(runEx!.command).map((a) =>
      a === '5000:5000' ? `${hostPort}:5000` : a,
    );
    expect(args).toContain(`${hostPort}:5000`);
    onTestFinished(async () => {
      await runCli(['stop', '-t', '1', 'web'], 20_000, { env }).catch(() => undefined);
    });
    const r = await runCli(args, 30_000, { env, cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(runEx!.output[0]).toMatch(ID);
    const id = r.stdout.trim();
    expect(id).toMatch(ID);

    expect(curlEx!.command).toContain('http://127.0.0.1:5000/');
    let status = 0;
    await waitFor(
      async () => {
        // Each attempt has its own deadline: one that hangs must not eat the test's.
        status = await fetch(`http://127.0.0.1:${hostPort}/`, { signal: AbortSignal.timeout(3000) })
          .then((res) => res.status)
          .catch(() => 0);
        return status !== 0;
      },
      'the http.server to answer',
      15_000,
    );
    expect(String(status)).toBe(curlEx!.output[0]);

    const ps = await runCli(portpubArgs(psEx!.command), 15_000, { env });
    expect(ps.code, ps.stderr).toBe(0);
    const got = ps.stdout.split('\n').filter((l) => l !== '');
    expect(got).toHaveLength(psEx!.output.length);
    expect(cells(got[0]!)).toEqual(cells(psEx!.output[0]!));
    // Variable cells: the id (12 hex), the ages ("5 seconds ago", "Up 4 seconds"), the host port.
    const norm = (row: string[], short: string, port: string) =>
      row.map((c) =>
        c
          .replace(new RegExp(`^${short}$`), 'ID')
          .replace(/^(?:\d+|Less than a) seconds? ago$/, 'AGO')
          .replace(/^Up (?:\d+|Less than a) seconds?$/, 'UP')
          .replaceAll(`:${port}->`, ':PORT->'),
      );
    expect(norm(cells(got[1]!), id.slice(0, 12), String(hostPort))).toEqual(
      norm(cells(psEx!.output[1]!), runEx!.output[0]!.slice(0, 12), '5000'),
    );
  }, 90_000);

  it('run -d redis, run --link db: env, getent and PING; stop and rm', async (t) => {
    needs(t, [
      ...netnsMissing(),
      !onPath('redis-server') && 'redis-server',
      !onPath('redis-cli') && 'redis-cli',
      !onPath('getent') && 'getent',
    ]);
    const { env } = useState();
    const cwd = tempDir();
    const [dbEx, webEx, stopEx] = examples(second!);
    onTestFinished(async () => {
      await runCli(['stop', '-t', '1', 'db'], 20_000, { env }).catch(() => undefined);
    });
    const r = await runCli(portpubArgs(dbEx!.command), 30_000, { env, cwd });
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(ID);
    expect(dbEx!.output[0]).toMatch(ID);
    // -d returns once redis started, not once it listens: wait for its own ready line.
    await waitFor(
      async () => {
        const logs = await runCli(['logs', 'db'], 15_000, { env });
        return logs.stdout.includes('Ready to accept connections');
      },
      'redis to be ready',
      20_000,
    );

    const web = await runCli(portpubArgs(webEx!.command), 30_000, { env, cwd });
    expect(web.code, web.stderr).toBe(0);
    const got = web.stdout.split('\n').filter((l) => l !== '');
    const ip = /^DB_PORT_6379_TCP_ADDR=(127\.\d+\.\d+\.\d+)$/m.exec(web.stdout)?.[1];
    expect(ip, web.stdout).toBeDefined();
    const readmeIp = /^DB_PORT_6379_TCP_ADDR=(\S+)$/m.exec(webEx!.output.join('\n'))![1]!;
    // Variable: db's address (derived from its id), its short id in /etc/hosts, getent's padding.
    const norm = (lines: string[], addr: string, short: string) =>
      lines.map((l) =>
        l
          .replaceAll(addr, 'ADDR')
          .replaceAll(short, 'SHORTID')
          // getent pads the address to 15 columns, so the gap follows the address's length.
          .replace(/^ADDR +db /, 'ADDR db '),
      );
    expect(norm(got, ip!, id.slice(0, 12))).toEqual(
      norm(webEx!.output, readmeIp, dbEx!.output[0]!.slice(0, 12)),
    );

    for (const command of stopEx!.command.split(' && ')) {
      const s = await runCli(portpubArgs(command), 30_000, { env });
      expect(s.code, `${command}\n${s.stderr}`).toBe(0);
    }
  }, 120_000);
});

describe('README: Watching it flow', () => {
  const text = section('Watching it flow');
  const [statsBlock, topBlock] = fenced(text, 'sh');

  it('stats --no-stream shows one row per binding in the README columns', async () => {
    const { env } = useState();
    const ex = examples(statsBlock!)[0]!;
    const target = await echoServer();
    const run = await startCli(['--name', 'web', '-p', `127.0.0.1::${target.port}`], 1, 15_000, {
      env,
    });
    const hostPort = Number(/:(\d+)$/.exec(run.lines[0]!)![1]);
    const sock = await open(hostPort);
    // 12.3kB each way, as the README row shows: 12,300 bytes echoed.
    const payload = 'x'.repeat(12_300);
    expect((await roundTrip(sock, payload, 10_000)).length).toBe(payload.length);
    const readmeRow = cells(ex.output[1]!);
    const readmeBinding = /^127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+)$/.exec(readmeRow[1]!)!;
    // Variable: the ephemeral host port and target port; the per-second rates.
    const norm = (row: string[], host: string, tgt: string) =>
      row.map((c) =>
        c
          .replace(`127.0.0.1:${host} -> 127.0.0.1:${tgt}`, 'BINDING')
          .replace(/^\d+(?:\.\d+)?[kMG]?B\/s$/, 'RATE'),
      );
    let got: string[] = [];
    await waitFor(
      async () => {
        const r = await runCli(portpubArgs(ex.command), 15_000, { env });
        got = r.stdout.split('\n').filter((l) => l !== '');
        return r.code === 0 && got.length === 2 && cells(got[1]!)[5] === '12.3kB';
      },
      'stats to count the echoed bytes',
      10_000,
    );
    expect(got).toHaveLength(ex.output.length);
    expect(cells(got[0]!)).toEqual(cells(ex.output[0]!));
    expect(norm(cells(got[1]!), String(hostPort), String(target.port))).toEqual(
      norm(readmeRow, readmeBinding[1]!, readmeBinding[2]!),
    );
    // Closed first, so stopping does not wait out the drain timeout for it.
    sock.destroy();
    await run.stop();
  }, 40_000);

  it('top dns --no-stream shows the UDP flow in the README columns', async () => {
    const { env } = useState();
    const ex = examples(topBlock!)[0]!;
    const target = createSocket('udp4');
    onTestFinished(() => void target.close());
    target.on('message', (m, r) => target.send(m, r.port, r.address));
    await new Promise<void>((resolve) => target.bind(0, '127.0.0.1', resolve));
    const tport = target.address().port;
    const run = await startCli(['--name', 'dns', '-p', `127.0.0.1::${tport}/udp`], 1, 15_000, {
      env,
    });
    const hostPort = Number(/:(\d+)$/.exec(run.lines[0]!)![1]);
    const client = createSocket('udp4');
    onTestFinished(() => void client.close());
    const reply = new Promise<string>((resolve) =>
      client.once('message', (m) => resolve(m.toString())),
    );
    client.send('hello', hostPort, '127.0.0.1');
    expect(await withTimeout(reply, 5000, 'the udp echo')).toBe('hello');
    const cport = client.address().port;

    const readmeRow = cells(ex.output[1]!);
    // Variable: client port, host port, target-side port, target port, age and idle times.
    const norm = (row: string[]) =>
      row.map((c) =>
        c
          .replace(/^127\.0\.0\.1:\d+$/, '127.0.0.1:PORT')
          .replace(/^127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+$/, 'SIDE')
          .replace(/^\d+(?:\.\d+)?(?:ms|s|m)$/, 'DURATION'),
      );
    let got: string[] = [];
    await waitFor(
      async () => {
        const r = await runCli(portpubArgs(ex.command), 15_000, { env });
        got = r.stdout.split('\n').filter((l) => l !== '');
        return r.code === 0 && got.length === 2 && cells(got[1]!)[7] === '5B';
      },
      'top to count the echoed datagram',
      10_000,
    );
    expect(got).toHaveLength(ex.output.length);
    expect(cells(got[0]!)).toEqual(cells(ex.output[0]!));
    const row = cells(got[1]!);
    expect(row[2]).toBe(`127.0.0.1:${cport}`);
    expect(row[3]).toBe(`127.0.0.1:${hostPort}`);
    expect(row[4]).toMatch(new RegExp(`^127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${tport}$`));
    expect(norm(row)).toEqual(norm(readmeRow));
    await run.stop();
  }, 40_000);
});

describe('README: Engines', () => {
  // The README shows the native engine's line: where the addon did not build (and nothing
  // requires it), that example is not this machine's.
  it.skipIf(!nativeLoaded && !nativeRequired)(
    'the startup line reads as the README example',
    async () => {
      const { env } = useState();
      const text = section('Engines: native where it builds, TypeScript everywhere');
      const shown = /`(engine: [^`]+)`/.exec(text)![1]!;
      const target = await echoServer();
      const run = await startCli(['-p', `127.0.0.1::${target.port}`], 1, 15_000, { env });
      await waitFor(() => run.stderr().includes('"engine: '), 'the engine line', 5000);
      const msg = run
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { msg: string }).msg)
        .find((m) => m.startsWith('engine: '))!;
      // Variable: the checkout's path, which the README elides as `...`.
      expect(
        msg.replace(/\(\/[^;()]*(\/native\/build\/Release\/portpub_engine\.node)/, '(...$1'),
      ).toBe(shown);
      await run.stop();
    },
    30_000,
  );
});
