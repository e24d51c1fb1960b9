// Detached `portpub run` services through the built CLI: a `db` with -e and an exposed port that
// publishes nothing, reached only through --link by a second service (Docker's variables byte for
// byte, `getent hosts db`, traffic through the conduit, nothing for the host); ps, logs, stop and
// rm; and nothing left running when a service's portpub is SIGKILLed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createContainer, updateState } from '../../src/registry/containers.js';
import { runCli, startCli } from '../helpers/cli.js';
import net from 'node:net';
import { echoServer, track, waitFor, withDeadline } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';
import { bareConfig } from '../fixtures/records.js';
import {
  alive,
  killMarkedOnFinish,
  processesWith,
  record,
  refused,
  requireNetns,
  runEnv,
  service,
  type RunEnv,
} from '../fixtures/netns-run.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 20_000, { env: e.env });

/**
 * startDb starts a detached `db` exposing 5432 (with more run options and service arguments if
 * given), and waits for its `up` in its log.
 */
/** holderOf says which process listens on 127.0.0.1:port (ss -ltnp), for a failure message. */
function holderOf(port: number): string {
  const ss = spawnSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8', timeout: 5000 });
  const out = `${ss.stdout ?? ''}${ss.stderr ?? ''}`.trim();
  const pids = [...out.matchAll(/pid=(\d+)/g)].map((m) => m[1]!);
  const cmds = pids.map((pid) => {
    try {
      return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`;
    } catch {
      return `${pid}: gone`;
    }
  });
  return [out || 'ss found no listener', ...cmds].join(' | ');
}

async function startDb(e: RunEnv, more: { run?: string[]; service?: string[] } = {}) {
  const extra = more.service ?? [];
  const r = await cli(
    e,
    'run',
    '-d',
    ...(more.run ?? []),
    '--name',
    'db',
    '--expose',
    '5432',
    '-e',
    'POSTGRES_DB=app',
    '-e',
    'GREETING=hello world',
    '--',
    ...service('tcp=5432', 'tag=db', 'greet=1', ...extra),
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^[0-9a-f]{64}\n$/);
  await waitFor(async () => (await cli(e, 'logs', 'db')).stdout.includes('up\n'), 'db up', 15_000);
  return r.stdout.trim();
}

describe('portpub run -d and --link', { timeout: 90_000 }, () => {
  it('links a second service to an exposed-only db: variables, hosts line, traffic', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const id = await startDb(e);
    const db = record(e.dir, 'db');
    expect(db.id).toBe(id);

    // One node program, no shell between: a shell would re-order the environment it passes on.
    const script = [
      'for (const [k, v] of Object.entries(process.env)) if (k.startsWith("DB_")) console.log(k + "=" + v);',
      'process.stdout.write(require("node:child_process").execFileSync("getent", ["hosts", "db"]));',
      'const s = require("node:net").connect(5432, "db"); let got = "";',
      's.on("data", (d) => { got += d; if (got.includes("db:ping")) { console.log(JSON.stringify(got)); s.end(); } });',
      's.write("ping");',
    ].join('\n');
    const r = await cli(
      e,
      'run',
      '--name',
      'web2',
      '--link',
      'db',
      '--',
      process.execPath,
      '-e',
      script,
    );
    expect(r.code).toBe(0);
    const short = id.slice(0, 12);
    expect(r.stdout).toBe(
      [
        `DB_PORT=tcp://${db.ip}:5432`,
        `DB_PORT_5432_TCP=tcp://${db.ip}:5432`,
        `DB_PORT_5432_TCP_ADDR=${db.ip}`,
        'DB_PORT_5432_TCP_PORT=5432',
        'DB_PORT_5432_TCP_PROTO=tcp',
        'DB_NAME=/web2/db',
        'DB_ENV_POSTGRES_DB=app',
        'DB_ENV_GREETING=hello world',
        // getent prints the address padded to 15 columns, then the names.
        `${db.ip.padEnd(15)} db ${short}`,
        JSON.stringify('hello db\ndb:ping'),
        '',
      ].join('\n'),
    );
    // portpub env prints what the linked peer got.
    const env = await cli(e, 'env', 'db', '--parent', 'web2', '--format', 'dotenv');
    expect(env.stdout).toBe(r.stdout.split('\n').slice(0, 8).join('\n') + '\n');
    // db published nothing: no host port, and its address answers nothing on the host.
    expect((await cli(e, 'port', 'db')).stdout).toBe('');
    expect(await refused(5432, db.ip)).toBe(true);
  });

  it('an alias names the variables and the hosts line keeps the name', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const id = await startDb(e);
    const db = record(e.dir, 'db');
    const r = await cli(
      e,
      'run',
      '--link',
      'db:pg',
      '--',
      'sh',
      '-c',
      'echo "$PG_PORT $PG_NAME"; grep -w pg /etc/hosts',
    );
    expect(r.stdout).toMatch(
      new RegExp(
        `^tcp://${db.ip}:5432 /[a-z_]+[0-9]*/pg\\n${db.ip}\\tpg ${id.slice(0, 12)} db\\n$`,
      ),
    );
  });

  it('carries UDP through a link too, one flow per client', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const d = await cli(
      e,
      'run',
      '-d',
      '--name',
      'dns',
      '--expose',
      '53/udp',
      '--',
      ...service('udp=53', 'tag=dns'),
    );
    expect(d.code).toBe(0);
    await waitFor(
      async () => (await cli(e, 'logs', 'dns')).stdout.includes('up\n'),
      'dns up',
      15_000,
    );
    const ask = [
      'const dgram = require("node:dgram");',
      'const ask = (q) => new Promise((r) => { const s = dgram.createSocket("udp4");',
      '  s.on("message", (m) => { s.close(); r(String(m)); }); s.send(q, 53, "dns"); });',
      'ask("a").then(async (a) => console.log(a, await ask("b"), process.env.DNS_PORT));',
    ].join('\n');
    const r = await cli(e, 'run', '--link', 'dns', '--', process.execPath, '-e', ask);
    const ip = record(e.dir, 'dns').ip;
    expect(r.stdout).toBe(`dns:a dns:b udp://${ip}:53\n`);
  });

  it('links to a service a plain portpub publishes on the host, through a conduit', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const echo = await echoServer();
    const plain = await startCli(
      ['--name', 'hostdb', '-p', `127.0.0.1::${echo.port}`, '--log-level', 'warn'],
      1,
      15_000,
      { env: e.env },
    );
    expect(plain.lines[0]).toMatch(new RegExp(`^${echo.port}/tcp -> 127\\.0\\.0\\.1:\\d+$`));
    const talk = [
      `const s = require("node:net").connect(${echo.port}, "hostdb"); let got = "";`,
      's.on("data", (d) => (got += d)); s.on("end", () => console.log(process.env.HOSTDB_PORT + " " + got));',
      's.end("through the conduit");',
    ].join('\n');
    const r = await cli(e, 'run', '--link', 'hostdb', '--', process.execPath, '-e', talk);
    expect(r.stdout).toBe(`tcp://127.0.0.2:${echo.port} through the conduit\n`);
    // The plain run holds its name: no run service may take it.
    const taken = await cli(e, 'run', '--name', 'hostdb', '--', 'true');
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('The container name "/hostdb" is already in use by portpub pid');
    await plain.stop('SIGTERM');
  });

  it('links to a service of up -d and to a plain -d: variables, hosts lines, traffic', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const api = await echoServer();
    const plainEcho = await echoServer();
    const cwd = mkdtempSync(join(tmpdir(), 'portpub-link-up-'));
    onTestFinished(() => rmSync(cwd, { recursive: true, force: true }));
    writeFileSync(
      join(cwd, 'portpub.yaml'),
      `name: demo\nservices:\n  api:\n    ports: ["127.0.0.1::${api.port}"]\n`,
    );
    const up = await runCli(['up', '-d'], 20_000, { env: e.env, cwd });
    expect(up.code).toBe(0);
    const plain = await cli(e, '-d', '--name', 'plainsvc', '-p', `127.0.0.1::${plainEcho.port}`);
    expect(plain.code).toBe(0);
    const plainId = plain.stdout.trim().slice(0, 12);

    const script = [
      'for (const [k, v] of Object.entries(process.env)) if (/^(API|PS1)_/.test(k)) console.log(k + "=" + v);',
      'const { execFileSync } = require("node:child_process");',
      'process.stdout.write(execFileSync("getent", ["hosts", "api"]));',
      'process.stdout.write(execFileSync("grep", ["-w", "-e", "api", "-e", "ps1", "/etc/hosts"]));',
      'const talk = (host, port) => new Promise((r) => { const s = require("node:net").connect(port, host);',
      '  let got = ""; s.on("data", (d) => (got += d)); s.on("end", () => r(got)); s.end("to " + host); });',
      `talk("api", ${api.port}).then(async (a) => console.log(a, await talk("ps1", ${plainEcho.port})));`,
    ].join('\n');
    const r = await cli(
      e,
      'run',
      '--name',
      'client',
      '--link',
      'api',
      '--link',
      'plainsvc:ps1',
      '--',
      process.execPath,
      '-e',
      script,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `API_PORT=tcp://127.0.0.2:${api.port}`,
        `API_PORT_${api.port}_TCP=tcp://127.0.0.2:${api.port}`,
        'API_PORT_' + api.port + '_TCP_ADDR=127.0.0.2',
        `API_PORT_${api.port}_TCP_PORT=${api.port}`,
        `API_PORT_${api.port}_TCP_PROTO=tcp`,
        'API_NAME=/client/api',
        `PS1_PORT=tcp://127.0.0.3:${plainEcho.port}`,
        `PS1_PORT_${plainEcho.port}_TCP=tcp://127.0.0.3:${plainEcho.port}`,
        'PS1_PORT_' + plainEcho.port + '_TCP_ADDR=127.0.0.3',
        `PS1_PORT_${plainEcho.port}_TCP_PORT=${plainEcho.port}`,
        `PS1_PORT_${plainEcho.port}_TCP_PROTO=tcp`,
        'PS1_NAME=/client/ps1',
        // getent pads the address to 15 columns. A service of up has no id of its own (one
        // record serves the project): its name, once. A plain -d has its record's id.
        '127.0.0.2       api',
        '127.0.0.2\tapi',
        `127.0.0.3\tps1 ${plainId} plainsvc`,
        'to api to ps1',
        '',
      ].join('\n'),
    );
  });

  it('ps, logs, stop and rm, as docker has them', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const id = await startDb(e);
    const short = id.slice(0, 12);

    const ps = (await cli(e, 'ps')).stdout.split('\n');
    expect(ps[0]).toMatch(/^CONTAINER ID {3}COMMAND +CREATED +STATUS +PORTS +NAMES$/);
    expect(ps[1]).toMatch(new RegExp(`^${short} {3}".+…" +.+ ago +Up .+ {3}5432/tcp {3}db$`));
    const json = JSON.parse((await cli(e, 'ps', '--format', 'json')).stdout) as Record<
      string,
      string
    >;
    expect(json).toMatchObject({
      ID: short,
      Names: 'db',
      State: 'running',
      Ports: '5432/tcp',
      Networks: 'bridge',
    });
    // Go's time.Time.String(), as docker ps prints CreatedAt.
    expect(json.CreatedAt).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \S+$/);

    expect((await cli(e, 'logs', '--tail', '1', 'db')).stdout).toBe('up\n');

    const { pid } = record(e.dir, 'db').state;
    expect((await cli(e, 'stop', 'db')).stdout).toBe('db\n');
    expect(alive(pid!)).toBe(false);
    // The service saw the SIGTERM and ended by itself.
    expect((await cli(e, 'logs', 'db')).stdout).toContain('got SIGTERM\n');
    expect((await cli(e, 'ps')).stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(0\) .+ ago +db\n$/);

    // A second service may not take the name until the first is removed.
    const again = await cli(e, 'run', '-d', '--name', 'db', '--', 'true');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(
      `The container name "/db" is already in use by container "${id}"`,
    );

    expect((await cli(e, 'rm', 'db')).stdout).toBe('db\n');
    expect((await cli(e, 'ps', '-a')).stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect((await cli(e, 'logs', 'db')).stderr).toContain('No such container: db');
  });

  it('stop -t kills a service that ignores SIGTERM once the timeout has passed: 137', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const deaf = [
      'process.on("SIGTERM", () => console.log("ignoring SIGTERM"));',
      'console.log("up"); setInterval(() => {}, 1000);',
    ].join('\n');
    const d = await cli(e, 'run', '-d', '--name', 'deaf', '--', process.execPath, '-e', deaf);
    expect(d.code).toBe(0);
    await waitFor(async () => (await cli(e, 'logs', 'deaf')).stdout.includes('up\n'), 'up', 15_000);
    const { pid } = record(e.dir, 'deaf').state;
    const started = Date.now();
    expect((await cli(e, 'stop', '-t', '1', 'deaf')).stdout).toBe('deaf\n');
    const took = Date.now() - started;
    // At least the timeout; a loose upper bound (15x) for a loaded machine: it must not hang.
    expect(took).toBeGreaterThanOrEqual(1_000);
    expect(took).toBeLessThan(15_000);
    expect(alive(pid!)).toBe(false);
    expect((await cli(e, 'logs', 'deaf')).stdout).toContain('ignoring SIGTERM\n');
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(137\) .+ ago +deaf\n$/);
  });

  it('-d --network host: the command in the background on the host, ps, logs, stop', async () => {
    const e = runEnv();
    const marker = `host-marker-${process.pid}-${Date.now()}`;
    const script = [
      `// ${marker}`,
      'process.on("SIGTERM", () => { console.log("got SIGTERM"); process.exit(0); });',
      'console.log("up " + process.env.GREETING + " " + require("node:os").hostname());',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const d = await cli(
      e,
      'run',
      '-d',
      '--network',
      'host',
      '--name',
      'onhost',
      '-e',
      'GREETING=hi',
      '--',
      process.execPath,
      '-e',
      script,
    );
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    await waitFor(
      async () => (await cli(e, 'logs', 'onhost')).stdout.includes('up hi'),
      'onhost up',
      15_000,
    );
    expect((await cli(e, 'logs', 'onhost')).stdout).toContain(`up hi ${hostname()}\n`);
    expect((await cli(e, 'ps')).stdout).toMatch(/ Up .+ onhost\n$/);
    expect((await cli(e, 'ps', '--format', 'json')).stdout).toContain('"Networks":"host"');
    // No address or ports to link: a link to it says so.
    const link = await cli(e, 'run', '--link', 'onhost', '--', 'true');
    expect(link.code).toBe(1);
    expect(link.stderr).toContain("cannot link to /onhost: it runs on the host's network");
    expect((await cli(e, 'stop', 'onhost')).stdout).toBe('onhost\n');
    expect(processesWith(marker)).toEqual([]);
    expect((await cli(e, 'logs', 'onhost')).stdout).toContain('got SIGTERM\n');
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(0\) .+ ago +onhost\n$/);
    const missing = await cli(e, 'run', '-d', '--network', 'host', '--', 'no-such-command-pp');
    expect(missing).toMatchObject({ code: 127, stdout: '' });
    expect(missing.stderr).toBe('portpub: no-such-command-pp: command not found\n');
  });

  it.for([
    { how: 'stop -t 1', args: ['stop', '-t', '1'], sigkill: false },
    { how: 'stop -t 0', args: ['stop', '-t', '0'], sigkill: false },
    { how: 'rm -f', args: ['rm', '-f'], sigkill: false },
    { how: 'stop after a SIGKILL of the portpub', args: ['stop'], sigkill: true },
    { how: 'rm after a SIGKILL of the portpub', args: ['rm'], sigkill: true },
  ])(
    '-d --network host: $how kills the command with its portpub',
    async ({ how, args, sigkill }) => {
      const e = runEnv();
      const marker = `host-deaf-${process.pid}-${Date.now()}`;
      // Should the kill fail, the command outlives its SIGKILLed portpub: killed by mark at the end.
      killMarkedOnFinish(marker);
      const deaf = `// ${marker}\nprocess.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000);`;
      const r = await cli(
        e,
        'run',
        '-d',
        '--network',
        'host',
        '--name',
        'deafh',
        '--',
        process.execPath,
        '-e',
        deaf,
      );
      expect(r.code).toBe(0);
      await waitFor(
        async () => (await cli(e, 'logs', 'deafh')).stdout.includes('up\n'),
        'up',
        15_000,
      );
      if (sigkill) {
        // The portpub dies without a word (kill -9, the OOM killer); its command stays in its group.
        const pid = record(e.dir, 'deafh').state.pid!;
        process.kill(pid, 'SIGKILL');
        await waitFor(() => !alive(pid), 'the portpub to be gone', 10_000);
        expect(processesWith(marker).length).toBeGreaterThan(0);
      }
      expect((await cli(e, ...args, 'deafh')).code).toBe(0);
      // Without time (-t 0, rm -f) the group was not killed before: the command stayed.
      await waitFor(
        () => processesWith(marker).length === 0,
        `the command to be gone (${how})`,
        15_000,
      );
      if (args[0] === 'stop') {
        expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(137\) .+ ago +deafh\n$/);
      }
    },
  );

  it("stop of a record whose pid is now another portpub's leaves that one's state alone", async () => {
    const e = runEnv();
    const echo = await echoServer();
    const live = await startCli(['--name', 'live', '-p', `127.0.0.1::${echo.port}`], 1, 15_000, {
      env: e.env,
    });
    const pid = live.child.pid!;
    const stateFile = join(e.dir, `${pid}.json`);
    expect(existsSync(stateFile)).toBe(true);
    // A record from a portpub long gone whose pid the live one got since (another start time).
    const { id } = createContainer(
      bareConfig({ kind: 'serve', name: 'ghost', command: 'portpub' }),
      e.dir,
    );
    updateState(
      id,
      { status: 'running', pid, procStart: '1', startedAt: new Date().toISOString() },
      e.dir,
    );
    expect((await cli(e, 'stop', 'ghost')).code).toBe(0);
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(137\) .+ ago +ghost\n$/);
    expect(alive(pid)).toBe(true);
    expect(existsSync(stateFile)).toBe(true);
    expect(existsSync(join(e.dir, `${pid}.sock`))).toBe(true);
    expect((await cli(e, 'port', 'live')).stdout).toMatch(/^\d+\/tcp -> 127\.0\.0\.1:\d+\n$/);
    await live.stop('SIGTERM');
  });

  it('logs -f follows the output until the service ends', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    await startDb(e);
    const follow = await startCli(['logs', '-f', 'db'], 1, 15_000, { env: e.env });
    expect(follow.lines).toContain('up');
    expect((await cli(e, 'stop', 'db')).code).toBe(0);
    const done = await withDeadline(follow.exited, 15_000, 'logs -f to end with the service');
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('got SIGTERM\n');
  });

  it('--rm removes the record once the service ends, detached or not', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    expect((await cli(e, 'run', '--rm', '--name', 'once', '--', 'true')).code).toBe(0);
    const d = await cli(e, 'run', '-d', '--rm', '--name', 'bg', '--', ...service('tcp=80'));
    expect(d.code).toBe(0);
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/ bg\n$/);
    await cli(e, 'stop', 'bg');
    expect((await cli(e, 'ps', '-a')).stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('leaves nothing running or bound when the service’s portpub is SIGKILLed', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const marker = `marker-${process.pid}-${Date.now()}`;
    // A port of this test's own block: once released, an ephemeral one could go to a portpub of
    // a test running beside this one before the probe below binds it.
    const fixed = await reservePorts(1);
    await startDb(e, { run: ['-p', `127.0.0.1:${fixed}:5432`], service: [marker] });
    expect(processesWith(marker).length).toBeGreaterThan(0);
    const out = (await cli(e, 'port', 'db', '5432')).stdout;
    const port = Number(/^127\.0\.0\.1:(\d+)\n$/.exec(out)?.[1]);
    expect(port).toBe(fixed);
    const { pid } = record(e.dir, 'db').state;
    process.kill(pid!, 'SIGKILL');
    await waitFor(() => processesWith(marker).length === 0, 'the service to end', 15_000);
    // The service ends when the agent sees its channel to portpub close, and the kernel closes a
    // dying process's descriptors one by one: the channel may go before the listening socket.
    // So the probe waits for the SIGKILLed portpub itself to be gone, and a bind that still
    // fails is tried again for a while before the test names the holder.
    await waitFor(() => !alive(pid!), 'the SIGKILLed portpub to be gone', 15_000);
    const listen = () =>
      new Promise<string | undefined>((resolve) => {
        const probe = track(net.createServer());
        probe.once('error', (err) => resolve(err.message));
        probe.listen(port, '127.0.0.1', () => resolve(undefined));
      });
    let failure = await listen();
    for (const deadline = Date.now() + 10_000; failure && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      failure = await listen();
    }
    // The host port is free: this test could bind it itself.
    expect(failure && `${failure}; held by: ${holderOf(port)}`).toBeUndefined();
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Dead +db\n$/);
    // stop settles the record of a portpub that died without a word, and clears its leftovers.
    expect(existsSync(join(e.dir, `${pid}.sock`))).toBe(true);
    await cli(e, 'stop', 'db');
    expect((await cli(e, 'ps', '-a')).stdout).toMatch(/Exited \(137\) .+ ago +db\n$/);
    expect(existsSync(join(e.dir, `${pid}.sock`))).toBe(false);
    expect(existsSync(join(e.dir, `${pid}.json`))).toBe(false);
  });
});
