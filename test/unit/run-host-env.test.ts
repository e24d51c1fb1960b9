import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { hostRunEnv } from '../../src/cli/run-host.js';
import { writeState } from '../../src/registry/state.js';

describe('hostRunEnv', () => {
  it('lays -e over the link variables; a bare KEY unsets one, as on a network of its own', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portpub-host-env-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    // This process is alive, so its state file counts as a running portpub named db.
    writeState(dir, {
      pid: process.pid,
      startedAt: '2024-01-01T00:00:00.000Z',
      name: 'db',
      bindings: [
        {
          hostIp: '127.0.0.1',
          hostPort: 5432,
          targetHost: '127.0.0.1',
          targetPort: 5432,
          protocol: 'tcp',
        },
      ],
    });
    const opts = { parent: 'app', published: false };
    const plain = hostRunEnv(['db'], [], opts, dir);
    expect(plain).toMatchObject({ DB_PORT: 'tcp://127.0.0.1:5432', DB_NAME: '/app/db' });
    const env = hostRunEnv(
      ['db'],
      ['DB_PORT', 'DB_NAME=mine', 'EXTRA=1', 'GONE=x', 'GONE'],
      opts,
      dir,
    );
    expect(env.DB_PORT).toBeUndefined();
    expect('DB_PORT' in env).toBe(false);
    expect(env).toMatchObject({ DB_NAME: 'mine', EXTRA: '1', DB_PORT_5432_TCP_PORT: '5432' });
    expect('GONE' in env).toBe(false);
  });
});
