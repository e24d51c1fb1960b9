// One client's UDP flow: its connected socket to the target, the datagrams that wait while that
// socket is set up, the sends both ways with their drop accounting, and the counters a live view
// shows. The forwarder (its FlowOwner) keeps the table of flows, logs and counts.
import dgram from 'node:dgram';
import { joinHostPort } from '../address.js';
import { SEND_BUFFER, literalLookup } from './bind.js';
import type { UdpDropReason } from './options.js';
import type { Session } from './sessions.js';

/** FLOW_RECV_BUFFER is the SO_RCVBUF asked for each target-side socket (see bind.ts). */
const FLOW_RECV_BUFFER = 1 << 20;
/**
 * SEND_QUEUE_LIMIT bounds what libuv may queue in user space on one socket when the kernel's
 * send buffer is full; beyond it a datagram is dropped and counted, never queued.
 */
const SEND_QUEUE_LIMIT = 1 << 20;
/** PENDING_LIMIT bounds the datagrams one flow holds while its target socket is being set up. */
const PENDING_LIMIT = 64;

/**
 * ownTargetSockets counts, by local `ip:port`, the connected target-side sockets of every flow in
 * this process (all forwarders). A datagram from one of them reaching a listener is portpub
 * forwarding into itself (a target that is its own binding, two forwarders pointing at each
 * other); relaying it would open flow after flow.
 */
const ownTargetSockets = new Map<string, number>();

/** isOwnTargetSocket tells whether `ip:port` (IPv6 in brackets) is one of those sockets. */
export function isOwnTargetSocket(address: string): boolean {
  return ownTargetSockets.has(address);
}

/** FlowOwner is what a flow reports to: its forwarder, which ends flows and keeps the counters. */
export interface FlowOwner {
  /** closing is true once the forwarder is closing: late failures are not counted then. */
  closing(): boolean;
  /** now is the forwarder's clock. */
  now(): number;
  /** drop counts and warns one dropped datagram. */
  drop(reason: UdpDropReason, flow: Flow, err?: Error): void;
  /** count adds n dropped datagrams without a warning of their own. */
  count(reason: UdpDropReason, n: number): void;
  /** connected runs once the target-side socket is connected, before the queue is flushed. */
  connected(flow: Flow): void;
  /** failed: the target side could not be set up; the owner ends the flow. */
  failed(flow: Flow, err: Error): void;
  /** broken: the target socket failed for good (not an ICMP refusal); the owner ends the flow. */
  broken(flow: Flow, err: NodeJS.ErrnoException): void;
  sentToTarget(bytes: number): void;
  sentToClient(bytes: number): void;
}

/**
 * Flow is one client's relay: its connected socket to the target and the listening socket the
 * client last wrote to. Its callbacks are made once, when it opens, so the hot path allocates no
 * closures. ICMP port unreachable (ECONNREFUSED on the connected socket) never ends a flow: the
 * send that reports a stale error did not leave, so it is retried once (moby PR #52483).
 */
export class Flow {
  session!: Session<Flow>;
  socket: dgram.Socket | undefined;
  /** pending: datagrams waiting for the socket to be set up and connected; null once connected. */
  pending: Buffer[] | null;
  closed = false;
  /** local is the target-side socket's `ip:port`, '' until it is connected. */
  local = '';
  /** target is the `ip:port` the target-side socket is connected to, '' until then. */
  target = '';
  sourcePort = 0;
  /** Datagrams and bytes relayed each way. */
  toTarget = 0;
  toClient = 0;
  bytesToTarget = 0;
  bytesToClient = 0;
  /** openedAt is Date.now() when the first datagram arrived. */
  readonly openedAt = Date.now();
  /** lastReply is the owner's clock reading of the latest reply from the target. */
  lastReply = -Infinity;
  /** inflight: datagrams handed to socket.send whose callback has not run yet, in send order. */
  private readonly inflight: Buffer[] = [];

  constructor(
    private readonly owner: FlowOwner,
    readonly key: string,
    readonly clientAddress: string,
    readonly clientPort: number,
    public via: dgram.Socket,
    first: Buffer,
  ) {
    this.pending = [first];
  }

  /** connect creates the target-side socket and connects it to address:port. */
  connect(family: 4 | 6, address: string, port: number): void {
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket({
        type: family === 6 ? 'udp6' : 'udp4',
        recvBufferSize: FLOW_RECV_BUFFER,
        sendBufferSize: SEND_BUFFER,
        lookup: literalLookup,
      });
    } catch (err) {
      this.owner.failed(this, err as Error);
      return;
    }
    this.socket = socket;
    socket.on('error', this.onSocketError);
    socket.on('message', this.onReply);
    // Errors from connect (ENETUNREACH, EADDRNOTAVAIL...) arrive as 'error' events.
    socket.connect(port, address, this.onConnect);
  }

  /**
   * adopt takes a target-side socket a dialer opened, already connected; one that is not
   * connected fails the flow.
   */
  adopt(socket: dgram.Socket): void {
    try {
      socket.on('error', this.onSocketError);
      this.socket = socket;
      socket.remoteAddress();
    } catch (err) {
      this.owner.failed(this, new Error('dial: expected a connected dgram socket', { cause: err }));
      return;
    }
    socket.on('message', this.onReply);
    this.onConnect();
  }

  /** fromClient relays one client datagram, or queues it while the target side is set up. */
  fromClient(msg: Buffer, via: dgram.Socket): void {
    this.via = via;
    if (this.pending !== null) {
      if (this.pending.length < PENDING_LIMIT) this.pending.push(msg);
      else this.owner.drop('queue-full', this);
      return;
    }
    this.send(msg);
  }

  /** end closes the flow's socket; what it still held is counted as flow-closed. Idempotent. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pending !== null && this.pending.length > 0 && !this.owner.closing()) {
      this.owner.count('flow-closed', this.pending.length);
    }
    this.pending = null;
    this.inflight.length = 0;
    if (this.local !== '') {
      const n = ownTargetSockets.get(this.local) ?? 1;
      if (n > 1) ownTargetSockets.set(this.local, n - 1);
      else ownTargetSockets.delete(this.local);
    }
    try {
      this.socket?.close();
    } catch {
      // A dialer's socket someone else closed already.
    }
  }

  /** onConnect runs when the target socket is connected: note its addresses, flush the queue. */
  private readonly onConnect = (): void => {
    if (this.closed) return;
    const socket = this.socket!;
    const local = socket.address();
    const remote = socket.remoteAddress();
    this.sourcePort = local.port;
    this.local = joinHostPort(local.address, local.port);
    this.target = joinHostPort(remote.address, remote.port);
    // Before the first send: the datagram may come straight back to one of our listeners.
    ownTargetSockets.set(this.local, (ownTargetSockets.get(this.local) ?? 0) + 1);
    this.owner.connected(this);
    const pending = this.pending ?? [];
    this.pending = null;
    for (const msg of pending) this.send(msg);
  };

  private send(msg: Buffer): void {
    const socket = this.socket!;
    if (socket.getSendQueueSize() >= SEND_QUEUE_LIMIT) {
      this.owner.drop('queue-full', this);
      return;
    }
    this.inflight.push(msg);
    socket.send(msg, this.afterSend);
  }

  private readonly afterSend = (err: Error | null, bytes?: number): void =>
    this.sent(err, bytes, false);

  private readonly afterRetry = (err: Error | null, bytes?: number): void =>
    this.sent(err, bytes, true);

  /** sent is every target send's callback; callbacks arrive in send order. */
  private sent(err: Error | null, bytes: number | undefined, retried: boolean): void {
    const msg = this.inflight.shift();
    if (err === null) {
      this.toTarget++;
      this.bytesToTarget += bytes ?? 0;
      this.owner.sentToTarget(bytes ?? 0);
      return;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' && !retried && msg !== undefined && !this.closed) {
      // The kernel reported an ICMP error left by an earlier datagram (counted as that one's
      // drop), and this one did not leave: sock_error() fails the send. The error is now
      // cleared, so send this datagram once more.
      this.owner.drop('target-refused', this);
      this.inflight.push(msg);
      this.socket!.send(msg, this.afterRetry);
      return;
    }
    if (this.closed || this.owner.closing()) return;
    const reason: UdpDropReason =
      code === 'ECONNREFUSED'
        ? 'target-refused'
        : code === 'EMSGSIZE'
          ? 'too-large'
          : 'target-send';
    this.owner.drop(reason, this, err);
  }

  /** onReply sends a target datagram to the client from the socket the client wrote to. */
  private readonly onReply = (msg: Buffer): void => {
    if (this.closed) return;
    this.lastReply = this.owner.now();
    const via = this.via;
    try {
      if (via.getSendQueueSize() >= SEND_QUEUE_LIMIT) {
        this.owner.drop('client-queue-full', this);
        return;
      }
      via.send(msg, this.clientPort, this.clientAddress, this.afterReply);
    } catch (err) {
      // Only a socket closed under us (its local address went away) gets here.
      this.owner.drop('client-send', this, err as Error);
    }
  };

  private readonly afterReply = (err: Error | null, bytes?: number): void => {
    if (err === null) {
      this.toClient++;
      this.bytesToClient += bytes ?? 0;
      this.owner.sentToClient(bytes ?? 0);
      return;
    }
    if (this.owner.closing()) return;
    const code = (err as NodeJS.ErrnoException).code;
    this.owner.drop(code === 'EMSGSIZE' ? 'too-large' : 'client-send', this, err);
  };

  /** onSocketError handles an 'error' event on the target socket. */
  private readonly onSocketError = (err: NodeJS.ErrnoException): void => {
    if (this.closed) return;
    if (this.pending !== null) {
      // Still connecting: the socket is unusable (no route to the target, no IPv6...).
      this.owner.failed(this, err);
      return;
    }
    if (err.code === 'ECONNREFUSED') {
      // ICMP port unreachable for an earlier datagram: nothing listens on the target yet. The
      // flow stays; when the target comes up, the next datagrams get through (moby PR #52483).
      this.owner.drop('target-refused', this);
      return;
    }
    // Docker ends a flow on any other read error; the client's next datagram opens a new one.
    this.owner.broken(this, err);
  };
}
