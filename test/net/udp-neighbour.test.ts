// Another local user must not be able to bind into a portpub UDP port and take its clients'
// datagrams (issue 11, defect 2). The intruder runs as `nobody` (test/fixtures/udp-intruder.ts):
// it binds with SO_REUSEADDR, which Linux lets any user share with another SO_REUSEADDR socket.
// Against both engines, each binding as publish/ binds for it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe, expect, it, onTestFinished } from 'vitest';
import { fixtureProgram } from '../fixtures/udp-programs.js';
import { engines, requireNative, statsMatch, udpForward } from '../helpers/engines.js';
import { echoServer, needs, request, udpSocket, type UdpType } from '../helpers/udp.js';

const SETPRIV = '/usr/bin/setpriv';
const INTRUDER = fixtureProgram('udp-intruder');
const canDrop = process.getuid?.() === 0 && existsSync(SETPRIV);

/** Intruder is the child running as nobody, with its output read line by line. */
interface Intruder {
  child: ChildProcessWithoutNullStreams;
  next(): Promise<Record<string, unknown>>;
}

/**
 * intruder starts the fixture as uid/gid 65534. The program is passed with -e, so nobody needs
 * no access to the checkout (which may sit in a directory nobody cannot enter).
 */
function intruder(port: number, addresses: string[]): Intruder {
  const child = spawn(
    SETPRIV,
    [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      '--input-type=module',
      '-e',
      INTRUDER,
      '--',
      String(port),
      ...addresses,
    ],
    { stdio: 'pipe' },
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const lines = createInterface({ input: child.stdout });
  const queue: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else queue.push(line);
  });
  const next = (): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`intruder said nothing within 10 s; stderr: ${stderr}`)),
        10_000,
      );
      const take = (line: string): void => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      };
      const line = queue.shift();
      if (line !== undefined) take(line);
      else waiting.push(take);
    });
  return { child, next };
}

requireNative();

describe.each(engines)('a UDP binding against another local user (%s engine)', (engine) => {
  it.for([
    ['udp4', '0.0.0.0', '127.0.0.1'],
    ['udp6', '::', '::1'],
  ] as [UdpType, string, string][])(
    'a wildcard %s binding (%s) lets no other user bind its port; the client reaches the target only',
    async ([type, wildcard, loopback], ctx) => {
      needs(ctx, [!canDrop && `root and ${SETPRIV} (to run a child as nobody)`]);
      const echo = await echoServer(type, loopback);
      const { fw, port } = await udpForward(engine, wildcard, {
        targetHost: loopback,
        targetPort: echo.port,
      });
      const other = intruder(port, [loopback, wildcard]);
      expect(await other.next()).toEqual({
        binds: { [loopback]: 'EADDRINUSE', [wildcard]: 'EADDRINUSE' },
      });
      const client = await udpSocket(type, loopback);
      const { msg, rinfo } = await request(client, 'query', port, loopback, { tries: 3 });
      expect(msg.toString()).toBe('query');
      expect(rinfo).toMatchObject({ address: loopback, port });
      other.child.stdin.write('report\n');
      expect(await other.next()).toEqual({ received: [] });
      expect(fw.stats()).toMatchObject({ flowsTotal: 1, datagramsClientToTarget: 1 });
    },
  );

  // The per-address sockets the TypeScript engine used to bind covered only the addresses
  // os.networkInterfaces() lists: 127.0.0.2 (in lo's 127.0.0.0/8, listed as 127.0.0.1 only) was
  // free for anyone, and a client asking there got the intruder's answer.
  it('a wildcard binding holds the local addresses no interface lists (127.0.0.2) too', async (ctx) => {
    needs(ctx, [!canDrop && `root and ${SETPRIV} (to run a child as nobody)`]);
    const echo = await echoServer('udp4', '127.0.0.1');
    const { fw, port } = await udpForward(engine, '0.0.0.0', {
      targetHost: '127.0.0.1',
      targetPort: echo.port,
    });
    const other = intruder(port, ['127.0.0.2', '127.0.0.3']);
    expect(await other.next()).toEqual({
      binds: { '127.0.0.2': 'EADDRINUSE', '127.0.0.3': 'EADDRINUSE' },
    });
    const client = await udpSocket('udp4', '127.0.0.1');
    const { msg } = await request(client, 'query', port, '127.0.0.2', { tries: 3 });
    expect(msg.toString()).toBe('query');
    other.child.stdin.write('report\n');
    expect(await other.next()).toEqual({ received: [] });
    await statsMatch(engine, fw, { flowsTotal: 1, datagramsClientToTarget: 1 });
  });

  // A hostname target used to send even `--engine auto` to the TypeScript engine's per-address
  // sockets; the native engine now serves it (udpForward fails a native case served in
  // TypeScript), and either way nobody binds into the port.
  it('a wildcard binding with a hostname target lets no other user bind its port', async (ctx) => {
    needs(ctx, [!canDrop && `root and ${SETPRIV} (to run a child as nobody)`]);
    const { address, family } = await lookup('localhost');
    const type: UdpType = family === 6 ? 'udp6' : 'udp4';
    const echo = await echoServer(type, address);
    const { fw, port } = await udpForward(engine, '0.0.0.0', {
      targetHost: 'localhost',
      targetPort: echo.port,
    });
    const other = intruder(port, ['127.0.0.1', '127.0.0.2', '0.0.0.0']);
    expect(await other.next()).toEqual({
      binds: { '127.0.0.1': 'EADDRINUSE', '127.0.0.2': 'EADDRINUSE', '0.0.0.0': 'EADDRINUSE' },
    });
    const client = await udpSocket('udp4', '127.0.0.1');
    const { msg, rinfo } = await request(client, 'query', port, '127.0.0.1', { tries: 3 });
    expect(msg.toString()).toBe('query');
    expect(rinfo).toMatchObject({ address: '127.0.0.1', port });
    other.child.stdin.write('report\n');
    expect(await other.next()).toEqual({ received: [] });
    await statsMatch(engine, fw, { flowsTotal: 1, datagramsClientToTarget: 1 });
  });

  it('a specific-address binding lets no other user bind it either', async (ctx) => {
    needs(ctx, [!canDrop && `root and ${SETPRIV} (to run a child as nobody)`]);
    const echo = await echoServer('udp4', '127.0.0.1');
    const { port } = await udpForward(engine, '127.0.0.1', {
      targetHost: '127.0.0.1',
      targetPort: echo.port,
    });
    const other = intruder(port, ['127.0.0.1', '0.0.0.0']);
    expect(await other.next()).toEqual({
      binds: { '127.0.0.1': 'EADDRINUSE', '0.0.0.0': 'EADDRINUSE' },
    });
    other.child.stdin.write('report\n');
    expect(await other.next()).toEqual({ received: [] });
  });
});
