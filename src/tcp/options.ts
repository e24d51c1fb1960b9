// The TCP forwarder's options, defaults, validation, counters and ending names: one place that the
// TypeScript relay, the native engine and the CLI's help all read.
import { OptionError, UsageError } from '../errors.js';
import type { TcpDialer } from '../forwarder.js';
import type { Logger } from '../logger.js';
import type { ReadPath } from './shared-reads.js';

/** MAX_TIMER_MS is the longest delay a Node timer can hold. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface TcpForwarderOptions {
  /** IP or hostname of the target (a hostname is resolved on every connection). */
  targetHost: string;
  targetPort: number;
  /** connectTimeoutMs bounds each target connection attempt; 0 leaves it to the OS. Default 5000. */
  connectTimeoutMs?: number;
  /** idleTimeoutMs closes a pair with no traffic either way for that long; 0 (default) = never, as Docker. */
  idleTimeoutMs?: number;
  /**
   * halfCloseLingerMs bounds a half-closed pair: once either side has sent its FIN, the pair is
   * destroyed when the direction still open makes no progress for this long. Default 60000, the
   * kernel's own tcp_fin_timeout for orphaned half-closed sockets: long enough for a request
   * answered after the client's FIN (and any streaming reply, which keeps it alive), short
   * enough that a target that never closes cannot pile up pairs in CLOSE_WAIT (docker/for-linux#335).
   * 0 = no bound, as docker-proxy.
   */
  halfCloseLingerMs?: number;
  /** maxConnections caps concurrent pairs; beyond it new clients are reset. 0 (default) = no cap. */
  maxConnections?: number;
  /**
   * dial opens each pair's target connection instead of connecting to targetHost:targetPort
   * (`portpub run`: the agent in the service's namespace dials). The client is read only once
   * its promise resolves; a rejection is a failed connect (the client is reset).
   */
  dial?: TcpDialer;
  /** readPath picks how sockets are read (see shared-reads.ts); default tcpReadPath(). */
  readPath?: ReadPath;
  /**
   * loopsVia, for a hostname target (resolved again for each connection), says whether the
   * address a connection reached goes round through other running portpubs back to this one
   * (publish/peer-loop.ts): true cuts the pair as a loop (counted in connectionsLooped),
   * undefined while that is not known yet. Unused for an IP literal, checked once at start.
   */
  loopsVia?: (address: string) => boolean | undefined;
  logger?: Logger;
}

export interface TcpStats {
  connectionsActive: number;
  connectionsTotal: number;
  connectionsRejected: number;
  connectFailures: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  /**
   * connectionsLooped counts accepted connections dropped because they came from one of this
   * process's own target-side sockets: portpub forwarding into itself (issue 13).
   */
  connectionsLooped?: number;
  /** sharedReadsCaptured counts reads whose shared buffer a pending write took (shared reads). */
  sharedReadsCaptured?: number;
  /** sharedReadsRestored counts reads copied out of a captured buffer and put back. */
  sharedReadsRestored?: number;
}

/** TcpEnding says how a pair ended, in the per-connection close log line. */
export type TcpEnding =
  | 'end'
  | 'reset-by-client'
  | 'reset-by-target'
  | 'idle-timeout'
  | 'linger-timeout'
  | 'destroyed'
  | 'connect-failed';

/** TcpSettings are validated options with the defaults applied. */
export interface TcpSettings {
  targetHost: string;
  targetPort: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  halfCloseLingerMs: number;
  maxConnections: number;
}

/** DEFAULTS are the TCP forwarder's defaults, in milliseconds (the CLI shows them as durations). */
export const DEFAULTS = {
  connectTimeoutMs: 5000,
  idleTimeoutMs: 0,
  halfCloseLingerMs: 60_000,
  maxConnections: 0,
} as const;

/** validateTcpOptions applies the defaults and rejects bad options, naming the option. */
export function validateTcpOptions(options: TcpForwarderOptions): TcpSettings {
  if (typeof options !== 'object' || options === null) {
    throw new UsageError('TcpForwarder options must be an object');
  }
  const { targetHost, targetPort } = options;
  if (typeof targetHost !== 'string' || targetHost.trim() === '') {
    throw new OptionError('targetHost', `targetHost must be a non-empty IP address or hostname`);
  }
  if (!Number.isInteger(targetPort) || targetPort < 1 || targetPort > 65535) {
    throw new OptionError(
      'targetPort',
      `targetPort must be a whole number 1-65535, got ${String(targetPort)}`,
    );
  }
  if (options.dial !== undefined && typeof options.dial !== 'function') {
    throw new OptionError(
      'dial',
      'dial must be a function returning a promise of a connected socket',
    );
  }
  if (options.loopsVia !== undefined && typeof options.loopsVia !== 'function') {
    throw new OptionError('loopsVia', 'loopsVia must be a function of an address');
  }
  if (options.readPath !== undefined && !['shared', 'targets', 'data'].includes(options.readPath)) {
    throw new OptionError(
      'readPath',
      `readPath must be 'shared', 'targets' or 'data', got ${JSON.stringify(options.readPath)}`,
    );
  }
  const settings: TcpSettings = { targetHost, targetPort, ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    const value = options[key];
    if (value === undefined) continue;
    const max = key === 'maxConnections' ? Number.MAX_SAFE_INTEGER : MAX_TIMER_MS;
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new OptionError(key, `${key} must be a whole number 0-${max}, got ${String(value)}`);
    }
    settings[key] = value;
  }
  return settings;
}
