// `portpub stats NAME` knows the same names as `portpub port NAME`: the unknown-name error lists
// registry's runningNames (expose-only services too), and such a name is not unknown.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Collector } from '../../src/observe/collect.js';
import { writeState, type State } from '../../src/registry/state.js';

/** A state dir holding one project, `web` published and `db` expose-only, served by this pid. */
function shopDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-collect-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const shop: State = {
    pid: process.pid,
    startedAt: '2024-01-01T00:00:00.000Z',
    bindings: [
      {
        name: 'web',
        hostIp: '0.0.0.0',
        hostPort: 8080,
        targetHost: '127.0.0.2',
        targetPort: 80,
        protocol: 'tcp',
      },
    ],
    project: 'shop',
    services: [
      { name: 'web', targetHost: '127.0.0.2', expose: [] },
      { name: 'db', targetHost: '127.0.0.3', expose: [{ port: 5432, protocol: 'tcp' }] },
    ],
  };
  writeState(dir, shop);
  return dir;
}

describe('Collector names', () => {
  it('lists expose-only services among what is running', async () => {
    const c = new Collector(shopDir(), ['nope']);
    onTestFinished(() => c.close());
    await expect(c.collect()).rejects.toMatchObject({
      code: 'ERR_NO_SUCH_SERVICE',
      message: 'no such service: nope (running: web, db)',
    });
  });

  it('takes an expose-only service as a name that runs (it has no bindings to show)', async () => {
    const c = new Collector(shopDir(), ['db']);
    onTestFinished(() => c.close());
    // No control socket in this dir: the process is left out, and nothing is refused.
    await expect(c.collect()).resolves.toEqual([]);
  });
});
