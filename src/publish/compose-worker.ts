// The worker thread that reads a compose project (compose-load.ts) for loadComposeProjectOffThread,
// so that parsing a large file never holds up the event loop that relays traffic. The answer is
// packed (packProject): a structured clone of 65,535 mapping objects alone took the receiving
// event loop 65 ms to read.
import { parentPort, workerData } from 'node:worker_threads';
import { PortpubError } from '../errors.js';
import { loadComposeProject, packProject, type ProjectOptions } from './compose-load.js';

try {
  const packed = packProject(loadComposeProject(workerData as ProjectOptions));
  parentPort!.postMessage({ packed }, packed.transfer);
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
