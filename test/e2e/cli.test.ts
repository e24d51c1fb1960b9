// End-to-end tests of the built CLI (bin/portpub.js): Docker's -p contract as a user meets it.
import { createServer as createTcpServer, connect } from 'node:net';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { readEphemeralRange } from '../../src/publish/allocate.js';
import { parsePortLine, runCli, startCli, withTimeout } from '../helpers/cli.js';
import { echoServer, freePort, freePorts } from '../helpers/net.js';
import { AS_NOBODY, binForNobody, SETPRIV } from '../helpers/nobody.js';

/** roundTrip connects to host:port, sends text, ends, and resolves everything read back. */
function roundTrip(host: string, port: number, text: string): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = connect({ host, port, allowHalfOpen: true });
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (got += d));
      s.on('error', reject);
      s.on('end', () => {
        s.end();
        resolve(got);
      });
      s.end(text);
    }),
    5000,
    `echo via ${host}:${port}`,
  );
}

const m = (hostIp: string, hostPort: string, targetPort: number, protocol = 'tcp') => ({
  hostIp,
  hostPort,
  targetPort,
  protocol,
});

describe('argv end to end: a few of test/unit/cli-args.test.ts through the built CLI', () => {
  it('--dry-run --json of one -p', async () => {
    const r = await runCli(['--dry-run', '--json', '-p', '127.0.0.1:8080:80/udp']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ mappings: [m('127.0.0.1', '8080', 80, 'udp')] });
  });

  it("a -p Docker rejects: Docker's text, exit 2", async () => {
    const r = await runCli(['--dry-run', '--publish=80/xyz']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("option '-p, --publish <spec>' argument '80/xyz' is invalid.");
    expect(r.stderr).toContain('invalid proto: xyz');
  });

  it('--version and --help exit 0', async () => {
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    const h = await runCli(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('--publish <spec>');
  });
});

describe('portpub serving', () => {
  it('-p 127.0.0.1::PORT picks a port from ip_local_port_range and relays to the target', async () => {
    const target = await echoServer();
    const run = await startCli(['-p', `127.0.0.1::${target.port}`], 1);
    expect(run.lines).toHaveLength(1);
    const line = parsePortLine(run.lines[0]!);
    expect(line.target).toBe(`${target.port}/tcp`);
    expect(line.host).toBe('127.0.0.1');
    const range = readEphemeralRange();
    expect(line.port).toBeGreaterThanOrEqual(range.start);
    expect(line.port).toBeLessThanOrEqual(range.end);
    expect(await roundTrip('127.0.0.1', line.port, 'hello through portpub')).toBe(
      'hello through portpub',
    );
    const logs = run
      .stderr()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logs.filter((l) => l.msg === 'listening')).toEqual([
      expect.objectContaining({ address: `127.0.0.1:${line.port}`, protocol: 'tcp' }),
    ]);
    const r = await run.stop('SIGTERM');
    expect(r.code).toBe(0);
  });

  it('no host IP binds 0.0.0.0 and :: on the same port, like Docker', async () => {
    const target = await echoServer();
    const run = await startCli(['-p', String(target.port)], 2);
    const [v4, v6] = run.lines.map(parsePortLine);
    expect(v4).toMatchObject({ target: `${target.port}/tcp`, host: '0.0.0.0' });
    expect(v6).toMatchObject({ target: `${target.port}/tcp`, host: '[::]', port: v4!.port });
    expect(await roundTrip('127.0.0.1', v4!.port, 'v4')).toBe('v4');
    expect(await roundTrip('::1', v6!.port, 'v6 to a v4 target')).toBe('v6 to a v4 target');
    expect((await run.stop()).code).toBe(0);
  });

  it('--default-host-ip changes the default address, like dockerd --ip', async () => {
    const target = await echoServer();
    const run = await startCli(['--default-host-ip', '127.0.0.1', '-p', String(target.port)], 1);
    expect(parsePortLine(run.lines[0]!).host).toBe('127.0.0.1');
    expect((await run.stop()).code).toBe(0);
  });

  it('--json prints the bound mappings as one document', async () => {
    const target = await echoServer();
    const run = await startCli(['--json', '-p', `127.0.0.1::${target.port}`], 1);
    const doc = JSON.parse(run.lines[0]!) as { mappings: { hostPort: number }[] };
    expect(doc).toEqual({
      mappings: [
        {
          hostIp: '127.0.0.1',
          hostPort: doc.mappings[0]!.hostPort,
          targetHost: '127.0.0.1',
          targetPort: target.port,
          protocol: 'tcp',
        },
      ],
    });
    expect(await roundTrip('127.0.0.1', doc.mappings[0]!.hostPort, 'json')).toBe('json');
    expect((await run.stop()).code).toBe(0);
  });

  it('publishes a pair of ranges one-to-one and a pool at its first free port', async () => {
    const a = await echoServer();
    const base = await freePorts(2);
    const run = await startCli(
      [
        '-p',
        `127.0.0.1:${base}-${base}:${a.port}-${a.port}`,
        '-p',
        `127.0.0.1:${base}-${base + 1}:${a.port}`,
      ],
      2,
    );
    const lines = run.lines.map(parsePortLine);
    // the pool's first port is taken by the first mapping, so it moves on to the next
    expect(lines.map((l) => l.port).sort()).toEqual([base, base + 1]);
    expect(await roundTrip('127.0.0.1', base + 1, 'pool')).toBe('pool');
    expect((await run.stop()).code).toBe(0);
  });

  it('relays UDP', async () => {
    const target = createSocket('udp4');
    onTestFinished(() => void target.close());
    target.on('message', (msg, rinfo) => target.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => target.bind(0, '127.0.0.1', resolve));
    const tport = target.address().port;
    const run = await startCli(['-p', `127.0.0.1::${tport}/udp`], 1);
    const line = parsePortLine(run.lines[0]!);
    expect(line.target).toBe(`${tport}/udp`);
    const client = createSocket('udp4');
    onTestFinished(() => void client.close());
    const reply = withTimeout(
      new Promise<string>((resolve) => client.once('message', (msg) => resolve(msg.toString()))),
      5000,
      'udp reply',
    );
    client.send('ping', line.port, '127.0.0.1');
    expect(await reply).toBe('ping');
    expect((await run.stop()).code).toBe(0);
  });

  it('SIGTERM lets an open connection finish; a second signal cuts it', async () => {
    const target = await echoServer();
    const run = await startCli(['-p', `127.0.0.1::${target.port}`, '--drain-timeout', '30s'], 1);
    const { port } = parsePortLine(run.lines[0]!);
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    onTestFinished(() => void s.destroy());
    s.setEncoding('utf8');
    let got = '';
    s.on('data', (d: string) => (got += d));
    const closed = new Promise<void>((resolve) => {
      s.on('end', () => resolve());
      s.on('close', () => resolve());
    });
    s.on('error', () => undefined);
    s.write('before');
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (got === 'before') resolve();
          else s.once('data', check);
        };
        check();
      }),
      5000,
      'first echo',
    );
    run.child.kill('SIGTERM');
    // still draining: the open connection keeps working, new ones are refused
    await withTimeout(
      new Promise<void>((resolve) => {
        const poll = () => {
          const probe = connect({ host: '127.0.0.1', port });
          probe.on('connect', () => {
            probe.destroy();
            setTimeout(poll, 20);
          });
          probe.on('error', () => resolve());
        };
        poll();
      }),
      5000,
      'listener to close',
    );
    s.write('during');
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (got === 'beforeduring') resolve();
          else s.once('data', check);
        };
        check();
      }),
      5000,
      'echo while draining',
    );
    expect(run.child.exitCode).toBe(null);
    run.child.kill('SIGTERM');
    const r = await withTimeout(run.exited, 5000, 'exit after second signal');
    expect(r.code).toBe(0);
    await withTimeout(closed, 5000, 'connection cut');
  });
});

describe('portpub startup failures (exit 1, nothing left listening)', () => {
  it("a second -p that the OS refuses: Docker's message, exit 1", async () => {
    const busy = await echoServer();
    const target = await echoServer();
    const r = await runCli([
      '-p',
      `127.0.0.1::${target.port}`,
      '-p',
      `127.0.0.1:${busy.port}:${target.port}`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `failed to bind host port 127.0.0.1:${busy.port}/tcp: address already in use`,
    );
  });

  it("the same host port twice: Docker's 'port is already allocated'", async () => {
    const port = await freePort();
    const r = await runCli(['-p', `127.0.0.1:${port}:80`, '-p', `127.0.0.1:${port}:81`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`Bind for 127.0.0.1:${port} failed: port is already allocated`);
    // the first binding was released with the process: the port is free again
    const again = createTcpServer();
    onTestFinished(() => void again.close());
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(port, '127.0.0.1', resolve);
    });
  });

  it('sctp parses but cannot be served: a clear message, exit 1', async () => {
    const r = await runCli(['-p', '127.0.0.1::80/sctp']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sctp');
    expect(r.stderr).toContain('cannot serve');
  });
});

describe('portpub without privilege', () => {
  // Run as nobody: binding below net.ipv4.ip_unprivileged_port_start must fail with advice.
  const canDrop = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');
  it.runIf(canDrop || process.env.CI === 'true')(
    'a port below 1024 is refused with an explanation (exit 1)',
    () => {
      const start = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
      expect(start, 'this host lets anyone bind every port').toBeGreaterThan(1);
      const port = start - 1;
      const res = spawnSync(
        SETPRIV,
        [...AS_NOBODY, process.execPath, binForNobody(), '-p', `127.0.0.1:${port}:80`],
        { encoding: 'utf8', timeout: 15_000, env: { ...process.env, XDG_RUNTIME_DIR: '' } },
      );
      expect(res.status).toBe(1);
      expect(res.stderr).toContain(
        `failed to bind host port 127.0.0.1:${port}/tcp: permission denied (ports below 1024`,
      );
    },
  );
});
