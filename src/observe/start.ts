// The one hook a serving process calls: start its control socket (always) and the --metrics and
// --ui endpoints (when asked), all reading the same live source; close() stops all of them.
import { BindError } from '../errors.js';
import type { Logger } from '../logger.js';
import { ensureStateDir } from '../registry/state.js';
import { controlPath, startControl } from './control.js';
import { listenHttp, parseListenAddress, type HttpEndpoint } from './http.js';
import { liveSource, type LiveSourceOptions, type Served } from './live.js';
import { metricsHandler } from './metrics.js';
import { uiHandler } from './ui.js';

/** ObserveOptions: what to watch, the state directory, and the optional endpoints' ADDRs. */
export interface ObserveOptions extends LiveSourceOptions {
  stateDir: string;
  /** --metrics ADDR (HOST:PORT). */
  metrics?: string;
  /** --ui ADDR (HOST:PORT). */
  ui?: string;
  logger: Logger;
}

/** Observe is the running set; close() is idempotent and never throws. */
export interface Observe {
  metricsUrl?: string;
  uiUrl?: string;
  close(): Promise<void>;
}

/**
 * startObserve starts the control socket and the endpoints asked for. A control socket that
 * cannot listen is a warning (the run serves on, `portpub stats` will not see it); an endpoint
 * asked for that cannot listen is an error, with what was started closed again.
 */
export async function startObserve(options: ObserveOptions): Promise<Observe> {
  const { logger } = options;
  const source = liveSource(options);
  const closers: (() => Promise<void>)[] = [];
  const closeAll = () => Promise.all(closers.map((c) => c().catch(() => undefined))).then(() => {});
  const path = controlPath(options.stateDir, options.pid ?? process.pid);
  try {
    ensureStateDir(options.stateDir);
    const control = await startControl(source, path, logger);
    closers.push(() => control.close());
  } catch (err) {
    logger.warn(
      { err: (err as Error).message, path },
      'cannot open the control socket: `portpub stats` will not see this run',
    );
  }
  const result: Observe = { close: closeAll };
  try {
    if (options.metrics !== undefined) {
      const ep = await endpoint(
        '--metrics',
        options.metrics,
        metricsHandler(() => source.snapshot(false)),
      );
      closers.push(() => ep.close());
      result.metricsUrl = `${ep.url}/metrics`;
      logger.info({ url: result.metricsUrl }, 'metrics listening');
    }
    if (options.ui !== undefined) {
      const ep = await endpoint(
        '--ui',
        options.ui,
        uiHandler({ snapshots: async () => [await source.snapshot(true)] }),
      );
      closers.push(() => ep.close());
      result.uiUrl = `${ep.url}/`;
      logger.info({ url: result.uiUrl }, 'ui listening');
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return result;
}

/**
 * observeOptions builds the options of one serving command: what it serves (nothing yet, for a
 * `portpub run` without -p), its run name, and its --metrics and --ui.
 */
export function observeOptions(
  served: Served | undefined,
  name: string | undefined,
  opts: { metrics?: string | undefined; ui?: string | undefined },
  stateDir: string,
  logger: Logger,
): ObserveOptions {
  return {
    served: served ?? { stats: () => [] },
    ...(name !== undefined ? { name } : {}),
    ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}),
    ...(opts.ui !== undefined ? { ui: opts.ui } : {}),
    stateDir,
    logger,
  };
}

/** endpoint listens on ADDR for one option, turning a listen failure into a runtime error. */
export async function endpoint(
  flag: string,
  addr: string,
  handler: Parameters<typeof listenHttp>[1],
): Promise<HttpEndpoint> {
  const at = parseListenAddress(addr, flag);
  try {
    return await listenHttp(at, handler);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new BindError(`${flag} ${addr}: cannot listen: ${why}`);
  }
}
