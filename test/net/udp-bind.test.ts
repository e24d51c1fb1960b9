// bindUdp on real sockets: what a specific address, a wildcard and `single` bind, all or
// nothing, and (in network namespaces of their own) which address a reply leaves from and what
// a wildcard binding does as local addresses come and go; and, against both engines, which
// address a reply leaves from on the host's own loopback.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { bindUdp, type UdpListener } from '../../src/udp/bind.js';
import { fixtureProgram } from '../fixtures/udp-programs.js';
import { engines, requireNative, udpForward } from '../helpers/engines.js';
import {
  buildForChild,
  closeQuietly,
  echoServer,
  needs,
  portOf,
  request,
  udpSocket,
} from '../helpers/udp.js';

const V4 = '127.0.0.1';
const V6 = '::1';

async function bindKept(host: string, port = 0): Promise<UdpListener> {
  const l = await bindUdp(host, port);
  onTestFinished(() => l.close());
  return l;
}

function localV4(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((infos) => infos ?? [])
    .filter((i) => i.family === 'IPv4')
    .map((i) => i.address);
}

describe('bindUdp', () => {
  it('binds one socket for a specific address, picking a port for port 0', async () => {
    const l = await bindKept(V4);
    expect(l.host).toBe(V4);
    expect(l.port).toBeGreaterThan(0);
    expect(l.sockets).toHaveLength(1);
    expect(l.sockets[0]!.address()).toEqual({ address: V4, family: 'IPv4', port: l.port });
    expect(l.refresh).toBeUndefined();
  });

  it('rejects with the raw EADDRINUSE when the address is taken', async () => {
    const holder = await udpSocket('udp4', V4);
    const err = (await bindUdp(V4, portOf(holder)).catch(
      (e: unknown) => e,
    )) as NodeJS.ErrnoException;
    expect(err.code).toBe('EADDRINUSE');
    expect(err.syscall).toBe('bind');
    expect(err).not.toHaveProperty('exitCode');
  });

  it('rejects a hostname or a bad port with a usage error', async () => {
    await expect(bindUdp('localhost', 0)).rejects.toMatchObject({
      code: 'ERR_USAGE',
      message: 'bindUdp: host must be an IP literal, got localhost',
    });
    await expect(bindUdp(V4, 70000)).rejects.toMatchObject({ code: 'ERR_USAGE' });
    await expect(
      bindUdp('0.0.0.0', 0, { single: 'yes' as unknown as boolean }),
    ).rejects.toMatchObject({
      code: 'ERR_USAGE',
      message: 'bindUdp: single must be true or false, got yes',
    });
  });

  it('binds a wildcard as one exclusive socket per local address, on one port', async () => {
    const l = await bindKept('0.0.0.0');
    const addresses = l.sockets.map((s) => s.address());
    expect(addresses.map((a) => a.address).sort()).toEqual([...new Set(localV4())].sort());
    for (const a of addresses) expect(a.port).toBe(l.port);
    expect(l.refresh).toBeTypeOf('function');
    // No catch-all: nothing, ours included, can bind the wildcard or a listed address there.
    await expect(bindUdp('0.0.0.0', l.port, { single: true })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });

  it.each([
    ['0.0.0.0', 'IPv4'],
    ['::', 'IPv6'],
  ])('binds exactly one socket for %s with single: true', async (host, family) => {
    const single = await bindUdp(host, 0, { single: true });
    onTestFinished(() => single.close());
    expect(single.sockets).toHaveLength(1);
    expect(single.sockets[0]!.address()).toEqual({ address: host, family, port: single.port });
    expect(single.refresh).toBeUndefined();
    // It holds the port for every address of the family.
    await expect(bindUdp(family === 'IPv4' ? V4 : V6, single.port)).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });

  it('binds 0.0.0.0 and :: (v6-only) on the same port, like Docker', async () => {
    const l4 = await bindKept('0.0.0.0');
    const l6 = await bindKept('::', l4.port);
    expect(l6.port).toBe(l4.port);
    expect(l6.sockets.length).toBeGreaterThan(0);
    for (const s of l6.sockets)
      expect(s.address()).toMatchObject({ family: 'IPv6', port: l4.port });
  });

  it('refuses a wildcard whose port any socket of the family holds, leaving nothing bound', async () => {
    const holder = await udpSocket('udp4', V4);
    const port = portOf(holder);
    await expect(bindUdp('0.0.0.0', port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    closeQuietly(holder);
    // All or nothing: the port is entirely free again (an exclusive wildcard bind succeeds).
    await udpSocket('udp4', '0.0.0.0', port);
  });

  it('refuses a second wildcard binding of the same port (another portpub)', async () => {
    const first = await bindKept('0.0.0.0');
    await expect(bindUdp('0.0.0.0', first.port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await expect(bindUdp(V4, first.port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('close() releases every socket and is idempotent', async () => {
    const l = await bindUdp('0.0.0.0', 0);
    l.close();
    l.close();
    await udpSocket('udp4', '0.0.0.0', l.port);
  });
});

// The namespace tests need addresses of their own: each runs a test/fixtures/ program as a child
// in a new network namespace (`unshare -n`, root only), importing a build of src/udp/.
const canUnshare =
  process.platform === 'linux' &&
  spawnSync('unshare', ['-n', 'ip', 'link', 'set', 'lo', 'up'], { timeout: 5_000 }).status === 0;

/**
 * inNamespace runs test/fixtures/<fixture>.ts in a new network namespace after the shell lines
 * of setup, and resolves its stdout parsed as JSON; it fails on any stderr or a non-zero exit.
 */
async function inNamespace(fixture: string, setup: string[]): Promise<unknown> {
  const dir = buildForChild('udp/forwarder');
  writeFileSync(join(dir, 'child.mjs'), fixtureProgram(fixture));
  const script = ['set -e', ...setup, `exec ${JSON.stringify(process.execPath)} child.mjs`];
  const child = spawn('unshare', ['-n', 'bash', '-c', script.join('\n')], { cwd: dir });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`namespace child did not finish in 20 s\n${stderr}`));
    }, 20_000);
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return JSON.parse(stdout);
}

requireNative();

describe.each(engines)('reply source address on the host loopback (%s engine)', (engine) => {
  it('answers each client: from the address it sent to (native), or the routed one (js)', async () => {
    const echo = await echoServer('udp4', V4);
    const { port } = await udpForward(engine, '0.0.0.0', { targetHost: V4, targetPort: echo.port });
    // 127.0.0.2 and .5 are local (127/8 on lo) without being interface addresses. The native
    // engine's one wildcard socket answers them from themselves (IP_PKTINFO). The TypeScript
    // engine is one wildcard socket too (so no other user can bind them, issue 11), and Node
    // cannot choose a reply's source: it answers from the address routing picks for the client,
    // 127.0.0.1 here (README, "UDP behaviour").
    for (const dst of ['127.0.0.1', '127.0.0.2', '127.0.0.5']) {
      const client = await udpSocket('udp4', V4);
      const { msg, rinfo } = await request(client, `to ${dst}`, port, dst, { tries: 3 });
      expect(msg.toString()).toBe(`to ${dst}`);
      expect(rinfo).toMatchObject({ address: engine === 'native' ? dst : V4, port });
    }
  });
});

describe('reply source address (own network namespace)', () => {
  it('replies from the address the client sent to, with the listener on a wildcard', async (ctx) => {
    needs(ctx, [!canUnshare && 'unshare -n (root, util-linux) and ip (iproute2)']);
    const out = (await inNamespace('udp-reply-source', [
      'ip link set lo up',
      'ip addr add 127.0.0.2/8 dev lo',
      'ip -6 addr add fd00::2/128 dev lo nodad',
    ])) as {
      port: number;
      bound4: string[];
      bound6: string[];
      from: Record<string, string>;
      closed2: boolean;
    };
    const p = out.port;
    // One exclusive socket per interface address (in the kernel's order), no catch-all.
    expect(out.bound4.sort()).toEqual(['127.0.0.1', '127.0.0.2']);
    expect(out.bound6.sort()).toEqual(['::1', 'fd00::2']);
    expect(out.from).toEqual({
      '127.0.0.2': `127.0.0.2 ${p}`,
      '127.0.0.1': `127.0.0.1 ${p}`,
      // Local but not an interface address: not served by the TypeScript engine (a catch-all
      // would need SO_REUSEADDR, which lets other users in; documented in the README).
      '127.0.0.5': 'no reply',
      'fd00::2': `fd00::2 ${p}`,
      '::1': `::1 ${p}`,
      // Added while running: the address watcher bound it.
      '127.0.0.3': `127.0.0.3 ${p}`,
    });
    expect(out.closed2).toBe(true);
  });
});

describe('a wildcard with no local address of its family (own network namespace)', () => {
  it('holds the port with the wildcard alone, then binds the addresses that appear', async (ctx) => {
    needs(ctx, [!canUnshare && 'unshare -n (root, util-linux) and ip (iproute2)']);
    // lo stays down until the child brings it up: no IPv4 address at all.
    const out = (await inNamespace('udp-placeholder', [])) as Record<string, unknown>;
    const p = out.port as number;
    expect(out).toEqual({
      before: ['0.0.0.0'],
      wildcardBefore: 'EADDRINUSE',
      added: ['127.0.0.1'],
      removed: 1,
      after: ['127.0.0.1'],
      wildcardAfter: 'EADDRINUSE',
      reply: `hi from 127.0.0.1:${p}`,
      port: p,
    });
  });
});
