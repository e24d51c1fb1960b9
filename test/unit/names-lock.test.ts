// Docker's container-name rule with its one leading `/` (moby daemon/names.go, reserveName), and
// the --name claim (src/cli/name-lock.ts): exclusive, released, taken over from a dead pid.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { checkName } from '../../src/docker/names.js';
import { claimName, namePath } from '../../src/cli/name-lock.js';

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'portpub-names-'));
  onTestFinished(() => rmSync(d, { recursive: true, force: true }));
  return join(d, 'state');
}

describe('checkName', () => {
  it.each([
    ['web', 'web'],
    ['/web', 'web'],
    ['/a.b_c-1', 'a.b_c-1'],
  ])('%s is the name %s', (input, name) => {
    expect(checkName(input)).toBe(name);
  });

  it.each(['//web', '/', '', '/a', 'a', '/_web', 'a b', 'web/'])(
    '%j is refused as typed',
    (input) => {
      expect(() => checkName(input)).toThrow(
        expect.objectContaining({
          code: 'ERR_BAD_NAME',
          message: `Invalid container name (${input}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
        }),
      );
    },
  );
});

describe('claimName', () => {
  it('one claim at a time; released, the name is free again', () => {
    const d = dir();
    const a = claimName(d, 'web', 1001, () => true);
    expect(() => claimName(d, 'web', 1002, () => true)).toThrow(
      expect.objectContaining({ code: 'ERR_NAME_IN_USE', exitCode: 1 }),
    );
    expect(() => claimName(d, 'web', 1002, () => true)).toThrow(
      '"/web" is already in use by portpub pid 1001.',
    );
    a.release();
    a.release(); // idempotent
    expect(existsSync(namePath(d, 'web'))).toBe(false);
    claimName(d, 'web', 1002, () => true).release();
    // Nothing is left behind but the directory.
    expect(readdirSync(d)).toEqual([]);
  });

  it("a dead pid's claim is taken over; release leaves a newer holder's claim alone", () => {
    const d = dir();
    mkdirSync(d, { recursive: true });
    writeFileSync(namePath(d, 'web'), '1001\n');
    const alive = (pid: number) => pid !== 1001;
    const b = claimName(d, 'web', 1002, alive);
    // A claim that is no pid at all (an old or damaged file) is taken over too.
    writeFileSync(namePath(d, 'db'), 'garbage');
    claimName(d, 'db', 1002, alive).release();
    // Someone took over b's claim (b looked dead to them): b's release must not remove theirs.
    writeFileSync(namePath(d, 'web'), '1003\n');
    b.release();
    expect(existsSync(namePath(d, 'web'))).toBe(true);
    expect(readdirSync(d).sort()).toEqual(['web.name']);
  });

  it('a claim whose pid now belongs to another process is taken over (pid reuse)', () => {
    const d = dir();
    mkdirSync(d, { recursive: true });
    // This test's own pid, but another start time: not the process that wrote the claim.
    writeFileSync(namePath(d, 'web'), `${process.pid} 1\n`);
    claimName(d, 'web', 1002).release();
    // The same pid and its real start time is a live claimant.
    const own = claimName(d, 'web');
    expect(() => claimName(d, 'web', 1002)).toThrow(
      `is already in use by portpub pid ${process.pid}.`,
    );
    own.release();
    expect(readdirSync(d)).toEqual([]);
  });

  it("waits out another process taking a claim over, and takes over a dead taker's lock", () => {
    const d = dir();
    mkdirSync(d, { recursive: true });
    writeFileSync(namePath(d, 'web'), '1001\n');
    // A takeover file left by a taker that died (pid 1003).
    writeFileSync(`${namePath(d, 'web')}.takeover`, '1003\n');
    const alive = (pid: number) => pid !== 1001 && pid !== 1003;
    claimName(d, 'web', 1002, alive).release();
    expect(readdirSync(d)).toEqual([]);
  });
});
