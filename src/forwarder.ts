// The shapes every engine shares: the lifecycle of one forwarder (one bound host socket relaying to
// one target), the live view of what it carries, and the seam through which a target is reached.
// tcp/ and udp/ implement them; publish/ and the live views (stats, top, metrics) use only these.
import type { Socket } from 'node:net';
import type dgram from 'node:dgram';

/** BoundAddress is where a forwarder listens, as the OS reports it. */
export interface BoundAddress {
  address: string;
  family: string;
  port: number;
}

/**
 * ConnectionInfo is one live TCP connection or UDP flow, for `portpub top` and the page: who the
 * client is, which host address it reached, the target-side socket, age and idle time, bytes each
 * way, and its state.
 */
export interface ConnectionInfo {
  protocol: 'tcp' | 'udp';
  /** client is the peer's `ip:port` (IPv6 in brackets). */
  client: string;
  /** host is the local `ip:port` the client reached. */
  host: string;
  /** targetLocal is the local `ip:port` of the socket that talks to the target, '' before it exists. */
  targetLocal: string;
  /** target is the target's `ip:port` as dialled ('' until known). */
  target: string;
  /** openedAt and lastActivityAt are Date.now() values. */
  openedAt: number;
  lastActivityAt: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  state: 'connecting' | 'open' | 'half-closed' | 'draining';
}

/**
 * Forwarder is one engine serving one bound host socket. close() is graceful and idempotent (stop
 * taking new clients, let the live ones finish), destroy() immediate; neither closes the bound
 * socket's port before the owner says so.
 */
export interface Forwarder<Stats> {
  readonly protocol: 'tcp' | 'udp';
  readonly address: BoundAddress;
  stats(): Stats;
  connections(): ConnectionInfo[];
  close(): Promise<void>;
  destroy(): void;
}

/**
 * TcpDialer opens the target side of one TCP pair and resolves with a connected socket (or
 * rejects with the connect error, which the pair treats as a failed target connect: the client
 * is reset). Without one, the forwarder dials targetHost:targetPort itself (its fast path);
 * `portpub run` passes one that asks the agent inside the service's network namespace to dial
 * and hands the connected socket back over IPC.
 */
export type TcpDialer = () => Promise<Socket>;

/**
 * UdpDialer opens the target side of one UDP flow: a socket connected to the target, from which
 * the forwarder sends the client's datagrams and reads the replies. The default creates a dgram
 * socket and connects it to targetHost:targetPort; `portpub run` gets one from the agent.
 */
export type UdpDialer = () => Promise<dgram.Socket>;
