// The TypeScript relay of one TCP pair: a client and its target connection, copied both ways with
// backpressure and half-close, a reset passed on as a reset. A forwarder sees it only through
// Relay (cut it, describe it), so another relay (the native engine's) can stand in its place.
import { connect, isIP, type Socket } from 'node:net';
import { joinHostPort } from '../address.js';
import type { ConnectionInfo, TcpDialer } from '../forwarder.js';
import type { Logger } from '../logger.js';
import { localAddressNow, resetSocket } from '../node-internals.js';
import { KEEPALIVE_MS } from './listener.js';
import type { TcpLogLines } from './log-lines.js';
import type { TcpEnding, TcpSettings, TcpStats } from './options.js';
import { addOwn, removeOwn } from './own-sockets.js';
import {
  readBuffer,
  relayRead,
  sharedReads,
  sweepCaptures,
  type ReadCounters,
  type ReadPath,
} from './shared-reads.js';

/** Relay is what a forwarder needs of one established pair, whichever engine relays it. */
export interface Relay {
  /** cut ends the pair now with a reset on both sides, recording why. */
  cut(how: TcpEnding): void;
  /** info describes the pair for the live view. */
  info(draining: boolean): ConnectionInfo;
}

/** PairOwner is what a Pair needs from its forwarder. */
export interface PairOwner {
  readonly settings: TcpSettings;
  readonly counters: TcpStats & ReadCounters;
  readonly logger: Logger;
  readonly lines: TcpLogLines;
  readonly readPath: ReadPath;
  readonly dial: TcpDialer | undefined;
  /** A hostname target's check against loops through other portpubs (TcpForwarderOptions). */
  readonly loopsVia: ((address: string) => boolean | undefined) | undefined;
  connectFailed(client: string, err: Error | undefined): void;
  finished(pair: Relay): void;
}

export function peerOf(socket: Socket): string {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined ? 'unknown' : joinHostPort(remoteAddress, remotePort ?? 0);
}

function localOf(socket: Socket | undefined): string {
  if (socket === undefined || socket.localAddress === undefined) return '';
  return joinHostPort(socket.localAddress, socket.localPort ?? 0);
}

export function errorCode(err: Error): string | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined) return code;
  // autoSelectFamily (a hostname with A and AAAA records) fails with every attempt's error.
  if (err instanceof AggregateError) {
    return (err.errors[0] as NodeJS.ErrnoException | undefined)?.code;
  }
  return undefined;
}

/**
 * kPair links each socket to its Pair. The event handlers below are shared by every pair and find
 * theirs through it, so a pair allocates no closures: an idle pair's JavaScript heap went from
 * 3.4 to 2.2 KiB that way (closures, their contexts, a timer kept by net after setTimeout(0)),
 * and memory per held connection is what a proxy of idle keep-alive clients runs out of.
 */
const kPair = Symbol('pair');

type PairSocket = Socket & { [kPair]: Pair };

function pairOf(socket: Socket): Pair {
  return (socket as PairSocket)[kPair];
}

function onClientData(this: Socket, chunk: Buffer): void {
  pairOf(this).fromClient(chunk);
}
function onTargetData(this: Socket, chunk: Buffer): void {
  pairOf(this).fromTarget(chunk);
}
function onClientRead(this: Socket, nread: number, buf: Uint8Array): boolean {
  pairOf(this).clientRead(nread, buf);
  return true;
}
function onTargetRead(this: Socket, nread: number, buf: Uint8Array): boolean {
  pairOf(this).targetRead(nread, buf);
  return true;
}
function onClientDrain(this: Socket): void {
  pairOf(this).target?.resume();
}
function onTargetDrain(this: Socket): void {
  pairOf(this).client.resume();
}
function onClientEnd(this: Socket): void {
  const pair = pairOf(this);
  if (pair.target) pair.ended(pair.target);
}
function onTargetEnd(this: Socket): void {
  pairOf(this).ended(pairOf(this).client);
}
function onClientError(this: Socket, err: Error): void {
  pairOf(this).onError(err, 'reset-by-client');
}
function onTargetError(this: Socket, err: Error): void {
  pairOf(this).onError(err, 'reset-by-target');
}
function onSocketClose(this: Socket): void {
  pairOf(this).onClose(this);
}
function onSocketTimeout(this: Socket): void {
  pairOf(this).onTimeout();
}
function onTargetConnect(this: Socket): void {
  pairOf(this).onConnect();
}
function onConnectTimeout(pair: Pair): void {
  pair.onTimeout();
}
function recordTargetNow(pair: Pair): void {
  pair.recordTarget();
}

/**
 * Pair is one client and its target connection. Each direction is a read side feeding a write
 * side: a write() that returns false pauses the reader until 'drain' (bounded memory whatever the
 * speeds); a FIN becomes end() on the other socket; an error on one socket resets the other.
 * net.Socket's autoDestroy closes each socket once both its directions are done, and the pair is
 * over when both sockets have closed (resetSocket makes sure a reset always closes).
 */
export class Pair implements Relay {
  readonly owner: PairOwner;
  readonly client: Socket;
  /** The target socket: undefined while a dialer has not delivered it. */
  target: Socket | undefined;
  /** The client's address, taken at accept only when it will be logged (see peer()). */
  private peerName: string | undefined;
  private readonly started = performance.now();
  private readonly openedAt = Date.now();
  private lastActivityAt = this.openedAt;
  private connectTimer: NodeJS.Timeout | undefined;
  private connected = false;
  private halfClosed = false;
  /** 'timeout' listeners are added with the first socket timeout. */
  private timeoutsWatched = false;
  private how: TcpEnding | undefined;
  private code: string | undefined;
  private up = 0;
  private down = 0;
  private open = 2;
  /** The target socket's key among this process's own sockets (see own-sockets.ts). */
  private ownKey: string | undefined;

  constructor(owner: PairOwner, client: Socket) {
    this.owner = owner;
    this.client = client;
    const { targetHost, targetPort, connectTimeoutMs } = owner.settings;
    // Asking for the client's address costs a system call, an object and two strings per pair:
    // only when the close line will carry it. A warning asks later, while the client is open.
    if (owner.logger.isLevelEnabled('info')) this.peerName = peerOf(client);
    if (owner.logger.isLevelEnabled('debug')) {
      owner.logger.debug({ client: this.peer() }, 'connection opened');
    }
    client.setNoDelay(true); // a no-op when the server already set it (listenTcp's do)
    (client as PairSocket)[kPair] = this;
    client.on('error', onClientError);
    client.on('close', onSocketClose);
    // A timer of its own, not target.setTimeout(): net keeps that one's Timeout (and a bound
    // function) on the socket for good, even once cleared with setTimeout(0).
    if (connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(onConnectTimeout, connectTimeoutMs, this).unref();
    }
    if (owner.dial) {
      this.dialTarget(owner.dial);
      return;
    }
    const target = connect({
      host: targetHost,
      port: targetPort,
      allowHalfOpen: true,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: KEEPALIVE_MS,
      ...(owner.readPath === 'data'
        ? {}
        : { onread: { buffer: readBuffer, callback: onTargetRead } }),
    });
    this.attach(target);
    if (owner.readPath === 'data') target.on('data', onTargetData);
    target.on('connect', onTargetConnect);
    // Node issues connect() for an IP literal on the next tick; by the tick after, the kernel has
    // picked the local port: record it before this process can accept that connection itself.
    process.nextTick(recordTargetNow, this);
  }

  private attach(target: Socket): void {
    this.target = target;
    (target as PairSocket)[kPair] = this;
    target.on('error', onTargetError);
    target.on('close', onSocketClose);
  }

  /** dialTarget takes the target socket from the dialer, already connected. */
  private dialTarget(dial: TcpDialer): void {
    let dialing: Promise<Socket>;
    try {
      dialing = dial();
    } catch (err) {
      dialing = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    dialing.then(
      (target) => {
        if (this.how !== undefined || this.client.destroyed) {
          target.on('error', () => undefined);
          resetSocket(target);
          return;
        }
        target.allowHalfOpen = true;
        target.setNoDelay(true);
        this.attach(target);
        target.on('data', onTargetData);
        if (target.connecting) target.once('connect', onTargetConnect);
        else this.onConnect();
      },
      (err: unknown) => {
        if (this.how !== undefined) return;
        this.onError(err instanceof Error ? err : new Error(String(err)), 'reset-by-target');
        this.onClose(undefined); // no target socket will ever close
      },
    );
  }

  /**
   * recordTarget enters the target connection (local and remote address) among this process's
   * own. Before 'connect' the remote end is the IP literal being dialled (a hostname is recorded
   * once connected); once connected, the socket's own remote address replaces it.
   */
  recordTarget(connected = false): void {
    const target = this.target;
    if (target === undefined || target.destroyed) return;
    if (this.ownKey !== undefined && !connected) return;
    const { targetHost, targetPort } = this.owner.settings;
    const remote = connected
      ? { address: target.remoteAddress, port: target.remotePort }
      : { address: isIP(targetHost) !== 0 ? targetHost : undefined, port: targetPort };
    if (remote.address === undefined || remote.port === undefined) return;
    const local = localAddressNow(target);
    if (local === undefined) return;
    if (this.ownKey !== undefined) removeOwn(this.ownKey);
    this.ownKey = addOwn(local.address, local.port, remote.address, remote.port);
  }

  /** peer names the client in log lines, asking the socket on first use if accept did not. */
  private peer(): string {
    this.peerName ??= peerOf(this.client);
    return this.peerName;
  }

  info(draining: boolean): ConnectionInfo {
    const { targetHost, targetPort } = this.owner.settings;
    const target = this.target;
    return {
      protocol: 'tcp',
      client: this.peer(),
      host: localOf(this.client),
      targetLocal: localOf(target),
      target:
        target?.remoteAddress !== undefined
          ? joinHostPort(target.remoteAddress, target.remotePort ?? 0)
          : this.owner.dial
            ? ''
            : joinHostPort(targetHost, targetPort),
      openedAt: this.openedAt,
      lastActivityAt: this.lastActivityAt,
      bytesClientToTarget: this.up,
      bytesTargetToClient: this.down,
      state: !this.connected
        ? 'connecting'
        : draining
          ? 'draining'
          : this.halfClosed
            ? 'half-closed'
            : 'open',
    };
  }

  cut(how: TcpEnding): void {
    this.how ??= how;
    resetSocket(this.client);
    if (this.target) resetSocket(this.target);
    this.finish();
  }

  onConnect(): void {
    const { client, target } = this;
    if (target === undefined) return;
    const { idleTimeoutMs } = this.owner.settings;
    this.connected = true;
    this.recordTarget(true); // now with the address connected to (a hostname's, too)
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    // A name that now resolves to a portpub whose target leads back here: a loop, cut at once
    // (the reset runs back along it and ends it).
    const reached = target.remoteAddress;
    if (reached !== undefined && this.owner.loopsVia?.(reached) === true) {
      this.owner.counters.connectionsLooped = (this.owner.counters.connectionsLooped ?? 0) + 1;
      this.owner.lines.looped(peerOf(client));
      this.cut('destroyed');
      return;
    }
    if (idleTimeoutMs > 0) this.watchTimeouts(idleTimeoutMs);
    if (this.owner.readPath !== 'shared' || !sharedReads(client, onClientRead)) {
      client.on('data', onClientData);
    }
    target.on('drain', onTargetDrain);
    client.on('drain', onClientDrain);
    client.on('end', onClientEnd);
    target.on('end', onTargetEnd);
    client.resume(); // accepted paused (pauseOnConnect): start reading now the target is there
  }

  fromClient(chunk: Buffer): void {
    this.up += chunk.length;
    this.lastActivityAt = Date.now();
    this.owner.counters.bytesClientToTarget += chunk.length;
    if (!this.target!.write(chunk)) this.client.pause();
  }

  fromTarget(chunk: Buffer): void {
    this.down += chunk.length;
    this.lastActivityAt = Date.now();
    this.owner.counters.bytesTargetToClient += chunk.length;
    if (!this.client.write(chunk)) this.target!.pause();
  }

  clientRead(nread: number, buf: Uint8Array): void {
    this.up += nread;
    this.lastActivityAt = Date.now();
    this.owner.counters.bytesClientToTarget += nread;
    if (!relayRead(this.target!, nread, buf, this.owner.counters)) this.client.pause();
  }

  targetRead(nread: number, buf: Uint8Array): void {
    this.down += nread;
    this.lastActivityAt = Date.now();
    this.owner.counters.bytesTargetToClient += nread;
    if (!relayRead(this.client, nread, buf, this.owner.counters)) this.target!.pause();
  }

  /** ended passes a FIN on to the other socket, `to`. */
  ended(to: Socket): void {
    to.end();
    this.startLinger();
  }

  /** watchTimeouts sets both sockets' inactivity timeout (refreshed by every read and write). */
  private watchTimeouts(ms: number): void {
    const target = this.target!;
    if (!this.timeoutsWatched) {
      this.timeoutsWatched = true;
      this.client.on('timeout', onSocketTimeout);
      target.on('timeout', onSocketTimeout);
    }
    this.client.setTimeout(ms);
    target.setTimeout(ms);
  }

  /**
   * startLinger arms the half-close bound on both sockets. Node's socket timeout is refreshed by
   * every read and completed write on that socket, and each remaining byte is read on one socket
   * and written on the other, so it fires only when the open direction has stalled.
   */
  private startLinger(): void {
    if (this.halfClosed) return;
    this.halfClosed = true;
    const { idleTimeoutMs, halfCloseLingerMs } = this.owner.settings;
    if (halfCloseLingerMs === 0) return;
    this.watchTimeouts(
      idleTimeoutMs === 0 ? halfCloseLingerMs : Math.min(idleTimeoutMs, halfCloseLingerMs),
    );
  }

  onTimeout(): void {
    if (!this.connected) {
      this.connectTimer = undefined;
      this.how ??= 'connect-failed';
      this.owner.connectFailed(this.peer(), undefined);
      this.code = 'ETIMEDOUT';
      this.target?.destroy();
      resetSocket(this.client);
      if (this.target === undefined) this.onClose(undefined); // a dialer that never answered
      return;
    }
    const { idleTimeoutMs, halfCloseLingerMs } = this.owner.settings;
    const lingered =
      this.halfClosed &&
      halfCloseLingerMs > 0 &&
      (idleTimeoutMs === 0 || halfCloseLingerMs <= idleTimeoutMs);
    this.how ??= lingered ? 'linger-timeout' : 'idle-timeout';
    this.client.destroy();
    this.target?.destroy();
  }

  /** onError resets the other socket: the peer then sees a reset too, not a clean end. */
  onError(err: Error, how: TcpEnding): void {
    if (!this.connected) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
      if (how === 'reset-by-client') {
        // The client went away while we were still connecting: just abandon the attempt.
        this.how ??= how;
        this.target?.destroy();
        return;
      }
      if (this.how !== undefined) return; // already failed (a timeout): counted once
      this.how = 'connect-failed';
      this.code ??= errorCode(err);
      this.owner.connectFailed(this.peer(), err);
      resetSocket(this.client);
      return;
    }
    this.how ??= how;
    this.code ??= errorCode(err);
    const other = how === 'reset-by-client' ? this.target : this.client;
    if (other) resetSocket(other);
  }

  onClose(socket: Socket | undefined): void {
    if (socket !== undefined && socket === this.target && this.ownKey !== undefined) {
      removeOwn(this.ownKey);
      this.ownKey = undefined;
    }
    if (--this.open === 0) this.finish();
  }

  private finish(): void {
    if (this.open < 0) return;
    this.open = -1;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    sweepCaptures();
    this.owner.finished(this);
    if (!this.owner.logger.isLevelEnabled('info')) return;
    this.owner.lines.closed({
      client: this.peer(),
      bytesClientToTarget: this.up,
      bytesTargetToClient: this.down,
      durationMs: Math.round(performance.now() - this.started),
      how: this.how ?? 'end',
      code: this.code,
    });
  }
}
