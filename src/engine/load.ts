// Loads the optional native data plane (native/, built at install by scripts/build-native.mjs)
// once, on first use, and says why it is not there when it is not: the model is ws's optional
// bufferutil, whose index.js tries the addon and falls back to a pure-JavaScript twin.
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** ABI is the native/napi.c interface version this side speaks. */
const ABI = 6;

/** NativeBinding is what native/napi.c exports. */
export interface NativeBinding {
  readonly abi: number;
  start(
    onEvents: (nums: Float64Array, clients: string[], lost: boolean) => void,
    /** How long the engine polls for the next event before sleeping, in µs (0: never). */
    busyPollUs: number,
  ): void;
  listen(
    fd: number,
    id: number,
    targetIp: string,
    targetPort: number,
    connectTimeoutMs: number,
    idleTimeoutMs: number,
    halfCloseLingerMs: number,
    maxConnections: number,
    /** LOG_OPENED | LOG_CLOSED: the per-connection events to send. */
    logs: number,
    stats: ArrayBuffer,
  ): void;
  close(id: number): void;
  adopt(id: number, fd: number): void;
  destroy(id: number): void;
  /** [client, host, targetLocal, openedAt, activeAt (wall-clock ms), up, down, state] */
  connections(id: number): [string, string, string, number, number, number, number, number][];
  udpListen(
    fd: number,
    id: number,
    targetIp: string,
    targetPort: number,
    flowTimeoutMs: number,
    maxFlows: number,
    logFlows: boolean,
    stats: ArrayBuffer,
  ): void;
  udpDestroy(id: number): void;
  /** [client, host, targetLocal, openedAt, activeAt (wall-clock ms), up, down] */
  udpFlows(id: number, port: number): [string, string, string, number, number, number, number][];
  /** [polls begun, polls that found an event] of the engine's busy polling (native/engine.c). */
  pollStats(): [number, number];
  ref(): void;
  unref(): void;
}

/** Loaded is the outcome of loading: the binding, or why there is none. */
export type Loaded =
  { binding: NativeBinding; path: string; why?: undefined } | { binding: undefined; why: string };

let loaded: Loaded | undefined;

/**
 * addonDir is where the addon is looked for: PORTPUB_NATIVE_DIR (the sanitizer build,
 * native/build-asan, in CI), else native/build/Release of this package (src/engine and
 * dist/engine are both two levels below the package root).
 */
function addonDir(): string {
  const fromEnv = process.env.PORTPUB_NATIVE_DIR;
  if (fromEnv) return resolve(fromEnv);
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '..', '..', 'native', 'build', 'Release');
}

/** loadNative loads the addon once and caches the outcome. */
export function loadNative(): Loaded {
  loaded ??= tryLoad();
  return loaded;
}

function tryLoad(): Loaded {
  return loadFrom(addonDir());
}

/** loadFrom loads the addon from dir (uncached): loadNative's work, open to tests. */
export function loadFrom(dir: string): Loaded {
  if (process.platform !== 'linux') return { binding: undefined, why: 'not Linux' };
  const path = join(dir, 'portpub_engine.node');
  try {
    const binding = createRequire(import.meta.url)(path) as NativeBinding;
    if (binding.abi !== ABI || typeof binding.listen !== 'function') {
      return { binding: undefined, why: `${path} is from another version (abi ${binding.abi})` };
    }
    return { binding, path };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND') {
      return { binding: undefined, why: `not built (no ${path}; see npm's install output)` };
    }
    const message = err instanceof Error ? err.message : String(err);
    return { binding: undefined, why: `${path} did not load: ${message.split('\n')[0]}` };
  }
}
