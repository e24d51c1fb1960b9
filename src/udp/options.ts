// What a UdpForwarder takes and reports: its options with their defaults and validation, the
// drop reasons and the stats shape. Shared by the TypeScript forwarder and any other engine
// serving a UDP binding (the native one takes the same options and reports the same stats).
import { OptionError, UsageError } from '../errors.js';
import type { UdpDialer } from '../forwarder.js';
import { silentLogger, type Logger } from '../logger.js';
import { monotonicClock, type Clock } from './sessions.js';

/** UDP_DEFAULTS are the forwarder's defaults, for the CLI's help and the docs. */
export const UDP_DEFAULTS = {
  /** flowTimeoutMs: Docker's UDP flow timeout (90 s). */
  flowTimeoutMs: 90_000,
  maxFlows: 4096,
  addressWatchIntervalMs: 10_000,
} as const;

export interface UdpForwarderOptions {
  /** targetHost: an IP literal of either family, or a hostname looked up once (first flow). */
  targetHost: string;
  targetPort: number;
  /**
   * flowTimeoutMs: a flow ends this long after its last datagram sent TO the target (Docker's
   * rule: replies do not count); default 90 000.
   */
  flowTimeoutMs?: number;
  /**
   * maxFlows: most flows at once; a new client beyond it evicts the least recently active flow
   * (counted in stats().evictions); default 4096.
   */
  maxFlows?: number;
  logger?: Logger;
  /** now: clock for expiry and warning rate limits (ms, never backwards); default monotonic. */
  now?: Clock;
  /**
   * addressWatchIntervalMs: how often a wildcard listener re-scans local addresses and binds or
   * closes per-address sockets; 0 disables; default 10 000.
   */
  addressWatchIntervalMs?: number;
  /**
   * dial opens each new flow's target side (a connected dgram socket) instead of the forwarder
   * creating one to targetHost:targetPort, which then only name the target in logs. Datagrams
   * that arrive before it resolves wait in the flow's bounded queue (beyond it: queue-full).
   */
  dial?: UdpDialer;
}

/** UdpDropReason names why a datagram was dropped; the keys of UdpStats.drops. */
export type UdpDropReason =
  | 'queue-full'
  | 'client-queue-full'
  | 'flow-setup'
  | 'flow-closed'
  | 'target-refused'
  | 'target-send'
  | 'client-send'
  | 'too-large'
  | 'loop';

/** UDP_DROP_REASONS documents each drop counter. */
export const UDP_DROP_REASONS: Readonly<Record<UdpDropReason, string>> = {
  'queue-full':
    'a flow already holds too much for the target (socket still connecting, or send queue full)',
  'client-queue-full': 'the listening socket already holds too much for clients',
  'flow-setup':
    'the flow socket could not be created or connected, or the target name not resolved',
  'flow-closed': 'the flow was evicted or closed while its datagrams waited for its socket',
  'target-refused':
    'the target host sent ICMP port unreachable (nothing listening yet); one per ICMP error seen',
  'target-send': 'sending to the target failed',
  'client-send': 'sending a reply to the client failed',
  'too-large': 'larger than the other side family allows (65507 bytes over IPv4)',
  loop: "its source is one of this process's own target-side sockets: portpub forwarding into itself",
};

/** noDrops is a drops record with every reason at zero. */
export function noDrops(): Record<UdpDropReason, number> {
  const drops = {} as Record<UdpDropReason, number>;
  for (const reason of Object.keys(UDP_DROP_REASONS) as UdpDropReason[]) drops[reason] = 0;
  return drops;
}

export interface UdpStats {
  flowsActive: number;
  flowsTotal: number;
  datagramsClientToTarget: number;
  datagramsTargetToClient: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  /** drops counts dropped datagrams by reason; every key is present (see UDP_DROP_REASONS). */
  drops: Record<UdpDropReason, number>;
  /** evictions counts flows ended early because maxFlows was reached. */
  evictions: number;
}

/** ValidUdpOptions is UdpForwarderOptions checked, with every default filled in. */
export interface ValidUdpOptions {
  targetHost: string;
  targetPort: number;
  flowTimeoutMs: number;
  maxFlows: number;
  logger: Logger;
  now: Clock;
  addressWatchIntervalMs: number;
  dial: UdpDialer | undefined;
}

/** validateUdpOptions checks the options once; each message names the option and the constraint. */
export function validateUdpOptions(options: UdpForwarderOptions): ValidUdpOptions {
  if (typeof options !== 'object' || options === null) {
    throw new UsageError('options: expected an object with targetHost and targetPort');
  }
  // `?? default`, not object spread: callers pass `{ flowTimeoutMs: undefined }` through.
  const o: ValidUdpOptions = {
    targetHost: options.targetHost,
    targetPort: options.targetPort,
    flowTimeoutMs: options.flowTimeoutMs ?? UDP_DEFAULTS.flowTimeoutMs,
    maxFlows: options.maxFlows ?? UDP_DEFAULTS.maxFlows,
    addressWatchIntervalMs: options.addressWatchIntervalMs ?? UDP_DEFAULTS.addressWatchIntervalMs,
    now: options.now ?? monotonicClock,
    logger: options.logger ?? silentLogger(),
    dial: options.dial,
  };
  if (typeof o.targetHost !== 'string' || o.targetHost === '') {
    throw new OptionError(
      'targetHost',
      `expected a hostname or IP address, got ${String(o.targetHost)}`,
    );
  }
  if (!Number.isInteger(o.targetPort) || o.targetPort < 1 || o.targetPort > 65535) {
    throw new OptionError('targetPort', `expected an integer 1-65535, got ${String(o.targetPort)}`);
  }
  if (
    typeof o.flowTimeoutMs !== 'number' ||
    !Number.isFinite(o.flowTimeoutMs) ||
    o.flowTimeoutMs <= 0
  ) {
    throw new OptionError(
      'flowTimeoutMs',
      `expected milliseconds > 0, got ${String(o.flowTimeoutMs)}`,
    );
  }
  if (!Number.isSafeInteger(o.maxFlows) || o.maxFlows < 1) {
    throw new OptionError('maxFlows', `expected an integer >= 1, got ${String(o.maxFlows)}`);
  }
  if (!Number.isSafeInteger(o.addressWatchIntervalMs) || o.addressWatchIntervalMs < 0) {
    throw new OptionError(
      'addressWatchIntervalMs',
      `expected an integer >= 0 (0 disables), got ${String(o.addressWatchIntervalMs)}`,
    );
  }
  if (typeof o.now !== 'function') {
    throw new OptionError('now', `expected a function returning milliseconds, got ${typeof o.now}`);
  }
  if (typeof o.logger !== 'object' || o.logger === null || !('warn' in o.logger)) {
    throw new OptionError('logger', 'expected a pino Logger');
  }
  if (o.dial !== undefined && typeof o.dial !== 'function') {
    throw new OptionError(
      'dial',
      `expected a function returning a connected dgram socket, got ${typeof o.dial}`,
    );
  }
  return o;
}
