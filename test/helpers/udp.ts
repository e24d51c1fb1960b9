// UDP test fixtures on loopback: echo targets, clients with deadlines, forwarders, polling, and a
// build of the UDP modules for child processes. Everything opened here is closed at the test's end.
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { onTestFinished, type TestContext } from 'vitest';
import { bindUdp } from '../../src/udp/bind.js';
import { UdpForwarder, type UdpForwarderOptions } from '../../src/udp/forwarder.js';

export type UdpType = 'udp4' | 'udp6';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** closeQuietly closes a socket that may already be closed. */
export function closeQuietly(s: dgram.Socket): void {
  try {
    s.close();
  } catch {
    // already closed
  }
}

/** udpSocket binds a socket to port 0 on address; it is closed when the test ends. */
export async function udpSocket(
  type: UdpType,
  address = type === 'udp6' ? '::1' : '127.0.0.1',
  port = 0,
): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  onTestFinished(() => closeQuietly(s));
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, address, () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s;
}

/** port returns a bound socket's port. */
export function portOf(s: dgram.Socket): number {
  return s.address().port;
}

/** Echo is a target: it answers every datagram and remembers the source ports it saw. */
export interface Echo {
  socket: dgram.Socket;
  port: number;
  /** Source ports of the datagrams received, in arrival order. */
  sources: number[];
}

/**
 * echoServer starts a target on address. `mode: 'echo'` sends each datagram back unchanged;
 * `mode: 'port'` answers with the datagram's source port as text (what the target sees).
 */
export async function echoServer(
  type: UdpType,
  address?: string,
  mode: 'echo' | 'port' = 'echo',
  port = 0,
): Promise<Echo> {
  const socket = await udpSocket(type, address, port);
  const echo: Echo = { socket, port: portOf(socket), sources: [] };
  socket.on('message', (msg, rinfo) => {
    echo.sources.push(rinfo.port);
    socket.send(mode === 'echo' ? msg : String(rinfo.port), rinfo.port, rinfo.address);
  });
  return echo;
}

/** forward binds host (port 0 unless given) and starts a forwarder, destroyed at the test's end. */
export async function forward(
  host: string,
  options: UdpForwarderOptions,
  port = 0,
): Promise<{ fw: UdpForwarder; port: number }> {
  const listener = await bindUdp(host, port);
  onTestFinished(() => listener.close());
  const fw = new UdpForwarder(listener, options);
  onTestFinished(() => fw.destroy());
  return { fw, port: listener.port };
}

export interface Reply {
  msg: Buffer;
  rinfo: dgram.RemoteInfo;
}

/** nextMessage resolves the next datagram a socket receives, or rejects after timeoutMs. */
export function nextMessage(s: dgram.Socket, timeoutMs = 2_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
      clearTimeout(timer);
      resolve({ msg, rinfo });
    };
    const timer = setTimeout(() => {
      s.off('message', onMessage);
      reject(new Error(`no datagram within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('message', onMessage);
  });
}

/**
 * request sends payload to host:port and resolves the first reply. UDP may lose a datagram under
 * load, so it resends up to `tries` times, waiting `timeoutMs` for a reply each time.
 */
export async function request(
  s: dgram.Socket,
  payload: string | Buffer,
  port: number,
  host: string,
  { timeoutMs = 2_000, tries = 1 } = {},
): Promise<Reply> {
  let lastError: unknown;
  for (let i = 0; i < tries; i++) {
    const reply = nextMessage(s, timeoutMs);
    s.send(payload, port, host);
    try {
      return await reply;
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`no reply from ${host}:${port} after ${tries} tries`, { cause: lastError });
}

/** waitFor polls cond every few milliseconds until it holds, or throws after timeoutMs. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * buildForChild transpiles src/<entry>.ts and the local modules it imports, recursively, to a
 * temporary ESM directory a child process can import (`<dir>/<entry>.js`). Transpiling (no type
 * check: that is `npm run typecheck`'s job) keeps the test independent of a stale or half-built
 * dist/. Removed when the test ends.
 */
export function buildForChild(entry: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-udp-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const todo = [entry];
  const done = new Set<string>();
  for (let name = todo.pop(); name !== undefined; name = todo.pop()) {
    if (done.has(name)) continue;
    done.add(name);
    const source = readFileSync(join(ROOT, 'src', `${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: `${name}.ts`,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    });
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, `${name}.js`), outputText);
    for (const m of outputText.matchAll(/from '(\.\.?\/[\w./-]+)\.js'/g)) {
      todo.push(posix.join(posix.dirname(name), m[1]!));
    }
  }
  return dir;
}

/**
 * needs skips the test, saying why, when something it needs is missing; under CI=true (.ci/run
 * installs every tool and runs as root) it fails instead, so CI never passes by skipping.
 */
export function needs(ctx: TestContext, missing: (string | false)[]): void {
  const what = missing.filter((m): m is string => m !== false);
  if (what.length === 0) return;
  const reason = `needs ${what.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`${reason} (required under CI=true)`);
  ctx.skip(reason);
}
