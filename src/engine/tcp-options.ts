// The TCP forwarder's option rules, for the native engine: the same defaults and the same
// messages as src/tcp/forwarder.ts's validate() (keep them in step until that one is exported).
import { UsageError } from '../errors.js';
import type { TcpForwarderOptions } from '../tcp/forwarder.js';

/** MAX_TIMER_MS is the longest delay a Node timer can hold (the TypeScript relay's bound). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const DEFAULTS = {
  connectTimeoutMs: 5000,
  idleTimeoutMs: 0,
  halfCloseLingerMs: 60_000,
  maxConnections: 0,
} as const;

/** TcpSettings are validated options with the defaults applied. */
export interface TcpSettings {
  targetHost: string;
  targetPort: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  halfCloseLingerMs: number;
  maxConnections: number;
}

/** validateTcp applies the defaults and rejects bad options, naming the option. */
export function validateTcp(options: TcpForwarderOptions): TcpSettings {
  if (typeof options !== 'object' || options === null) {
    throw new UsageError('TcpForwarder options must be an object');
  }
  const { targetHost, targetPort } = options;
  if (typeof targetHost !== 'string' || targetHost.trim() === '') {
    throw new UsageError(`targetHost must be a non-empty IP address or hostname`);
  }
  if (!Number.isInteger(targetPort) || targetPort < 1 || targetPort > 65535) {
    throw new UsageError(`targetPort must be a whole number 1-65535, got ${String(targetPort)}`);
  }
  const settings: TcpSettings = { targetHost, targetPort, ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    const value = options[key];
    if (value === undefined) continue;
    const max = key === 'maxConnections' ? Number.MAX_SAFE_INTEGER : MAX_TIMER_MS;
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new UsageError(`${key} must be a whole number 0-${max}, got ${String(value)}`);
    }
    settings[key] = value;
  }
  return settings;
}
