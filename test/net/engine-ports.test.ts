// A client that shares its address and port with one of the engine's own target sockets is not
// a loop: Linux reuses an ephemeral port for connections to different destinations, so only the
// whole connection (also the address it reached) tells portpub forwarding into itself apart.
// Run in a network namespace of its own with a small port range (root and unshare needed).
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/engine/load.js';
import { engines } from '../helpers/engines.js';
import { buildForChild, needs } from '../helpers/udp.js';

const loaded = loadNative();
const fixture = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/engine-port-reuse.mjs');

function hasUnshare(): boolean {
  try {
    execFileSync('unshare', ['-n', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.each(engines)('the %s engine', (engine) => {
  it.skipIf(engine === 'native' && loaded.binding === undefined)(
    'serves clients whose port one of its target sockets also uses',
    { timeout: 30_000 },
    (ctx) => {
      needs(ctx, [!hasUnshare() && 'unshare -n (root)']);
      const dir = buildForChild('engine/native-tcp');
      buildInto(dir);
      const out = execFileSync('unshare', ['-n', process.execPath, fixture, dir, engine], {
        encoding: 'utf8',
        timeout: 20_000,
        env: { ...process.env, PORTPUB_NATIVE_DIR: dirname(loaded.binding ? loaded.path : '') },
      });
      const seen: unknown = JSON.parse(out.trim().split('\n').pop()!);
      expect(seen).toEqual({ echoed: 40, errors: 0, looped: 0 });
    },
  );
});

/** buildInto adds the modules the fixture imports besides native-tcp's own. */
function buildInto(dir: string): void {
  for (const extra of ['tcp/listener', 'tcp/forwarder', 'engine/load']) {
    const built = buildForChild(extra);
    execFileSync('cp', ['-rn', `${built}/.`, dir]);
  }
}
