// The agent in its namespaces, driven directly: lo up, hostname, a private /etc/hosts, the
// command's exit status, and sockets dialled inside and handed back over IPC, for TCP and UDP,
// while the same port on the host is someone else's.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import { exitStatus, Sandbox, type SandboxOptions } from '../../src/netns/sandbox.js';
import { withDeadline, waitFor } from '../helpers/net.js';
import { buildForChild, needs, nextMessage, udpSocket } from '../helpers/udp.js';

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function requireTools(ctx: TestContext): void {
  needs(ctx, [
    !have('unshare') && 'unshare (util-linux)',
    !have('ip') && 'ip (iproute2)',
    !have('mount') && 'mount (util-linux)',
  ]);
}

/** agentPath transpiles the agent for this test (removed when it ends). */
function agentPath(): string {
  return join(buildForChild('netns/agent'), 'netns/agent.js');
}

async function sandbox(opts: Partial<SandboxOptions> = {}): Promise<Sandbox> {
  const box = await Sandbox.start({
    hostname: 'c0ffee123456',
    agentPath: agentPath(),
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
  onTestFinished(async () => {
    box.destroy();
    await box.closed;
  });
  return box;
}

/** output collects the agent's (so the command's) stdout. */
function output(box: Sandbox): { text: () => string; line: (re: RegExp) => Promise<string> } {
  let text = '';
  box.child.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  return {
    text: () => text,
    line: async (re) => {
      await waitFor(() => re.test(text), `output matching ${re}`, 10_000);
      return re.exec(text)![0];
    },
  };
}

/** A service for inside the namespace: TCP and UDP on 127.0.0.1:PORT, answering `ns:<data>`. */
const SERVICE = `
const net = require('node:net'), dgram = require('node:dgram');
const port = Number(process.argv[1]);
const srv = net.createServer((c) => c.on('data', (d) => c.write('ns:' + d)));
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send('ns:' + m, r.port, r.address));
srv.listen(port, '127.0.0.1', () => u.bind(port, '127.0.0.1', () => console.log('ready')));
`;

describe('Sandbox', () => {
  it('dials TCP inside the namespace on a port the host already uses', async (ctx) => {
    requireTools(ctx);
    const host = net.createServer((c) => c.end('host'));
    onTestFinished(() => {
      host.close();
    });
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
    const port = (host.address() as net.AddressInfo).port;

    const box = await sandbox();
    const out = output(box);
    await box.startCommand(process.execPath, ['-e', SERVICE, String(port)], []);
    await out.line(/ready/);

    const s = await withDeadline(box.dialTcp(port), 5_000, 'dialTcp');
    onTestFinished(() => void s.destroy());
    const reply = new Promise<string>((r) => s.once('data', (d) => r(String(d))));
    s.write('hi');
    expect(await withDeadline(reply, 5_000, 'reply')).toBe('ns:hi');

    // The host's own listener on that port is untouched.
    const c = net.connect(port, '127.0.0.1');
    onTestFinished(() => void c.destroy());
    const hostReply = new Promise<string>((r) => c.once('data', (d) => r(String(d))));
    expect(await withDeadline(hostReply, 5_000, 'host reply')).toBe('host');
  });

  it('dials UDP inside the namespace and every reply reaches the parent', async (ctx) => {
    requireTools(ctx);
    const hostSock = await udpSocket('udp4');
    const port = hostSock.address().port;
    const box = await sandbox();
    const out = output(box);
    await box.startCommand(process.execPath, ['-e', SERVICE, String(port)], []);
    await out.line(/ready/);

    for (let i = 0; i < 3; i++) {
      const u = await withDeadline(box.dialUdp(port), 5_000, 'dialUdp');
      onTestFinished(() => {
        u.close();
      });
      const reply = nextMessage(u, 5_000);
      u.send(`d${i}`);
      expect(String((await reply).msg)).toBe(`ns:d${i}`);
    }
  });

  it('rejects a dial to a port nobody listens on with the connect error', async (ctx) => {
    requireTools(ctx);
    const box = await sandbox();
    await box.startCommand('/bin/sh', ['-c', 'sleep 30'], []);
    await expect(box.dialTcp(9)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('sets lo up, the hostname, and a private /etc/hosts; the host file is untouched', async (ctx) => {
    requireTools(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'portpub-netns-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const hosts = join(dir, 'hosts');
    writeFileSync(hosts, '127.0.0.1\tlocalhost\n127.1.2.3\tdb c0ffee000000\n');
    const before = readFileSync('/etc/hosts', 'utf8');

    const box = await sandbox({ mounts: [{ source: hosts, target: '/etc/hosts' }] });
    const out = output(box);
    await box.startCommand(
      '/bin/sh',
      ['-c', 'hostname; cat /etc/hosts; ip -o link show lo | grep -c "UP"; echo "HOME=$HOME"'],
      [['HOME', '/root']],
    );
    const exit = await withDeadline(box.exited, 10_000, 'command exit');
    expect(exitStatus(exit)).toBe(0);
    expect(out.text()).toBe(
      'c0ffee123456\n127.0.0.1\tlocalhost\n127.1.2.3\tdb c0ffee000000\n1\nHOME=/root\n',
    );
    expect(readFileSync('/etc/hosts', 'utf8')).toBe(before);
  });

  it('reports exit codes as a shell does: the code, 128+N for signal N, 127 not found', async (ctx) => {
    requireTools(ctx);
    const agent = agentPath();
    const status = async (command: string, args: string[]) => {
      const box = await sandbox({ agentPath: agent });
      await box.startCommand(command, args, [['PATH', '/usr/bin:/bin']]);
      return exitStatus(await withDeadline(box.exited, 10_000, `${command} to exit`));
    };
    expect(await status('sh', ['-c', 'exit 3'])).toBe(3);
    expect(await status('sh', ['-c', 'kill -TERM $$'])).toBe(143);
    expect(await status('no-such-command-portpub', [])).toBe(127);
  });

  it('the namespace dies with portpub, even when portpub is SIGKILLed', async (ctx) => {
    requireTools(ctx);
    const dir = buildForChild('netns/sandbox');
    const agent = agentPath();
    const script = `
      const { Sandbox } = await import(${JSON.stringify(join(dir, 'netns/sandbox.js'))});
      const box = await Sandbox.start({ hostname: 'x', agentPath: ${JSON.stringify(agent)}, stdio: ['ignore', 'ignore', 'inherit'] });
      await box.startCommand('/bin/sh', ['-c', 'sleep 300'], []);
      console.log(box.pid);
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    onTestFinished(() => void parent.kill('SIGKILL'));
    const line = await withDeadline(
      new Promise<string>((r) => parent.stdout.setEncoding('utf8').once('data', r)),
      10_000,
      'the parent to start its sandbox',
    );
    const unsharePid = Number(line.trim());
    expect(unsharePid).toBeGreaterThan(0);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive(unsharePid)).toBe(true);
    parent.kill('SIGKILL');
    await waitFor(() => !alive(unsharePid), 'the namespace to end after its parent', 10_000);
  });

  it('says the command is gone when the agent dies under it', async (ctx) => {
    requireTools(ctx);
    const box = await sandbox();
    await box.startCommand('/bin/sh', ['-c', 'sleep 300'], []);
    // The agent is unshare's only child (unshare --fork); kill it from outside.
    const outer = box.pid!;
    const children = readFileSync(`/proc/${outer}/task/${outer}/children`, 'utf8').trim();
    const agent = Number(children.split(' ')[0]);
    expect(agent).toBeGreaterThan(0);
    process.kill(agent, 'SIGKILL');
    const exit = await withDeadline(box.exited, 10_000, 'exited after the agent died');
    expect(exit).toMatchObject({ code: null, error: 'the namespace agent died' });
    await withDeadline(box.closed, 10_000, 'the agent process to be reaped');
    await expect(box.dialTcp(80)).rejects.toMatchObject({ code: 'ERR_AGENT_GONE' });
  });

  it('works for an unprivileged user (nobody) in a user namespace', async (ctx) => {
    requireTools(ctx);
    needs(ctx, [!have('setpriv') && 'setpriv (util-linux)', process.getuid?.() !== 0 && 'root']);
    const dir = buildForChild('netns/sandbox');
    const agentDir = buildForChild('netns/agent');
    for (const d of [dir, agentDir]) chmodSync(d, 0o755);
    const script = `
      const net = await import('node:net');
      const { Sandbox, exitStatus } = await import(${JSON.stringify(join(dir, 'netns/sandbox.js'))});
      const box = await Sandbox.start({ hostname: 'unpriv', agentPath: ${JSON.stringify(join(agentDir, 'netns/agent.js'))}, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      box.child.stdout.on('data', (d) => (out += d));
      await box.startCommand(process.execPath, ['-e', "require('node:net').createServer((c) => c.end('uid ' + process.getuid())).listen(7000, '127.0.0.1', () => console.log('up'))"], []);
      while (!out.includes('up')) await new Promise((r) => setTimeout(r, 10));
      const s = await box.dialTcp(7000);
      let reply = '';
      s.on('data', (d) => (reply += d));
      await new Promise((r) => s.on('end', r));
      console.log(reply + ' host-uid ' + process.getuid());
      box.destroy();
      await box.closed;
    `;
    const child = spawn(
      'setpriv',
      [
        '--reuid=nobody',
        '--regid=nogroup',
        '--clear-groups',
        process.execPath,
        '--input-type=module',
        '-e',
        script,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' },
    );
    onTestFinished(() => void child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await withDeadline(
      new Promise<number | null>((r) => child.on('close', r)),
      20_000,
      'the unprivileged run',
    );
    expect({ code, stdout, stderr }).toMatchObject({ code: 0, stdout: 'uid 0 host-uid 65534\n' });
  });
});
