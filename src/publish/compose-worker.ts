// The worker thread that reads a compose project (compose-load.ts) for loadComposeProjectOffThread,
// so that parsing a large file never holds up the event loop that relays traffic.
import { parentPort, workerData } from 'node:worker_threads';
import { PortpubError } from '../errors.js';
import { loadComposeProject, type ProjectOptions } from './compose-load.js';

try {
  parentPort!.postMessage({ project: loadComposeProject(workerData as ProjectOptions) });
} catch (err) {
  const e = err instanceof PortpubError ? err : undefined;
  parentPort!.postMessage({
    error: {
      message: err instanceof Error ? err.message : String(err),
      code: e?.code,
      exitCode: e?.exitCode,
    },
  });
}
