// The listening side of a TCP binding: bind-to-allocate (the port is held from the bind on), and
// the connections that arrive before a forwarder takes the listener, held unread until then.
import { Server, isIP, type Socket } from 'node:net';
import { UsageError } from '../errors.js';
import { resetSocket } from '../node-internals.js';

/**
 * LISTEN_BACKLOG is what Go (so docker-proxy) asks for: the kernel caps it at
 * net.core.somaxconn. Node's own default (511) overflows under a burst of a few thousand connects,
 * and an overflowing accept queue drops SYNs, which clients see as one-second stalls.
 */
export const LISTEN_BACKLOG = 4096;

/**
 * KEEPALIVE_MS matches Go's default keep-alive (15 s) that docker-proxy's sockets get: a peer that
 * vanished without a FIN or RST is found, and its pair torn down, instead of lingering forever.
 */
export const KEEPALIVE_MS = 15_000;

/**
 * UNCLAIMED_HOLD_MS bounds how long connections accepted before a forwarder takes the listener
 * (the gap between bind-to-allocate and serving) wait for it; then they are reset.
 */
export const UNCLAIMED_HOLD_MS = 5_000;

function ignore(): void {}

/**
 * TcpListener is the net.Server of every TCP binding (so it can be handed to a worker or the
 * native engine like any server) that also holds the connections accepted before a forwarder
 * claims it. allowHalfOpen: a client's FIN must not end our side; pauseOnConnect: read nothing
 * from a client until its target connection exists (the data stays in the kernel meanwhile).
 */
export class TcpListener extends Server {
  private held: Socket[] = [];
  private holdTimer: NodeJS.Timeout | undefined;
  private claimed = false;
  private readonly onEarly = (socket: Socket): void => {
    socket.on('error', ignore);
    this.held.push(socket);
    this.holdTimer ??= setTimeout(() => {
      for (const s of this.held.splice(0)) resetSocket(s);
      this.holdTimer = undefined;
    }, UNCLAIMED_HOLD_MS).unref();
  };

  constructor() {
    super({
      allowHalfOpen: true,
      pauseOnConnect: true,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: KEEPALIVE_MS,
    });
    this.on('connection', this.onEarly);
    // Accept errors before a forwarder exists: nobody to tell, keep listening.
    this.on('error', ignore);
  }

  /** isClaimed says whether a forwarder has taken this listener. */
  get isClaimed(): boolean {
    return this.claimed;
  }

  /**
   * claim hands the listener to its one forwarder: it stops holding connections and returns the
   * ones it held (paused, unread), for the forwarder to serve. A second claim is refused.
   */
  claim(): Socket[] {
    if (this.claimed) throw new UsageError('this server already has a TcpForwarder');
    this.claimed = true;
    this.off('connection', this.onEarly);
    this.off('error', ignore);
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    return this.held.splice(0);
  }
}

/**
 * listenTcp binds and listens, keeping the listener (bind-to-allocate); on failure it rejects with
 * the raw OS error (EADDRINUSE, EACCES, EADDRNOTAVAIL ...) and leaves nothing open. host must be an
 * IP literal. ipv6Only defaults to true for '::', so that 0.0.0.0:P and [::]:P coexist like
 * Docker's V6ONLY sockets. Connections accepted before a TcpForwarder claims the listener are
 * held, unread, and handed to it (or reset after UNCLAIMED_HOLD_MS if none comes).
 */
export function listenTcp(
  host: string,
  port: number,
  opts: { ipv6Only?: boolean; backlog?: number } = {},
): Promise<TcpListener> {
  if (isIP(host) === 0) {
    return Promise.reject(
      new UsageError(`host must be an IP address, got ${JSON.stringify(host)}`),
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(new UsageError(`port must be a whole number 0-65535, got ${port}`));
  }
  return new Promise((resolve, reject) => {
    const listener = new TcpListener();
    const onListenError = (err: Error): void => {
      listener.close();
      reject(err);
    };
    listener.once('error', onListenError);
    try {
      listener.listen(
        {
          host,
          port,
          ipv6Only: opts.ipv6Only ?? host === '::',
          backlog: opts.backlog ?? LISTEN_BACKLOG,
          exclusive: true,
        },
        () => {
          listener.off('error', onListenError);
          resolve(listener);
        },
      );
    } catch (err) {
      listener.off('error', onListenError);
      listener.close();
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

/**
 * adoptTcp serves a listening socket that another process bound and sent over IPC (a TCP
 * worker's side of --tcp-workers) with the options listenTcp gives its listeners, holding early
 * connections the same way.
 */
export function adoptTcp(listening: Server): Promise<TcpListener> {
  return new Promise((resolve, reject) => {
    const listener = new TcpListener();
    listener.once('error', reject);
    listener.listen(listening, () => {
      listener.off('error', reject);
      resolve(listener);
    });
  });
}
