// The control socket: each serving process answers live-stats requests on a Unix socket beside
// its state file (`<dir>/<pid>.sock`, mode 0600, in the 0700 state directory). One JSON request
// per line in, one JSON answer per line out; `portpub stats`, `top` and `ui` are its clients.
import { chmodSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { PortpubError, EXIT_RUNTIME } from '../errors.js';
import type { Logger } from '../logger.js';
import { removeQuietly } from '../registry/state.js';
import type { LiveSource, Snapshot } from './live.js';
import { ERR_CONTROL } from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_CONTROL };

/** ControlRequest is one line a client sends. */
export interface ControlRequest {
  op: 'stats' | 'connections';
}

/** The longest request line accepted; anything longer is not a client of ours. */
const MAX_REQUEST = 1024;

/** controlPath is where process `pid` with state directory `dir` listens. */
export function controlPath(dir: string, pid: number): string {
  return join(dir, `${pid}.sock`);
}

/** Control is a listening control socket; close() stops it and removes the socket file. */
export interface Control {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * startControl listens on `path` and answers from `source`. A file already there is removed
 * first: the path carries our pid, so it can only be left over from a dead process.
 */
export async function startControl(
  source: LiveSource,
  path: string,
  logger: Logger,
): Promise<Control> {
  removeQuietly(path);
  const clients = new Set<Socket>();
  const server: Server = createServer((socket) => {
    clients.add(socket);
    socket.on('close', () => clients.delete(socket));
    socket.on('error', () => socket.destroy());
    serveClient(socket, source, logger);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // The directory is 0700 already; the socket itself is owner-only too, in case it is moved.
  chmodSync(path, 0o600);
  server.on('error', (err) => logger.warn({ err: err.message }, 'control socket error'));
  let closing: Promise<void> | undefined;
  return {
    path,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of clients) c.destroy();
        removeQuietly(path);
      });
      return closing;
    },
  };
}

/** serveClient answers each request line of one connection, in order. */
function serveClient(socket: Socket, source: LiveSource, logger: Logger): void {
  let buffered = '';
  let queue = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      queue = queue
        .then(() => answer(line, source))
        .then(
          (reply) => {
            if (!socket.destroyed) socket.write(`${reply}\n`);
          },
          (err: unknown) => {
            logger.warn({ err: (err as Error).message }, 'control request failed');
            socket.destroy();
          },
        );
    }
    // What is left has no newline yet: a request longer than any of ours is not a client.
    if (buffered.length > MAX_REQUEST) socket.destroy();
  });
}

async function answer(line: string, source: LiveSource): Promise<string> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return JSON.stringify({ error: 'request is not JSON' });
  }
  const op = (req as { op?: unknown } | null)?.op;
  if (op !== 'stats' && op !== 'connections') {
    return JSON.stringify({ error: `unknown op: ${JSON.stringify(op)}` });
  }
  return JSON.stringify(await source.snapshot(op === 'connections'));
}

/**
 * ControlClient is one open connection to a process's control socket, for repeated requests
 * (a live table asks once a second).
 */
export class ControlClient {
  private buffered = '';
  private waiting: { resolve: (s: Snapshot) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new ControlError(path, err.message)));
    socket.on('close', () => this.fail(new ControlError(path, 'connection closed')));
  }

  /** connect opens `path`, failing with ERR_CONTROL within timeoutMs. */
  static connect(path: string, timeoutMs = 2_000): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ControlError(path, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new ControlError(path, err.message));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ControlClient(socket, path));
      });
    });
  }

  /** request sends one request and resolves its snapshot; rejects after timeoutMs. */
  request(op: ControlRequest['op'], timeoutMs = 5_000): Promise<Snapshot> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new ControlError(this.path, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push({
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(`${JSON.stringify({ op } satisfies ControlRequest)}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const next = this.waiting.shift();
      if (!next) continue;
      let reply: Snapshot & { error?: string };
      try {
        reply = JSON.parse(line) as Snapshot & { error?: string };
      } catch {
        next.reject(new ControlError(this.path, 'answer is not JSON'));
        continue;
      }
      if (reply.error !== undefined) next.reject(new ControlError(this.path, reply.error));
      else next.resolve(reply);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
    this.socket.destroy();
  }
}

/** ControlError: the control socket at `path` could not be used. */
export class ControlError extends PortpubError {
  constructor(path: string, why: string) {
    super(ERR_CONTROL, `control socket ${path}: ${why}`, EXIT_RUNTIME);
  }
}
