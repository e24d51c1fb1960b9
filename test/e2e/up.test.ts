// End-to-end: `portpub up` serving a docker-compose.yml, `portpub port` asking where things
// landed, and SIGHUP reloads that keep live connections on kept mappings.
import { spawn, spawnSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  loadComposeProject,
  loadComposeProjectOffThread,
  projectRequests,
} from '../../src/publish/compose-load.js';
import { BIN, runCli, startCli, withTimeout, type Running } from '../helpers/cli.js';
import { echoServer, freePort, roundTrip } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';

const tcpEcho = async (): Promise<number> => (await echoServer()).port;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-up-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function udpEcho(): Promise<number> {
  const s = createSocket('udp4');
  onTestFinished(() => void s.close());
  s.on('message', (msg, r) => s.send(msg, r.port, r.address));
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s.address().port;
}

/** open connects and returns an echo function on the live connection. */
async function open(port: number): Promise<{ sock: Socket; echo(t: string): Promise<string> }> {
  const sock = connect({ host: '127.0.0.1', port });
  onTestFinished(() => void sock.destroy());
  sock.setEncoding('utf8');
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    }),
    5000,
    `connect to ${port}`,
  );
  const echo = (text: string) => roundTrip(sock, text, 5000);
  return { sock, echo };
}

async function udpRoundTrip(port: number, text: string): Promise<string> {
  const c: UdpSocket = createSocket('udp4');
  onTestFinished(() => void c.close());
  const got = new Promise<string>((resolve) => c.once('message', (m) => resolve(m.toString())));
  c.send(text, port, '127.0.0.1');
  return withTimeout(got, 5000, `udp echo via ${port}`);
}

/** waitForLog resolves once portpub's stderr has a JSON line with this msg (count-th one). */
async function waitForLog(run: Running, msg: string, count = 1): Promise<void> {
  await withTimeout(
    new Promise<void>((resolve) => {
      const poll = () => {
        const n = run
          .stderr()
          .split('\n')
          .filter((l) => l.includes(`"msg":"${msg}"`)).length;
        if (n >= count) resolve();
        else setTimeout(poll, 20);
      };
      poll();
    }),
    10_000,
    `log "${msg}"`,
  );
}

describe('portpub up', () => {
  it('serves a docker-compose.yml; portpub port reports it; SIGHUP reloads', async () => {
    const dir = tempDir();
    const env = { XDG_RUNTIME_DIR: dir };
    const web = await tcpEcho();
    const dns = await udpEcho();
    const fixed = await freePort();
    const file = join(dir, 'docker-compose.yml');
    const compose = (extra: string) => `
services:
  web:
    image: nginx
    ports:
      - "127.0.0.1:${fixed}:${web}"
      - target: ${web}
        host_ip: 127.0.0.1
        protocol: tcp
${extra}
  dns:
    image: dnsmasq
    ports:
      - "127.0.0.1::${dns}/udp"
`;
    writeFileSync(file, compose(''));
    const run = await startCli(['up', '-f', file], 3, 15_000, { env });
    const lines = run.lines;
    expect(lines).toHaveLength(3);
    const ephemeralLine = lines.find((l) => l.startsWith('web: ') && !l.endsWith(`:${fixed}`))!;
    const ephemeral = Number(/:(\d+)$/.exec(ephemeralLine)![1]);
    expect(lines).toContain(`web: ${web}/tcp -> 127.0.0.1:${fixed}`);
    const dnsLine = lines.find((l) => l.startsWith('dns: '))!;
    const dnsPort = Number(/:(\d+)$/.exec(dnsLine)![1]);
    expect(dnsLine).toBe(`dns: ${dns}/udp -> 127.0.0.1:${dnsPort}`);

    // traffic flows on every binding
    const kept = await open(fixed);
    expect(await kept.echo('fixed')).toBe('fixed');
    const dropped = await open(ephemeral);
    expect(await dropped.echo('ephemeral')).toBe('ephemeral');
    expect(await udpRoundTrip(dnsPort, 'dns?')).toBe('dns?');

    // portpub port NAME prints what docker port prints
    const port = await runCli(['port', 'web'], 15_000, { env });
    expect(port.code).toBe(0);
    expect(port.stdout.split('\n').filter(Boolean).sort()).toEqual(
      [`${web}/tcp -> 127.0.0.1:${fixed}`, `${web}/tcp -> 127.0.0.1:${ephemeral}`].sort(),
    );
    const one = await runCli(['port', 'dns', `${dns}/udp`], 15_000, { env });
    expect(one.stdout).toBe(`127.0.0.1:${dnsPort}\n`);
    const none = await runCli(['port', 'dns', `${dns}`], 15_000, { env });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no public port '${dns}' published for dns`);

    // link variables for the service, and a program run with them
    const vars = await runCli(['env', 'dns', '--parent', 'app', '--format', 'dotenv'], 15_000, {
      env,
    });
    expect(vars.stdout.split('\n')).toEqual([
      `DNS_PORT=udp://127.0.0.1:${dns}`,
      `DNS_PORT_${dns}_UDP=udp://127.0.0.1:${dns}`,
      `DNS_PORT_${dns}_UDP_ADDR=127.0.0.1`,
      `DNS_PORT_${dns}_UDP_PORT=${dns}`,
      `DNS_PORT_${dns}_UDP_PROTO=udp`,
      'DNS_NAME=/app/dns',
      '',
    ]);
    const linked = await runCli(
      ['run', '--link', 'dns:resolver', '--published', '--', 'sh', '-c', 'echo "$RESOLVER_PORT"'],
      15_000,
      { env },
    );
    expect(linked.code).toBe(0);
    expect(linked.stdout).toBe(`udp://127.0.0.1:${dnsPort}\n`);

    // reload: drop the long-syntax mapping, add a fixed one, keep the first
    const added = await freePort();
    writeFileSync(
      file,
      compose('').replace(
        / {6}- target: \d+\n {8}host_ip: 127.0.0.1\n {8}protocol: tcp\n/,
        `      - "127.0.0.1:${added}:${web}"\n`,
      ),
    );
    const reload = await runCli(['reload'], 15_000, { env });
    expect(reload.stdout).toContain(`sent SIGHUP to portpub pid ${run.child.pid}`);
    await waitForLog(run, 'reloaded');
    expect(await kept.echo('kept through the reload')).toBe('kept through the reload');
    expect(await dropped.echo('draining')).toBe('draining');
    expect(await (await open(added)).echo('added')).toBe('added');
    // The dropped mapping's port is not probed: once released, an ephemeral port may go to a
    // portpub of a test running beside this one (each process allocates from the same range).
    // What this process serves is what `portpub port` reports.
    const after = await runCli(['port', 'web'], 15_000, { env });
    expect(after.stdout.split('\n').filter(Boolean).sort()).toEqual(
      [`${web}/tcp -> 127.0.0.1:${fixed}`, `${web}/tcp -> 127.0.0.1:${added}`].sort(),
    );

    // a broken file keeps the running configuration
    writeFileSync(file, compose('      - "127.0.0.1:1:2/xyz"'));
    run.child.kill('SIGHUP');
    await waitForLog(run, 'reload failed: keeping the running configuration');
    expect(run.stderr()).toContain('invalid proto: xyz');
    expect(await kept.echo('still')).toBe('still');

    kept.sock.end();
    dropped.sock.end();
    expect((await run.stop()).code).toBe(0);
    // the state file is gone with the process
    const gone = await runCli(['port', 'web'], 15_000, { env });
    expect(gone.code).toBe(1);
  });

  it('rejects a bad file before binding anything (exit 2)', async () => {
    const dir = tempDir();
    const file = join(dir, 'portpub.yaml');
    writeFileSync(file, 'services:\n  web:\n    ports:\n      - "80/xyz"\n');
    const r = await runCli(['up', '-f', file], 15_000, { env: { XDG_RUNTIME_DIR: dir } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid proto: xyz');
    expect(r.stderr).toContain('services.web.ports[0]');
  });

  it('finds portpub.yaml in the working directory and warns about the base-60 trap', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'portpub.yaml'), 'services:\n  ssh:\n    ports:\n      - 22:22\n');
    const r = await runCli(['up', '--dry-run', '--json'], 15_000, {
      cwd: dir,
      env: { XDG_RUNTIME_DIR: dir },
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      mappings: [
        {
          name: 'ssh',
          hostIp: '',
          hostPort: '22',
          targetHost: '127.0.0.1',
          targetPort: 22,
          protocol: 'tcp',
        },
      ],
    });
    expect(r.stderr).toContain('1342');
  });

  it('reads -f - from standard input, the working directory being the project directory', () => {
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), 'P=7070\n');
    const r = spawnSync(process.execPath, [BIN, 'up', '-f', '-', '--dry-run', '--json'], {
      cwd: dir,
      input: 'services:\n  web:\n    ports: ["${P}:80"]\n',
      encoding: 'utf8',
      timeout: 15_000,
      env: { ...process.env, XDG_RUNTIME_DIR: dir },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ mappings: [{ name: 'web', hostPort: '7070' }] });
  });

  it('with no config file says what it looked for (exit 2)', async () => {
    const dir = tempDir();
    const r = await runCli(['up'], 15_000, { cwd: dir, env: { XDG_RUNTIME_DIR: dir } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('portpub.yaml');
  });
});

describe('reading a config file off the event loop (issue 11 defect 5)', () => {
  it('keeps the event loop turning while a large file is parsed in the worker', async () => {
    const dir = tempDir();
    const file = join(dir, 'compose.yaml');
    // About 2.5 MB of ports: seconds of YAML parsing, all of it in the worker.
    const rows = Array.from(
      { length: 65535 },
      (_, i) => `      - "127.0.0.1:${i + 1}:${i + 1}/udp"`,
    );
    writeFileSync(file, `services:\n  all:\n    ports:\n${rows.join('\n')}\n`);
    const worker = new URL('../../dist/publish/compose-worker.js', import.meta.url);
    let turns = 0;
    let done = false;
    const spin = () => {
      turns++;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    const project = await loadComposeProjectOffThread({ cwd: dir, files: [file], env: {} }, worker);
    done = true;
    expect(project.services[0]!.mappings).toHaveLength(65535);
    // Parsed in this thread, the loop could not turn at all until the parse had finished.
    expect(turns).toBeGreaterThan(100);
  }, 60_000);

  it('answers from the worker with the same project as read in this thread', async () => {
    const dir = tempDir();
    const file = join(dir, 'compose.yaml');
    writeFileSync(
      file,
      [
        'services:',
        '  web:',
        '    container_name: site',
        '    ports:',
        '      - "8080:80"',
        '      - "127.0.0.1::81/udp"',
        '      - "[::1]:9000-9001:90-91"',
        '      - { target: 82, published: "8082", name: admin }',
        '    expose: ["3000-3002", "53/udp"]',
        '  db:',
        '    ports: ["5432"]',
        '',
      ].join('\n'),
    );
    const worker = new URL('../../dist/publish/compose-worker.js', import.meta.url);
    const opts = { cwd: dir, files: [file], env: {} };
    const off = await loadComposeProjectOffThread(opts, worker);
    expect(off).toEqual(loadComposeProject(opts));
    expect(projectRequests(off)).toEqual(projectRequests(loadComposeProject(opts)));
  });

  it('reports a bad file from the worker as the same usage error', async () => {
    const dir = tempDir();
    const file = join(dir, 'compose.yaml');
    writeFileSync(file, 'services:\n  web:\n    ports: ["80/xyz"]\n');
    const worker = new URL('../../dist/publish/compose-worker.js', import.meta.url);
    await expect(
      loadComposeProjectOffThread({ cwd: dir, files: [file], env: {} }, worker),
    ).rejects.toThrow(
      expect.objectContaining({
        code: 'ERR_USAGE',
        exitCode: 2,
        message: `${file}: services.web.ports[0]: invalid proto: xyz`,
      }),
    );
  });
});

describe('state directory and reload targets (issue 11 defects 7 and 8)', () => {
  it('reload --pid never signals a process its state file cannot prove is a portpub', async () => {
    const dir = tempDir();
    // An unrelated process, and a state file claiming its pid without start time or command line
    // (a stale file whose pid was reused): SIGHUP would kill it.
    const victim = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], {
      stdio: 'ignore',
    });
    onTestFinished(() => void victim.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      victim.once('spawn', resolve);
      victim.once('error', reject);
    });
    const pid = victim.pid!;
    mkdirSync(join(dir, 'portpub'), { mode: 0o700 });
    writeFileSync(
      join(dir, 'portpub', `${pid}.json`),
      JSON.stringify({
        pid,
        startedAt: new Date().toISOString(),
        configFile: '/x.yaml',
        bindings: [],
      }),
    );
    const r = await runCli(['reload', '--pid', String(pid)], 15_000, {
      env: { XDG_RUNTIME_DIR: dir },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`pid ${pid} is not a portpub that can be proven`);
    expect(victim.exitCode).toBeNull();
    expect(victim.signalCode).toBeNull();
    expect(() => process.kill(pid, 0)).not.toThrow();
  });

  it.runIf(process.getuid?.() === 0)(
    "refuses another user's state directory with what to do, and no stack trace",
    async () => {
      const dir = tempDir();
      const taken = join(dir, 'taken');
      mkdirSync(taken, { mode: 0o700 });
      chownSync(taken, 4242, 4242);
      const env = { PORTPUB_STATE_DIR: taken, XDG_RUNTIME_DIR: '' };
      const port = await runCli(['port'], 15_000, { env });
      expect(port.code).toBe(1);
      expect(port.stderr).toContain(`refusing state directory ${taken}: owned by uid 4242, not 0`);
      expect(port.stderr).toContain('PORTPUB_STATE_DIR to a directory only you can write');
      expect(port.stderr).not.toMatch(/\n\s+at /);

      const target = await tcpEcho();
      const run = await startCli(
        ['-p', `127.0.0.1:0:${target}`, '--log-format', 'json'],
        1,
        15_000,
        {
          env,
        },
      );
      await waitForLog(run, 'cannot write the state file: `portpub port` will not see this run');
      const done = await run.stop('SIGTERM');
      expect(done.stderr).toContain('Another user may have created it');
      expect(done.stderr).not.toContain('"stack"');
    },
  );
});

describe('up and its own sockets; a reload to no ports (issue 13 defects 1 and 2)', () => {
  it('refuses a service whose target is its own published socket (exit 2); --dry-run says so', async () => {
    const dir = tempDir();
    const p = await reservePorts(1);
    const file = join(dir, 'compose.yaml');
    writeFileSync(file, `services:\n  web:\n    ports:\n      - "${p}:${p}"\n`);
    const env = { XDG_RUNTIME_DIR: dir };
    const r = await runCli(['up', '-f', file], 15_000, { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `service web: ${p}:${p}/tcp: the target 127.0.0.1:${p}/tcp is portpub's own listening socket 0.0.0.0:${p}/tcp`,
    );
    expect(r.stderr).toContain('--target-for web=127.0.0.2');
    const dry = await runCli(['up', '-f', file, '--dry-run'], 15_000, { env });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`web: ${p}/tcp -> 0.0.0.0:${p} => 127.0.0.1:${p}`);
    expect(dry.stderr).toContain("is portpub's own listening socket");
  });

  it('keeps running after a reload removes the last port, and publishes again later', async () => {
    const dir = tempDir();
    const env = { XDG_RUNTIME_DIR: dir };
    const web = await tcpEcho();
    const file = join(dir, 'compose.yaml');
    const withPort = `services:\n  web:\n    ports:\n      - "127.0.0.1::${web}"\n`;
    writeFileSync(file, withPort);
    const run = await startCli(['up', '-f', file, '--log-format', 'json'], 1, 15_000, { env });
    writeFileSync(file, 'services:\n  web:\n    image: nginx\n');
    run.child.kill('SIGHUP');
    await waitForLog(
      run,
      'nothing to publish after the reload: still running, and a reload that adds ports will publish them',
    );
    await waitForLog(run, 'reloaded');
    writeFileSync(file, withPort);
    run.child.kill('SIGHUP');
    await waitForLog(run, 'reloaded', 2);
    const port = await runCli(['port', 'web', String(web)], 15_000, { env });
    expect(port.code).toBe(0);
    const published = Number(/:(\d+)$/.exec(port.stdout.trim())![1]);
    const conn = await open(published);
    expect(await conn.echo('back')).toBe('back');
    const done = await run.stop('SIGTERM');
    expect(done.code).toBe(0);
  });
});

/**
 * upWithLiveConnection runs `up` on a file of one mapping (the TypeScript relay: the native engine
 * relays off the event loop whatever happens on it) and opens a connection through it that has
 * echoed once: what the reload tests below watch while the file grows.
 */
async function upWithLiveConnection() {
  const dir = tempDir();
  const env = { XDG_RUNTIME_DIR: dir };
  const web = await tcpEcho();
  const file = join(dir, 'compose.yaml');
  const ports = `services:\n  web:\n    ports:\n      - "127.0.0.1::${web}"\n`;
  writeFileSync(file, ports);
  const run = await startCli(
    ['up', '-f', file, '--log-format', 'json', '--engine', 'js'],
    1,
    15_000,
    {
      env,
    },
  );
  const published = Number(/:(\d+)$/.exec(run.lines[0]!)![1]);
  const conn = await open(published);
  expect(await conn.echo('before')).toBe('before');
  return { run, file, ports, conn };
}

describe('a SIGHUP reload of a large file (issue 11 defect 5)', () => {
  it('keeps relaying on a live connection while the file is parsed', async () => {
    const { run, file, ports, conn } = await upWithLiveConnection();

    // The same mapping, and a bulky x- extension: seconds of YAML parsing, nothing to rebind.
    const bulk = Array.from({ length: 120_000 }, (_, i) => `  - item-${i}`).join('\n');
    writeFileSync(file, `${ports}x-bulk:\n${bulk}\n`);
    run.child.kill('SIGHUP');
    await waitForLog(run, 'SIGHUP: reloading the configuration');
    let during = 0;
    const reloaded = () => run.stderr().includes('"msg":"reloaded"');
    for (let i = 0; i < 100_000 && !reloaded(); i++) {
      expect(await conn.echo(`r${i}`)).toBe(`r${i}`);
      if (!reloaded()) during++;
    }
    // Parsed on the event loop, not one round trip finished before the parse did (0 measured);
    // in the worker, tens of thousands did.
    expect(during).toBeGreaterThan(100);
    expect(await conn.echo('after')).toBe('after');
    expect(run.stderr()).toContain('"kept":1');
  }, 60_000);

  // The worker's answer used to arrive as a structured clone of every object of the project,
  // which the event loop read in one go (65 ms for 65,535 mappings, gap.mjs), and the requests
  // and reload keys were built in one go after it. Now the answer is packed integer columns,
  // rebuilt and keyed a few thousand at a time. 131,070 expose: ports here (from two ranges,
  // nothing to bind): a live connection goes on relaying, round trip after round trip, while the
  // reload is applied. How long the longest gap between round trips is, is a timing goal: it is
  // measured by the benchmark in commit f7fdaca, not bounded here. A bound of 200 ms here did not
  // separate before from after (170-197 ms before, 72-116 ms after) and failed once at 223 ms
  // on the loaded CI machine, where a round trip alone can wait tens of milliseconds for a CPU.
  it('keeps a live connection relaying while a reload of many ports is applied', async () => {
    const { run, file, ports, conn } = await upWithLiveConnection();

    writeFileSync(file, `${ports}    expose: ["1-65535", "1-65535/udp"]\n`);
    run.child.kill('SIGHUP');
    await waitForLog(run, 'SIGHUP: reloading the configuration');
    const reloaded = () => run.stderr().includes('"msg":"reloaded"');
    let trips = 0;
    for (let i = 0; i < 1_000_000 && !reloaded(); i++) {
      expect(await conn.echo(`r${i}`)).toBe(`r${i}`);
      trips++;
    }
    expect(run.stderr()).toContain('"kept":1');
    expect(trips).toBeGreaterThan(10);
    expect(await conn.echo('after')).toBe('after');
  }, 60_000);
});
