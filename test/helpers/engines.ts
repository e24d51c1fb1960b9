// Both engines under every test (issue 15): the engines this run can test, and forwarders built
// for a given engine the way publish/ builds them (src/engine: createTcpForwarder, udpBindOptions
// + bindUdp + createUdpForwarder). The TypeScript engine is always there; the native one where
// native/build (or PORTPUB_NATIVE_DIR) loaded. Under PORTPUB_REQUIRE_NATIVE=1 or CI=true a missing
// addon is a failure (requireNative's test), elsewhere a skip that says why once.
// PORTPUB_TEST_ENGINES=native (a comma list of js, native) narrows a run to the engines named: CI's
// sanitizer step runs the per-engine suites native-only, against the ASan build.
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

const ENGINES: readonly Engine[] = ['js', 'native'];

/**
 * testEngines reads PORTPUB_TEST_ENGINES: undefined when unset or empty (every engine), else the
 * engines it names. A typo throws, so that the file fails instead of quietly testing nothing.
 */
export function testEngines(value: string | undefined): Engine[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const named = value.split(',').map((v) => v.trim());
  const bad = named.filter((v) => !(ENGINES as readonly string[]).includes(v));
  if (bad.length > 0) {
    throw new Error(
      `PORTPUB_TEST_ENGINES: expected a comma list of js, native; got ${JSON.stringify(value)}`,
    );
  }
  return ENGINES.filter((e) => named.includes(e));
}

const loaded = loadNative();
const asked = testEngines(process.env.PORTPUB_TEST_ENGINES);

/**
 * nativeRequired: CI, or a run that asked for the native engine (PORTPUB_REQUIRE_NATIVE=1, or
 * PORTPUB_TEST_ENGINES naming it), must not skip it.
 */
export const nativeRequired =
  process.env.PORTPUB_REQUIRE_NATIVE === '1' ||
  process.env.CI === 'true' ||
  asked?.includes('native') === true;

/** nativeLoaded says whether native/build's addon loaded in this process. */
export const nativeLoaded = loaded.binding !== undefined;

/**
 * engines is what `describe.each(engines)` runs over: the engines PORTPUB_TEST_ENGINES names, or
 * js and, where it loaded, native. Native stays in where it is required but did not load, so that
 * its tests fail rather than vanish.
 */
export const engines: Engine[] = (asked ?? ENGINES).filter(
  (e) => e === 'js' || nativeLoaded || nativeRequired,
);

/** jsTested says whether this run tests the TypeScript engine: the runIf of a JS-only describe. */
export const jsTested = engines.includes('js');

/**
 * nativeTested says whether this run tests the native engine and it loaded: the runIf of a
 * native-only file (its missing addon is requireNative's failure, not each case's).
 */
export const nativeTested = engines.includes('native') && nativeLoaded;

if (!nativeLoaded && !nativeRequired && asked === undefined) {
  console.warn(`native engine not tested: ${loaded.why}`);
}

/**
 * requireNative is the one test (per file) that fails when the native engine is required and
 * did not load; call it at the top level of a file that uses `engines`.
 */
export function requireNative(): void {
  describe.runIf(nativeRequired)('native engine', () => {
    it('loaded (PORTPUB_REQUIRE_NATIVE=1, CI=true or PORTPUB_TEST_ENGINES=native)', () => {
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
 * udpForward binds host:port as publish/ does for the engine (udpBindOptions) and serves it;
 * both closed when the test ends.
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
