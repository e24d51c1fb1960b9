// `portpub ps --format json`: CreatedAt as docker ps prints it, Go's time.Time.String().
import { afterEach, describe, expect, it } from 'vitest';
import { goTimeString } from '../../src/cli/ps.js';

const tz = process.env.TZ;
afterEach(() => {
  if (tz === undefined) delete process.env.TZ;
  else process.env.TZ = tz;
});

describe('goTimeString (Go time.Time.String, docker ps CreatedAt)', () => {
  it.each([
    ['UTC', '2026-12-01T14:03:09.123Z', '2026-12-01 14:03:09 +0000 UTC'],
    ['America/New_York', '2026-12-01T14:03:09Z', '2026-12-01 09:03:09 -0500 EST'],
    ['America/New_York', '2026-07-01T14:03:09Z', '2026-07-01 10:03:09 -0400 EDT'],
  ])('in %s, %s is %s', (zone, iso, expected) => {
    // Node re-reads TZ when it is assigned.
    process.env.TZ = zone;
    expect(goTimeString(new Date(iso))).toBe(expected);
  });
});
