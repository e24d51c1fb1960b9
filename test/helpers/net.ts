// TCP test fixtures on loopback: servers and clients on port 0, deadlines, deterministic data
// with its SHA-256, and log capture. Everything opened here is closed when the test ends.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { onTestFinished } from 'vitest';
import { reservePorts } from './ports.js';

/**
 * track registers x's cleanup for the end of the current test and returns x. Without an explicit
 * cleanup it calls x.destroy() if x has one, else x.close(); errors from cleanup are ignored.
 */
export function track<T extends object>(x: T, cleanup?: (x: T) => unknown): T {
  onTestFinished(async () => {
    try {
      if (cleanup) await cleanup(x);
      else if ('destroy' in x && typeof x.destroy === 'function') (x.destroy as () => void)();
      else if ('close' in x && typeof x.close === 'function') (x.close as () => void)();
    } catch {
      // already gone
    }
  });
  return x;
}

/** withDeadline resolves like p, or rejects naming `what` if p takes longer than ms. */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** waitFor polls cond every few milliseconds until it holds, or throws after timeoutMs. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * settled resolves read()'s value once it has stopped changing for quietMs: the only way to
 * observe that a flow has stalled (nothing more moves) rather than finished. Throws after
 * timeoutMs.
 */
export async function settled(
  read: () => number,
  what: string,
  quietMs = 300,
  timeoutMs = 15_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let value = read();
  let since = Date.now();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = Date.now();
    const next = read();
    if (next !== value) {
      value = next;
      since = now;
    } else if (now - since >= quietMs) {
      return value;
    }
    if (now > deadline) throw new Error(`${what} still changing after ${timeoutMs} ms`);
  }
}

/** TcpServer is a listening server on port 0 that counts the connections it accepted and closed. */
export interface TcpServer {
  server: net.Server;
  host: string;
  port: number;
  /** Sockets accepted and not yet closed. */
  sockets: Set<net.Socket>;
  accepted: number;
  closed: number;
  /** next resolves the next accepted socket not yet taken, in accept order. */
  next(timeoutMs?: number): Promise<net.Socket>;
  close(): Promise<void>;
}

/**
 * tcpServer listens on host:port (port 0 by default) with allowHalfOpen, calls onSocket for each
 * accepted socket (which already has an 'error' listener; sockets are also handed out by
 * next()), and is closed, with every socket it
 * accepted destroyed, when the test ends.
 */
export async function tcpServer(
  onSocket: (socket: net.Socket) => void,
  host = '127.0.0.1',
  port = 0,
): Promise<TcpServer> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true });
  const untaken: net.Socket[] = [];
  const waiters: ((socket: net.Socket) => void)[] = [];
  const fixture: TcpServer = {
    server,
    host,
    port: 0,
    sockets: new Set(),
    accepted: 0,
    closed: 0,
    next: (timeoutMs = 5_000) => {
      const socket = untaken.shift();
      if (socket) return Promise.resolve(socket);
      return withDeadline(
        new Promise((resolve) => waiters.push(resolve)),
        timeoutMs,
        `a connection to ${host}:${fixture.port}`,
      );
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of fixture.sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  track(fixture, (f) => f.close());
  server.on('connection', (socket) => {
    fixture.accepted++;
    fixture.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      fixture.sockets.delete(socket);
      fixture.closed++;
    });
    onSocket(socket);
    const waiter = waiters.shift();
    if (waiter) waiter(socket);
    else untaken.push(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fixture.port = (server.address() as net.AddressInfo).port;
  return fixture;
}

/** echoServer echoes every byte back and ends its side when the client ends (half-close aware). */
export function echoServer(host = '127.0.0.1'): Promise<TcpServer> {
  return tcpServer((socket) => socket.pipe(socket), host);
}

/**
 * freePort returns a port nothing listens on (TCP or UDP) from this worker's own port block
 * (helpers/ports.ts): a dead target, or a port to hand to portpub. freePorts(n) returns the first
 * of n consecutive ones.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return reservePorts(1, host);
}

export function freePorts(count: number, host = '127.0.0.1'): Promise<number> {
  return reservePorts(count, host);
}

/**
 * connectTcp connects with allowHalfOpen and resolves the connected socket; it has a no-op
 * 'error' listener (tests look at errors through outcome()) and is destroyed at the test's end.
 */
export function connectTcp(
  port: number,
  host = '127.0.0.1',
  timeoutMs = 5_000,
): Promise<net.Socket> {
  const socket = track(net.connect({ port, host, allowHalfOpen: true, noDelay: true }));
  socket.on('error', () => undefined);
  return withDeadline(
    new Promise<net.Socket>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
    }),
    timeoutMs,
    `connect to ${host}:${port}`,
  );
}

/** Outcome is how a socket ended: with a FIN ('end'), or an error code (ECONNRESET ...). */
export interface Outcome {
  ended: boolean;
  error: string | undefined;
  /** Bytes received before the socket closed. */
  received: Buffer;
}

/**
 * outcome reads the socket to its close and says how it ended; the data is kept up to maxBytes.
 * On the peer's FIN it ends its own side too (as a client without allowHalfOpen would), so the
 * socket closes. Attach it before the socket can end, since it consumes the data.
 */
export function outcome(
  socket: net.Socket,
  timeoutMs = 5_000,
  maxBytes = 1 << 20,
): Promise<Outcome> {
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  let error: string | undefined;
  socket.on('data', (chunk: Buffer) => {
    if (size + chunk.length <= maxBytes) chunks.push(chunk);
    size += chunk.length;
  });
  socket.on('end', () => {
    ended = true;
    socket.end();
  });
  socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  socket.resume();
  return withDeadline(
    new Promise<Outcome>((resolve) => {
      socket.once('close', () => resolve({ ended, error, received: Buffer.concat(chunks) }));
    }),
    timeoutMs,
    'the socket to close',
  );
}

/**
 * connectOutcome connects and resolves how the connection ended, like outcome. A reset that
 * arrives before the connect completes (the server resets at once) counts as that reset.
 */
export function connectOutcome(
  port: number,
  host = '127.0.0.1',
  timeoutMs = 5_000,
): Promise<Outcome> {
  const socket = track(net.connect({ port, host, allowHalfOpen: true }));
  return outcome(socket, timeoutMs); // outcome's own 'error' listener records a connect error too
}

/** readToEnd resolves everything the socket receives up to its FIN (the socket may stay open). */
export function readToEnd(socket: net.Socket, timeoutMs = 5_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  return withDeadline(
    new Promise<Buffer>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('end', () => resolve(Buffer.concat(chunks)));
    }),
    timeoutMs,
    'the end of the stream',
  );
}

/**
 * pushEcho writes n bytes (each `fill`) to a connection whose far end echoes, and resolves once n
 * bytes came back (the bytes are counted, not compared: for counters that must reach n).
 */
export async function pushEcho(socket: net.Socket, n: number, fill = 3): Promise<void> {
  let got = 0;
  const onData = (d: Buffer) => (got += d.length);
  socket.on('data', onData);
  socket.write(Buffer.alloc(n, fill));
  await waitFor(() => got === n, `${n} bytes echoed`, 10_000);
  socket.off('data', onData);
}

/** roundTrip writes payload to an echo and resolves once as many bytes came back. */
export function roundTrip(socket: net.Socket, payload: string, timeoutMs = 5_000): Promise<string> {
  return withDeadline(
    new Promise<string>((resolve, reject) => {
      let got = '';
      const onData = (chunk: Buffer): void => {
        got += chunk.toString('utf8');
        if (got.length >= payload.length) {
          socket.off('data', onData);
          socket.off('close', onClose);
          resolve(got);
        }
      };
      const onClose = (): void => reject(new Error(`socket closed after ${got.length} bytes`));
      socket.on('data', onData);
      socket.once('close', onClose);
      socket.write(payload);
    }),
    timeoutMs,
    `echo of ${payload.length} bytes`,
  );
}

const CHUNK = 1 << 20;

/**
 * patternBlock is 1 MiB of pseudo-random bytes (xorshift32) for seed: the raw material of
 * sendPattern, cheap to make and different per seed.
 */
function patternBlock(seed: number): Buffer {
  const block = Buffer.allocUnsafe(CHUNK);
  let x = seed | 0 || 1;
  for (let i = 0; i < CHUNK; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block.writeInt32LE(x, i);
  }
  return block;
}

/**
 * sendPattern writes `bytes` of deterministic data (seeded; every 1 MiB chunk stamped with its
 * index, so reordering shows) honouring backpressure, then ends the socket unless `end` is false.
 * Resolves the SHA-256 (hex) of what it wrote. Memory stays at a few chunks whatever the size.
 */
export function sendPattern(
  socket: net.Socket,
  bytes: number,
  seed: number,
  { end = true } = {},
): Promise<string> {
  const block = patternBlock(seed);
  const hash = createHash('sha256');
  let sent = 0;
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    const pump = (): void => {
      while (sent < bytes) {
        const size = Math.min(CHUNK, bytes - sent);
        const chunk = Buffer.allocUnsafe(size);
        block.copy(chunk, 0, 0, size);
        if (size >= 8) chunk.writeDoubleLE(sent / CHUNK, 0);
        hash.update(chunk);
        sent += size;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.off('error', onError);
      if (end) socket.end();
      resolve(hash.digest('hex'));
    };
    pump();
  });
}

/** Received is what hashIncoming saw: byte count and SHA-256 (hex). */
export interface Received {
  bytes: number;
  sha256: string;
}

/**
 * hashIncoming consumes the socket to its end and resolves the count and SHA-256 of its bytes.
 * With pauseEvery, it stops reading for 2 ms after every that many bytes: a slow reader, so
 * whoever writes to it keeps meeting a full socket buffer.
 */
export function hashIncoming(
  socket: net.Socket,
  { pauseEvery = 0 }: { pauseEvery?: number } = {},
): Promise<Received> {
  const hash = createHash('sha256');
  let bytes = 0;
  let sincePause = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      sincePause += chunk.length;
      if (pauseEvery > 0 && sincePause >= pauseEvery) {
        sincePause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), 2);
      }
    });
    socket.once('error', reject);
    socket.once('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    socket.resume();
  });
}

/** LogLine is one parsed pino record. */
export type LogLine = Record<string, unknown> & { level: number; msg: string };

/** captureLogger records pino's JSON lines (debug and up) so a test can inspect them. */
export function captureLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (l) lines.push(JSON.parse(l) as LogLine);
      }
      cb();
    },
  });
  return { logger: pino({ level: 'debug', base: undefined }, sink), lines };
}

/** vmRssBytes reads a live process's resident set size from /proc/PID/status. */
export async function vmRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}
