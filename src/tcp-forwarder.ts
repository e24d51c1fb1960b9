// TCP relay: accept, connect to the target at once, copy both ways with backpressure and
// half-close, reset the peer when one side resets. Model: moby cmd/docker-proxy tcp_proxy_linux.go.
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { UsageError } from './errors.js';
import { silentLogger, type Logger } from './logger.js';

/** listenTcp binds and listens, keeping the server (bind-to-allocate); rejects with the OS error. */
export function listenTcp(
  host: string,
  port: number,
  opts: { ipv6Only?: boolean; backlog?: number } = {},
): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    const onError = (err: Error) => {
      server.close();
      reject(err);
    };
    server.once('error', onError);
    server.listen(
      {
        host,
        port,
        ipv6Only: opts.ipv6Only ?? false,
        backlog: opts.backlog ?? 4096,
        exclusive: true,
      },
      () => {
        server.off('error', onError);
        resolve(server);
      },
    );
  });
}

export interface TcpForwarderOptions {
  targetHost: string;
  targetPort: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  halfCloseLingerMs?: number;
  maxConnections?: number;
  logger?: Logger;
}

export interface TcpStats {
  connectionsActive: number;
  connectionsTotal: number;
  connectionsRejected: number;
  connectFailures: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
}

const DEFAULTS = {
  connectTimeoutMs: 5000,
  idleTimeoutMs: 0,
  halfCloseLingerMs: 60_000,
  maxConnections: 0,
};

/** TcpForwarder serves one listening server, relaying each accepted client to the target. */
export class TcpForwarder {
  readonly address: AddressInfo;
  private readonly opts: typeof DEFAULTS & { targetHost: string; targetPort: number };
  private readonly logger: Logger;
  private readonly pairs = new Map<Socket, Socket>();
  private readonly counters: TcpStats = {
    connectionsActive: 0,
    connectionsTotal: 0,
    connectionsRejected: 0,
    connectFailures: 0,
    bytesClientToTarget: 0,
    bytesTargetToClient: 0,
  };
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  constructor(
    private readonly server: Server,
    options: TcpForwarderOptions,
  ) {
    this.opts = { ...DEFAULTS, ...stripUndefined(options) } as typeof this.opts;
    for (const k of [
      'connectTimeoutMs',
      'idleTimeoutMs',
      'halfCloseLingerMs',
      'maxConnections',
    ] as const) {
      const v = this.opts[k];
      if (!Number.isInteger(v) || v < 0)
        throw new UsageError(`${k} must be a whole number >= 0, got ${v}`);
    }
    if (
      !Number.isInteger(this.opts.targetPort) ||
      this.opts.targetPort < 1 ||
      this.opts.targetPort > 65535
    ) {
      throw new UsageError(`targetPort must be 1-65535, got ${this.opts.targetPort}`);
    }
    this.logger = options.logger ?? silentLogger();
    this.address = server.address() as AddressInfo;
    server.on('connection', (c: Socket) => this.accept(c));
    server.on('error', (err) => this.logger.error({ err }, 'accept failed'));
  }

  stats(): TcpStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close();
      this.drained = resolve;
      this.checkDrained();
    });
    return this.closing;
  }

  destroy(): void {
    void this.close();
    for (const [c, t] of [...this.pairs]) {
      c.destroy();
      t.destroy();
    }
  }

  private checkDrained(): void {
    if (this.drained && this.pairs.size === 0) this.drained();
  }

  private accept(client: Socket): void {
    if (this.closing) {
      client.destroy();
      return;
    }
    if (this.opts.maxConnections > 0 && this.pairs.size >= this.opts.maxConnections) {
      this.counters.connectionsRejected++;
      this.logger.warn(
        { client: client.remoteAddress, max: this.opts.maxConnections },
        'connection refused: limit reached',
      );
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    this.counters.connectionsTotal++;
    this.counters.connectionsActive++;
    const started = Date.now();
    const target = connect({
      host: this.opts.targetHost,
      port: this.opts.targetPort,
      allowHalfOpen: true,
      noDelay: true,
    });
    this.pairs.set(client, target);
    let connected = false;
    let how = 'end';
    let up = 0;
    let down = 0;
    let clientEnded = false;
    let targetEnded = false;
    let linger: NodeJS.Timeout | undefined;
    const connectTimer = setTimeout(() => {
      target.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    }, this.opts.connectTimeoutMs);

    const finish = () => {
      clearTimeout(connectTimer);
      clearTimeout(linger);
      if (!this.pairs.delete(client)) return;
      this.counters.connectionsActive--;
      this.logger.info(
        {
          client: `${client.remoteAddress}:${client.remotePort}`,
          bytesIn: up,
          bytesOut: down,
          durationMs: Date.now() - started,
          how,
        },
        'connection closed',
      );
      this.checkDrained();
    };
    const both = () => {
      if (client.destroyed && target.destroyed) finish();
    };
    // A side that closed with an error, or was destroyed, takes its peer down with it.
    client.on('close', () => {
      if (!client.readableEnded || !client.writableFinished) target.destroy();
      both();
    });
    target.on('close', () => {
      if (!target.readableEnded || !target.writableFinished) client.destroy();
      both();
    });

    client.on('error', () => {
      how = connected ? 'reset-by-client' : how;
      target.resetAndDestroy();
    });
    target.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) {
        how = 'connect-failed';
        this.counters.connectFailures++;
        this.logger.warn(
          {
            target: `${this.opts.targetHost}:${this.opts.targetPort}`,
            code: err.code,
            err: err.message,
          },
          'cannot connect to target',
        );
      } else {
        how = 'reset-by-target';
      }
      client.resetAndDestroy();
    });

    target.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      client.resume();
    });
    client.on('data', (chunk: Buffer) => {
      up += chunk.length;
      this.counters.bytesClientToTarget += chunk.length;
      if (!target.write(chunk)) client.pause();
    });
    target.on('data', (chunk: Buffer) => {
      down += chunk.length;
      this.counters.bytesTargetToClient += chunk.length;
      if (!client.write(chunk)) target.pause();
    });
    target.on('drain', () => client.resume());
    client.on('drain', () => target.resume());

    const startLinger = () => {
      if (this.opts.halfCloseLingerMs > 0 && !linger) {
        linger = setTimeout(() => {
          how = 'linger-timeout';
          client.destroy();
          target.destroy();
        }, this.opts.halfCloseLingerMs);
        linger.unref();
      }
    };
    client.on('end', () => {
      clientEnded = true;
      target.end();
      if (targetEnded) return;
      startLinger();
    });
    target.on('end', () => {
      targetEnded = true;
      client.end();
      if (clientEnded) return;
      startLinger();
    });
    if (this.opts.idleTimeoutMs > 0) {
      const onIdle = () => {
        how = 'idle-timeout';
        client.destroy();
        target.destroy();
      };
      client.setTimeout(this.opts.idleTimeoutMs, onIdle);
      target.setTimeout(this.opts.idleTimeoutMs, onIdle);
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
