// `portpub run` through the built CLI: a service in its own network namespace published with -p
// (the host's port free before and after), TCP and UDP both ways, -P with --expose, exit codes,
// everything after COMMAND for the command, --network host, and the no-user-namespace error.
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli, startCli, type Running } from '../helpers/cli.js';
import { echoServer, waitFor } from '../helpers/net.js';
import { nextMessage } from '../helpers/udp.js';
import {
  exchange,
  holders,
  refused,
  requireNetns,
  runEnv,
  service,
  type RunEnv,
} from '../fixtures/netns-run.js';

/** startService runs a foreground `portpub run` and waits for the service's `up`. */
async function startService(args: string[], e: RunEnv): Promise<Running> {
  // startCli waits for stdout lines: the service's `up` is the first.
  const run = await startCli(['run', ...args], 1, 20_000, { env: e.env });
  expect(run.lines[0]).toBe('up');
  return run;
}

describe('portpub run: a network of its own', { timeout: 90_000 }, () => {
  it('publishes -p N:N while the host port N stays free, before and after', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    // N must be free on the host for -p N:N; ports outside the ephemeral range, tried in turn,
    // so no other test's ephemeral socket can take it meanwhile.
    let run: Running | undefined;
    let port = 0;
    for (let i = 0; i < 8 && !run; i++) {
      port = 20_000 + ((process.pid * 7 + i * 977) % 9_000);
      if (!(await refused(port))) continue;
      try {
        run = await startService(
          ['-p', `127.0.0.1:${port}:${port}`, '--', ...service(`tcp=${port}`)],
          e,
        );
      } catch (err) {
        if (!String(err).includes('address already in use')) throw err;
      }
    }
    expect(run, 'no free port found for -p N:N').toBeDefined();
    // The service holds port N inside its namespace and portpub holds N on the host: both bound.
    expect(await exchange(port, 'hi')).toBe('ns:hi');
    const ps = await runCli(['port'], 15_000, { env: e.env });
    expect(ps.stdout).toBe(`${port}/tcp -> 127.0.0.1:${port}\n`);

    const result = await run!.stop('SIGTERM');
    expect(result.code).toBe(0); // the service exits 0 on SIGTERM
    expect(await refused(port)).toBe(true);
  });

  it('relays UDP both ways, one flow per client', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const run = await startService(
      ['--name', 'dns', '-p', '127.0.0.1::5353/udp', '--', ...service('udp=5353')],
      e,
    );
    const port = await hostPort(e, 'dns', '5353/udp');
    for (const text of ['one', 'two']) {
      const client = dgram.createSocket('udp4');
      onTestFinished(() => {
        client.close();
      });
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      const reply = nextMessage(client, 5_000);
      client.send(text, port, '127.0.0.1');
      const { msg, rinfo } = await reply;
      expect(String(msg)).toBe(`ns:${text}`);
      expect(rinfo.port).toBe(port);
    }
    await run.stop('SIGTERM');
  });

  it('publishes every --expose port on an ephemeral host port with -P; Ctrl-C ends it all', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const run = await startService(
      ['--name', 'web', '--expose', '7000', '-P', '--', ...service('tcp=7000')],
      e,
    );
    const out = (await runCli(['port', 'web'], 15_000, { env: e.env })).stdout;
    expect(out).toMatch(/^7000\/tcp -> 0\.0\.0\.0:(\d+)\n(7000\/tcp -> \[::\]:\d+\n)?$/);
    const port = Number(/0\.0\.0\.0:(\d+)/.exec(out)![1]);
    expect(await exchange(port, 'P')).toBe('ns:P');
    expect(holders(port, e)).toEqual([run.child.pid]); // what the check below looks for
    // Ctrl-C: the service gets SIGINT (node dies of it: 130) and the ports are let go.
    expect((await run.stop('SIGINT')).code).toBe(130);
    expect(holders(port, e)).toEqual([]);
  });

  it('publishes an --expose range and a UDP port with -P, each on a port of its own', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const run = await startService(
      [
        '--name',
        'many',
        '--expose',
        '7000-7002',
        '--expose',
        '7100/udp',
        '-P',
        '--',
        ...service('tcp=7001', 'udp=7100'),
      ],
      e,
    );
    const out = (await runCli(['port', 'many'], 15_000, { env: e.env })).stdout;
    const lines = out.split('\n').filter(Boolean);
    // Each exposed port once on 0.0.0.0, and once on [::] where the host has IPv6.
    const v4 = lines.filter((l) => l.includes('-> 0.0.0.0:'));
    expect(v4.map((l) => l.split(' ')[0])).toEqual([
      '7000/tcp',
      '7001/tcp',
      '7002/tcp',
      '7100/udp',
    ]);
    expect(lines.length === 4 || lines.length === 8).toBe(true);
    const ports = v4.map((l) => Number(/:(\d+)$/.exec(l)![1]));
    // TCP and UDP are allocated apart, as Docker's allocator does: only the TCP ones differ.
    expect(new Set(ports.slice(0, 3)).size).toBe(3);
    expect(await exchange(ports[1]!, 'range')).toBe('ns:range');
    const client = dgram.createSocket('udp4');
    onTestFinished(() => {
      client.close();
    });
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const reply = nextMessage(client, 5_000);
    client.send('dgram', ports[3], '127.0.0.1');
    expect(String((await reply).msg)).toBe('ns:dgram');
    await run.stop('SIGTERM');
  });

  it('warns that host_ip= of the -p long syntax is ignored, as plain -p does', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const spec = 'host_ip=127.0.0.1,target=7000';
    const run = await startService(['--name', 'lng', '-p', spec, '--', ...service('tcp=7000')], e);
    const out = (await runCli(['port', 'lng'], 15_000, { env: e.env })).stdout;
    // Every interface, as docker run publishes it.
    expect(out).toMatch(/^7000\/tcp -> 0\.0\.0\.0:\d+\n/);
    await run.stop('SIGTERM');
    expect(run.stderr()).toContain('host_ip= is ignored in -p long syntax');
    const d = await runCli(
      ['run', '-d', '--rm', '-p', spec, '--', ...service('tcp=7000')],
      20_000,
      {
        env: e.env,
      },
    );
    expect(d.code).toBe(0);
    expect(d.stderr).toContain('host_ip= is ignored in -p long syntax');
  });

  it('resets the clients of a port the service never opens, as a dead target does', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const run = await startService(
      ['--name', 'idle', '-p', '127.0.0.1::7001', '--', ...service('udp=9')],
      e,
    );
    const out = (await runCli(['port', 'idle', '7001'], 15_000, { env: e.env })).stdout;
    const port = Number(/:(\d+)\n$/.exec(out)![1]);
    await expect(exchange(port, 'anyone?')).rejects.toMatchObject({ code: 'ECONNRESET' });
    await run.stop('SIGTERM');
  });

  it('exits as the command does: its code, 127 not found, 128+N for signal N', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const exit = async (...args: string[]) =>
      (await runCli(['run', ...args], 20_000, { env: e.env })).code;
    expect(await exit('--', 'sh', '-c', 'exit 3')).toBe(3);
    expect(await exit('no-such-command-for-portpub')).toBe(127);
    expect(await exit('sh', '-c', 'kill -TERM $$')).toBe(143);
    // Detached, a command that cannot start fails the run itself, as docker run -d does.
    const d = await runCli(['run', '-d', '--rm', 'no-such-command-for-portpub'], 20_000, {
      env: e.env,
    });
    expect(d).toMatchObject({ code: 127, stdout: '' });
    expect(d.stderr).toBe('portpub: no-such-command-for-portpub: command not found\n');
  });

  it('gives everything after COMMAND to the command (issue 13, defect 6)', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const r = await runCli(
      ['run', 'sh', '-c', 'echo "$0|$*"', 'x', '--link', 'db', '-e', 'A=1'],
      20_000,
      {
        env: e.env,
      },
    );
    expect(r.stdout).toBe('x|--link db -e A=1\n');
  });

  it("keeps a foreground service's output for portpub logs, as Docker keeps it", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    // More than a pipe holds, on both streams, so the relay's pace and the file both count.
    const script =
      'i=0; while [ $i -lt 3000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done';
    const r = await runCli(['run', '--name', 'chatty', 'sh', '-c', script], 30_000, {
      env: e.env,
    });
    expect(r.code).toBe(0);
    const outs = Array.from({ length: 3000 }, (_, i) => `out ${i}\n`).join('');
    const errs = Array.from({ length: 3000 }, (_, i) => `err ${i}\n`).join('');
    // The terminal gets the command's output as it wrote it, stream by stream.
    expect(r.stdout).toBe(outs);
    expect(r.stderr).toContain(errs.slice(0, 40));
    expect(
      r.stderr
        .split('\n')
        .filter((l) => l.startsWith('err '))
        .join('\n') + '\n',
    ).toBe(errs);
    // The log has both streams, each in order (merged, as docker logs merges them).
    const logs = await runCli(['logs', 'chatty'], 15_000, { env: e.env });
    expect(logs.code).toBe(0);
    const lines = logs.stdout.split('\n').filter(Boolean);
    expect(lines.filter((l) => l.startsWith('out ')).join('\n') + '\n').toBe(outs);
    expect(lines.filter((l) => l.startsWith('err ')).join('\n') + '\n').toBe(errs);
    // portpub's own lines too, as a detached service's log has them, first and last.
    const own = lines.filter((l) => l.startsWith('{'));
    expect(own.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual([
      'service started',
      'service exited',
    ]);
    expect((await runCli(['logs', '--tail', '1', 'chatty'], 15_000, { env: e.env })).stdout).toBe(
      `${lines.at(-1)}\n`,
    );
  });

  it('sets the hostname, Docker default environment and -e/--env-file inside', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const dir = mkdtempSync(join(tmpdir(), 'portpub-envfile-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'env');
    writeFileSync(file, '# comment\n  FROM_FILE=a "b" \nOVERRIDE=file\n\n');
    const r = await runCli(
      [
        'run',
        '--env-file',
        file,
        '-e',
        'OVERRIDE=flag',
        '-e',
        'EMPTY=',
        '--',
        process.execPath,
        '-e',
        'for (const [k, v] of Object.entries(process.env)) console.log(k + "=" + v)',
      ],
      20_000,
      { env: e.env },
    );
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    const id = /^HOSTNAME=([0-9a-f]{12})$/.exec(lines[1] ?? '')?.[1];
    expect(id).toBeDefined();
    expect(lines).toEqual([
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `HOSTNAME=${id}`,
      'FROM_FILE=a "b" ',
      'OVERRIDE=flag',
      'EMPTY=',
      'HOME=/root',
    ]);
  });

  it('--network host runs the command on the host, as before', async () => {
    const e = runEnv();
    const r = await runCli(
      ['run', '--network', 'host', '-e', 'A=1', '--', 'sh', '-c', 'echo "$A $(hostname)"'],
      15_000,
      {
        env: e.env,
      },
    );
    expect(r.stdout).toBe(`1 ${hostname()}\n`);
  });

  it('--network host checks --name as Docker does: its rule, and a name in use', async () => {
    const e = runEnv();
    const host = (...args: string[]) =>
      runCli(['run', '--network', 'host', ...args, '--', 'true'], 15_000, { env: e.env });
    for (const bad of ['a b', '']) {
      const r = await host('--name', bad);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`Invalid container name (${bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-]`);
    }
    const echo = await echoServer();
    const plain = await runCli(['-d', '--name', 'taken', '-p', `127.0.0.1::${echo.port}`], 20_000, {
      env: e.env,
    });
    expect(plain.code).toBe(0);
    const r = await host('--name', 'taken');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('The container name "/taken" is already in use by container');
    expect((await host('--name', 'free')).code).toBe(0);
  });

  it('--name /web is the name web, as moby trims one leading /', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    expect(
      (await runCli(['run', '--name', '/web', '--', 'true'], 20_000, { env: e.env })).code,
    ).toBe(0);
    expect((await runCli(['ps', '-a'], 15_000, { env: e.env })).stdout).toMatch(/ web\n$/);
  });

  it.each([
    ['user/max_user_namespaces', '0', 'user.max_user_namespaces'],
    ['kernel/unprivileged_userns_clone', '0', 'kernel.unprivileged_userns_clone'],
    ['kernel/apparmor_restrict_unprivileged_userns', '1', 'AppArmor'],
  ])(
    'without user namespaces (%s = %s) says which setting and suggests --network host',
    async (file, value, named) => {
      const e = runEnv();
      const sys = mkdtempSync(join(tmpdir(), 'portpub-sysctl-'));
      onTestFinished(() => rmSync(sys, { recursive: true, force: true }));
      mkdirSync(join(sys, file, '..'), { recursive: true });
      writeFileSync(join(sys, file), `${value}\n`);
      const r = await runCli(['run', '-p', '127.0.0.1::80', '--', 'true'], 15_000, {
        env: { ...e.env, PORTPUB_USERNS: 'always', PORTPUB_SYSCTL_DIR: sys },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(named);
      expect(r.stderr).toContain('--network host');
    },
  );
});

/** hostPort asks `portpub port NAME PORT` for the first host port of a binding. */
async function hostPort(e: RunEnv, name: string, port: string): Promise<number> {
  let out = '';
  await waitFor(
    async () => {
      out = (await runCli(['port', name, port], 15_000, { env: e.env })).stdout;
      return out !== '';
    },
    `portpub port ${name} ${port}`,
    15_000,
  );
  return Number(/:(\d+)\n/.exec(out)![1]);
}
