// The seam between the publishing path and the engines: for each bound socket, publish/ asks
// here for a forwarder, and gets the native engine's (native/, if it loaded) or the TypeScript
// one (src/tcp, src/udp), both Forwarder<Stats>. The choice is per binding: a binding the native
// engine cannot serve (a custom dialer; for TCP a hostname target) is served in TypeScript.
import { isIP, type Server } from 'node:net';
import { UnsupportedError, UsageError } from '../errors.js';
import type { Forwarder, TcpDialer } from '../forwarder.js';
import { TcpForwarder, type TcpForwarderOptions, type TcpStats } from '../tcp/forwarder.js';
import type { BindUdpOptions, UdpListener } from '../udp/bind.js';
import { UdpForwarder, type UdpForwarderOptions, type UdpStats } from '../udp/forwarder.js';
import { loadNative, type Loaded } from './load.js';
import { busyPollText, busyPollUs } from './native-engine.js';
import { NativeTcpForwarder } from './native-tcp.js';
import { NativeUdpForwarder } from './native-udp.js';

export { busyPollStats, type BusyPollStats } from './native-engine.js';

/** EngineChoice is `--engine`: auto (native where it loaded, on Linux), native, or js. */
export type EngineChoice = 'auto' | 'native' | 'js';

export const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'native', 'js'];

/** parseEngineChoice checks an `engine` option or `--engine` value, naming it when bad. */
export function parseEngineChoice(value: unknown, name = 'engine'): EngineChoice {
  if (value === undefined) return 'auto';
  if (typeof value === 'string' && (ENGINE_CHOICES as readonly string[]).includes(value)) {
    return value as EngineChoice;
  }
  throw new UsageError(`${name} must be one of auto, native, js; got ${JSON.stringify(value)}`);
}

/** EngineStatus says which engine serves each protocol by default, and why. */
export interface EngineStatus {
  tcp: 'native' | 'js';
  udp: 'native' | 'js';
  why: string;
}

/** EngineContext is what else decides the engine: TCP sockets shared with --tcp-workers. */
export interface EngineContext {
  tcpShared?: boolean;
  /** The addon's load outcome; loadNative()'s by default (tests pass their own). */
  loaded?: Loaded;
}

/** engineStatus resolves a choice against what loaded (loading the addon on first call). */
export function engineStatus(choice: EngineChoice = 'auto', ctx: EngineContext = {}): EngineStatus {
  if (choice === 'js') return { tcp: 'js', udp: 'js', why: 'chosen with --engine js' };
  const loaded = ctx.loaded ?? loadNative();
  if (loaded.binding === undefined) {
    return { tcp: 'js', udp: 'js', why: `native engine ${loaded.why}` };
  }
  // Read here, so that a bad PORTPUB_BUSY_POLL is said before anything is bound.
  const poll = busyPollUs();
  const polling =
    poll === 0 ? 'busy polling off' : `busy polling ${busyPollText(poll)} (PORTPUB_BUSY_POLL)`;
  if (ctx.tcpShared) {
    return {
      tcp: 'js',
      udp: 'native',
      why: `${loaded.path}; ${polling}; TCP sockets are shared with --tcp-workers processes`,
    };
  }
  return { tcp: 'native', udp: 'native', why: `${loaded.path}; ${polling}` };
}

/** engineLine is the one startup line saying which engine serves and why. */
export function engineLine(choice: EngineChoice = 'auto', ctx: EngineContext = {}): string {
  const s = engineStatus(choice, ctx);
  return `engine: tcp ${s.tcp}, udp ${s.udp} (${s.why})`;
}

/**
 * assertEngine fails when `native` was asked for and cannot be had, before anything is bound
 * (auto falls back silently, apart from the startup line).
 */
export function assertEngine(choice: EngineChoice, loaded: Loaded = loadNative()): void {
  if (choice !== 'native') return;
  if (loaded.binding === undefined) {
    throw new UnsupportedError(`--engine native: the native engine is unavailable: ${loaded.why}`);
  }
}

/**
 * createTcpForwarder serves one listening server with the chosen engine. The native engine
 * needs an IP-literal target and no dialer; otherwise the binding is served in TypeScript and
 * its logger says why (debug).
 */
export function createTcpForwarder(
  server: Server,
  options: TcpForwarderOptions & { dial?: TcpDialer },
  choice: EngineChoice = 'auto',
): Forwarder<TcpStats> {
  const why = nativeTcpObstacle(options, choice);
  if (why === undefined) {
    const loaded = loadNative();
    if (loaded.binding !== undefined)
      return new NativeTcpForwarder(server, options, loaded.binding);
  } else if (choice !== 'js' && why !== 'unavailable') {
    options.logger?.debug({ engine: 'js', why }, 'binding served by the TypeScript engine');
  }
  return new TcpForwarder(server, options);
}

function nativeTcpObstacle(
  options: TcpForwarderOptions & { dial?: TcpDialer },
  choice: EngineChoice,
): string | undefined {
  if (choice === 'js') return 'chosen';
  if (loadNative().binding === undefined) {
    assertEngine(choice);
    return 'unavailable';
  }
  if (options.dial !== undefined) return 'the target is reached through a dialer';
  if (typeof options.targetHost === 'string' && isIP(options.targetHost) === 0) {
    return 'the target is a hostname (the native engine dials IP addresses)';
  }
  return undefined;
}

/**
 * udpBindOptions is how publish/ binds a UDP address: ONE socket (`single`) whatever the engine.
 * The native engine answers each client from the address it sent to (IP_PKTINFO). The
 * TypeScript one cannot (Node reads no IP_PKTINFO), and a socket per local address would leave
 * the addresses no interface lists (127.0.0.2, one added since the last scan) free for any other
 * user to bind and take the clients' traffic: Node 20's dgram cannot set SO_REUSEPORT, the one
 * way to share a port with a wildcard socket that Linux keeps to one user. So it serves the
 * wildcard socket too, and its replies leave from the address routing picks (README, "UDP
 * behaviour"). The arguments stay for callers; the answer no longer depends on them.
 */
export function udpBindOptions(
  _options?: Pick<UdpForwarderOptions, 'targetHost' | 'dial' | 'now'>,
  _choice: EngineChoice = 'auto',
): BindUdpOptions {
  return { single: true };
}

/**
 * createUdpForwarder serves one UDP listener with the chosen engine. The native engine needs no
 * dialer or test clock and a listener of one socket (udpBindOptions); a hostname target it looks
 * up itself (NativeUdpForwarder).
 */
export function createUdpForwarder(
  listener: UdpListener,
  options: UdpForwarderOptions,
  choice: EngineChoice = 'auto',
): Forwarder<UdpStats> {
  let why = nativeUdpObstacle(options, choice);
  if (why === undefined && listener.sockets.length !== 1) {
    why = 'the binding was bound with a socket per local address';
  }
  if (why === undefined) {
    const loaded = loadNative();
    if (loaded.binding !== undefined)
      return new NativeUdpForwarder(listener, options, loaded.binding);
  } else if (choice !== 'js' && why !== 'unavailable') {
    options.logger?.debug({ engine: 'js', why }, 'binding served by the TypeScript engine');
  }
  return new UdpForwarder(listener, options);
}

function nativeUdpObstacle(
  options: Pick<UdpForwarderOptions, 'targetHost' | 'dial' | 'now'>,
  choice: EngineChoice,
): string | undefined {
  if (choice === 'js') return 'chosen';
  if (loadNative().binding === undefined) {
    assertEngine(choice);
    return 'unavailable';
  }
  if (options.dial !== undefined) return 'the target is reached through a dialer';
  if (options.now !== undefined) return 'a custom clock was given';
  return undefined;
}
