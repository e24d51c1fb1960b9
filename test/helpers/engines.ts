// Both engines under every test (issue 15): the engines this run can test, and forwarders built
// for a given engine the way publish/ builds them (src/engine: createTcpForwarder, udpBindOptions
// + bindUdp + createUdpForwarder). The TypeScript engine is always there; the native one where
// native/build loaded. Under PORTPUB_REQUIRE_NATIVE=1 or CI=true a missing addon is a failure
// (engineSuite's first test), elsewhere a skip that says why once.
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { Server } from 'node:net';
import { createTcpForwarder, createUdpForwarder, udpBindOptions } from '../../src/engine/index.js';
import { loadNative } from '../../src/engine/load.js';
import { NativeTcpForwarder } from '../../src/engine/native-tcp.js';
import { NativeUdpForwarder } from '../../src/engine/native-udp.js';
import type { Forwarder } from '../../src/forwarder.js';
import type { TcpForwarderOptions, TcpStats } from '../../src/tcp/forwarder.js';
import { bindUdp } from '../../src/udp/bind.js';
import type { UdpForwarderOptions, UdpStats } from '../../src/udp/forwarder.js';

/** Engine is a data plane a test runs against (an `--engine` value other than auto). */
export type Engine = 'js' | 'native';

const loaded = loadNative();

/** nativeRequired: CI, or a run that asked for the native engine, must not skip it. */
export const nativeRequired =
  process.env.PORTPUB_REQUIRE_NATIVE === '1' || process.env.CI === 'true';

/** nativeLoaded says whether native/build's addon loaded in this process. */
export const nativeLoaded = loaded.binding !== undefined;

/**
 * engines is what `describe.each(engines)` runs over: js always; native where it loaded, and
 * also where it is required but did not load, so that its tests fail rather than vanish.
 */
export const engines: Engine[] = nativeLoaded || nativeRequired ? ['js', 'native'] : ['js'];

if (loaded.binding === undefined && !nativeRequired) {
  console.warn(`native engine not tested: ${loaded.why}`);
}

/**
 * requireNative is the one test (per file) that fails when the native engine is required and
 * did not load; call it at the top level of a file that uses `engines`.
 */
export function requireNative(): void {
  describe.runIf(nativeRequired)('native engine', () => {
    it('loaded (PORTPUB_REQUIRE_NATIVE=1 or CI=true)', () => {
      expect(loaded.binding, loaded.binding ? '' : loaded.why).toBeDefined();
    });
  });
}

/** tcpForwarder serves a listening server with the engine; destroyed when the test ends. */
export function tcpForwarder(
  engine: Engine,
  server: Server,
  options: TcpForwarderOptions,
): Forwarder<TcpStats> {
  const fw = createTcpForwarder(server, options, engine);
  onTestFinished(() => fw.destroy());
  // A binding the native engine cannot serve falls back to TypeScript: a native case must not.
  if (engine === 'native') expect(fw).toBeInstanceOf(NativeTcpForwarder);
  return fw;
}

/**
 * udpForward binds host:port as publish/ does for the engine (one socket for the native engine,
 * one per local address for the TypeScript one) and serves it; both closed when the test ends.
 */
export async function udpForward(
  engine: Engine,
  host: string,
  options: UdpForwarderOptions,
  port = 0,
): Promise<{ fw: Forwarder<UdpStats>; port: number }> {
  const listener = await bindUdp(host, port, udpBindOptions(options, engine));
  onTestFinished(() => listener.close());
  const fw = createUdpForwarder(listener, options, engine);
  onTestFinished(() => fw.destroy());
  if (engine === 'native') expect(fw).toBeInstanceOf(NativeUdpForwarder);
  return { fw, port: listener.port };
}

/**
 * statsMatch asserts a forwarder's stats match `expected`. The TypeScript engine counts before
 * the event loop can run a test's callback, so it is asserted at once; the native engine's
 * counters are written by its thread just after the send returns, so a reply can reach the test
 * first (README, "Engines"): for it, the same assertion may take up to 2 s.
 */
export async function statsMatch<S>(
  engine: Engine,
  fw: { stats(): S },
  expected: Partial<Record<keyof S, unknown>>,
): Promise<void> {
  if (engine === 'js') return void expect(fw.stats()).toMatchObject(expected);
  await vi.waitFor(() => expect(fw.stats()).toMatchObject(expected), { timeout: 2_000 });
}
