// Options shared by the serving commands (`portpub -p` and `portpub up`), and the argument
// parsers that turn option text into values or a commander usage error (exit 2).
import { InvalidArgumentError, Option, type Command } from 'commander';
import { formatDuration, MAX_TIMER_MS, parseCount, parseDurationMs } from '../duration.js';
import { PortpubError } from '../errors.js';
import { createLogger, LOG_LEVELS, type LogFormat, type Logger } from '../logger.js';
import { checkName, parseTargetHost, type NameHolder } from '../docker/names.js';
import { canonicalIp, isIpLiteral, parsePublish, type PortMapping } from '../docker/spec.js';
import { readStates, stateDir } from '../registry/state.js';
import { parseListenAddress } from '../observe/http.js';
import { ENGINE_CHOICES, type EngineChoice } from '../engine/index.js';
import { DEFAULTS as TCP_DEFAULTS } from '../tcp/options.js';
import { UDP_DEFAULTS } from '../udp/forwarder.js';
import {
  DRAIN_TIMEOUT_MS,
  type PublisherOptions,
  type PublishRequest,
} from '../publish/publisher.js';
import type { CliIo } from './context.js';

/** ServeOptions are the options of every command that serves ports. */
export interface ServeOptions {
  defaultHostIp: string;
  json?: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  logFormat?: LogFormat;
  drainTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  udpTimeout: number;
  maxUdpFlows: number;
  tcpWorkers: number;
  /** --engine: the data plane (src/engine): auto, native or js. */
  engine: EngineChoice;
  /** --metrics and --ui: HOST:PORT of the Prometheus endpoint and the live page (src/observe). */
  metrics?: string;
  ui?: string;
}

/**
 * SERVE_DEFAULTS are the serving defaults the help shows: the forwarders' own (src/tcp,
 * src/udp) and the publisher's drain timeout, written nowhere else.
 */
export const SERVE_DEFAULTS = {
  drainTimeoutMs: DRAIN_TIMEOUT_MS,
  connectTimeoutMs: TCP_DEFAULTS.connectTimeoutMs,
  idleTimeoutMs: TCP_DEFAULTS.idleTimeoutMs,
  maxConnections: TCP_DEFAULTS.maxConnections,
  udpTimeoutMs: UDP_DEFAULTS.flowTimeoutMs,
  maxUdpFlows: UDP_DEFAULTS.maxFlows,
} as const;

/**
 * publisherOptions turns the serve options into what startPublisher takes (the forwarders'
 * limits, the host IP, the engine); the caller adds what is its own, such as tcpShare.
 */
export function publisherOptions(
  publish: readonly PublishRequest[],
  opts: Pick<
    ServeOptions,
    | 'defaultHostIp'
    | 'connectTimeout'
    | 'idleTimeout'
    | 'maxConnections'
    | 'udpTimeout'
    | 'maxUdpFlows'
    | 'engine'
  >,
  logger: Logger,
): PublisherOptions {
  return {
    publish,
    defaultHostIp: opts.defaultHostIp,
    tcp: {
      connectTimeoutMs: opts.connectTimeout,
      idleTimeoutMs: opts.idleTimeout,
      maxConnections: opts.maxConnections,
    },
    udp: { flowTimeoutMs: opts.udpTimeout, maxFlows: opts.maxUdpFlows },
    logger,
    engine: opts.engine,
  };
}

/** addServeOptions adds the options every serving command shares. */
export function addServeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--default-host-ip <ip>',
      'host address for mappings that name none (like dockerd --ip); 0.0.0.0 also binds ::',
      ipArg('--default-host-ip'),
      '0.0.0.0',
    )
    .option('--json', 'print the mappings (or the --dry-run plan) as one JSON document')
    .addOption(
      new Option('--log-level <level>', 'log level on stderr')
        .choices(LOG_LEVELS as string[])
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'log format (default: pretty on a terminal, else json)',
      ).choices(['json', 'pretty']),
    )
    .addOption(
      durationOption(
        '--drain-timeout <duration>',
        'on SIGINT/SIGTERM, how long open connections may finish before they are cut',
        SERVE_DEFAULTS.drainTimeoutMs,
      ),
    )
    .addOption(
      durationOption(
        '--connect-timeout <duration>',
        'TCP: how long to wait for the target to accept a connection',
        SERVE_DEFAULTS.connectTimeoutMs,
      ),
    )
    .addOption(
      durationOption(
        '--idle-timeout <duration>',
        'TCP: close connections idle this long in both directions (0 = never, like Docker)',
        SERVE_DEFAULTS.idleTimeoutMs,
      ),
    )
    .option(
      '--max-connections <n>',
      'TCP: most open connections per binding; more are refused (0 = unlimited)',
      countArg('--max-connections'),
      SERVE_DEFAULTS.maxConnections,
    )
    .addOption(
      durationOption(
        '--udp-timeout <duration>',
        'UDP: a client flow ends this long after its last datagram to the target',
        SERVE_DEFAULTS.udpTimeoutMs,
        1,
      ),
    )
    .option(
      '--max-udp-flows <n>',
      'UDP: most client flows per binding; the least recently used is evicted beyond it',
      countArg('--max-udp-flows', 1),
      SERVE_DEFAULTS.maxUdpFlows,
    )
    .option(
      '--tcp-workers <n>',
      'TCP: accept and relay in n processes (this one and n-1 workers); UDP stays in this one',
      countArg('--tcp-workers', 1),
      1,
    )
    .addOption(
      new Option('--engine <engine>', 'data plane: native (C, splice) where it built, or js')
        .choices(ENGINE_CHOICES as string[])
        .default('auto'),
    )
    .option(
      '--metrics <addr>',
      'serve Prometheus metrics on HOST:PORT/metrics',
      addrArg('--metrics'),
    )
    .option('--ui <addr>', 'serve a live page of the mappings on HOST:PORT', addrArg('--ui'));
}

/** makeLogger builds the process logger from the serving options; it writes to io.stderr. */
export function makeLogger(opts: ServeOptions, io: CliIo): Logger {
  return createLogger({
    level: opts.logLevel,
    ...(opts.logFormat ? { format: opts.logFormat } : {}),
    destination: io.stderr,
  });
}

/** parseSpecArg parses one -p value; a bad one is a commander usage error with Docker's text. */
export function parseSpecArg(value: string): PortMapping[] {
  try {
    return parsePublish(value);
  } catch (err) {
    if (err instanceof PortpubError) throw new InvalidArgumentError(err.message);
    throw err;
  }
}

/**
 * checkedArg makes a validator an option parser: its Error becomes commander's, which names the
 * option and the value (exit 2).
 */
export function checkedArg<T>(check: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return check(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

/** addrArg checks a HOST:PORT endpoint address (src/observe's grammar) and keeps the text. */
export function addrArg(flag: string) {
  return checkedArg((value) => {
    parseListenAddress(value, flag);
    return value;
  });
}

/** targetArg checks a target address (IP literal or host name); `[::1]` is taken as `::1`. */
export function targetArg(flag: string) {
  return (value: string): string => {
    const host = parseTargetHost(value);
    if (host === undefined) {
      throw new InvalidArgumentError(
        `${flag}: invalid target address ${JSON.stringify(value)}: must be an IP address or a ` +
          'host name (the port comes from each -p)',
      );
    }
    return host;
  };
}

/** nameArg checks a run name against Docker's container-name rule. */
export function nameArg(flag: string) {
  return (value: string): string => {
    try {
      return checkName(value);
    } catch (err) {
      throw new InvalidArgumentError(`${flag}: ${(err as Error).message}`);
    }
  };
}

/** runNameHolders is who holds a --name now: every live portpub's state, by pid. */
export function runNameHolders(): NameHolder[] {
  return readStates(stateDir()).map((s) => ({ name: s.name, by: `portpub pid ${s.pid}` }));
}

/**
 * ipArg checks an IP literal and returns it as Go's netip writes it (canonicalIp): dockerd keeps
 * --ip as an address, not as text, so `0:0:0:0:0:0:0:1` is shown and stored as `::1`.
 */
export function ipArg(flag: string) {
  return (value: string): string => {
    if (!isIpLiteral(value))
      throw new InvalidArgumentError(`${flag}: invalid IP address: ${value}`);
    return canonicalIp(value);
  };
}

/** durationOption is a duration flag whose help shows its default as typed (`10s`, not 10000). */
export function durationOption(
  flags: string,
  description: string,
  defaultMs: number,
  min = 0,
): Option {
  const flag = flags.split(' ')[0]!;
  return new Option(flags, description)
    .argParser(durationArg(flag, min))
    .default(defaultMs, formatDuration(defaultMs));
}

export function durationArg(flag: string, min = 0) {
  return (value: string): number => {
    const ms = parseDurationMs(value);
    if (ms === undefined || ms < min) {
      throw new InvalidArgumentError(
        `${flag} takes a duration such as 500ms, 10s, 1m30s or 1h${min > 0 ? ' (more than 0)' : ''}`,
      );
    }
    if (ms > MAX_TIMER_MS) {
      throw new InvalidArgumentError(
        `${flag} ${value} is longer than the longest timer Node.js can set ` +
          `(${MAX_TIMER_MS} ms, about 24.8 days)${flag === '--idle-timeout' ? '; 0 means never' : ''}`,
      );
    }
    return ms;
  };
}

export function countArg(flag: string, min = 0) {
  return (value: string): number => {
    const n = parseCount(value);
    if (n === undefined || n < min) {
      throw new InvalidArgumentError(`${flag} takes a whole number >= ${min}`);
    }
    return n;
  };
}
