import { describe, expect, it } from 'vitest';
import { parseRestartPolicy, Restarts } from '../../src/docker/restart.js';

describe('parseRestartPolicy', () => {
  it("reads Docker's policies", () => {
    expect(parseRestartPolicy('no')).toEqual({ name: 'no', maximumRetryCount: 0 });
    expect(parseRestartPolicy('always')).toEqual({ name: 'always', maximumRetryCount: 0 });
    expect(parseRestartPolicy('unless-stopped')).toMatchObject({ name: 'unless-stopped' });
    expect(parseRestartPolicy('on-failure')).toEqual({ name: 'on-failure', maximumRetryCount: 0 });
    expect(parseRestartPolicy('on-failure:5')).toEqual({
      name: 'on-failure',
      maximumRetryCount: 5,
    });
    expect(parseRestartPolicy('on-failure:')).toEqual({ name: 'on-failure', maximumRetryCount: 0 });
  });

  it("refuses what Docker refuses, in Docker's words", () => {
    const cases: [string, string][] = [
      [':3', 'invalid restart policy format: no policy provided before colon'],
      ['on-failure:x', 'invalid restart policy format: maximum retry count must be an integer'],
      ['on-failure:1.5', 'invalid restart policy format: maximum retry count must be an integer'],
      [
        'sometimes',
        "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'",
      ],
      [
        '',
        "invalid restart policy: unknown policy ''; use one of 'no', 'always', 'on-failure', or 'unless-stopped'",
      ],
      [
        'always:3',
        "invalid restart policy: maximum retry count can only be used with 'on-failure'",
      ],
      [
        'no:-1',
        "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative",
      ],
      ['on-failure:-1', 'invalid restart policy: maximum retry count cannot be negative'],
    ];
    for (const [value, message] of cases) {
      expect(() => parseRestartPolicy(value), value).toThrow(message);
    }
  });
});

describe('Restarts', () => {
  it('waits 100 ms, doubled each time up to a minute; a run of 10 s starts over', () => {
    const r = new Restarts({ name: 'always', maximumRetryCount: 0 });
    const delays = Array.from({ length: 12 }, () => r.next(0, 5));
    expect(delays).toEqual([
      100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000,
    ]);
    expect(r.count).toBe(12);
    expect(r.next(1, 10_000)).toBe(100);
    expect(r.next(1, 9_999)).toBe(200);
  });

  it('on-failure: only a failure, at most N times; no and none never', () => {
    const bounded = new Restarts({ name: 'on-failure', maximumRetryCount: 2 });
    expect(bounded.next(0, 5)).toBeUndefined();
    expect(bounded.next(3, 5)).toBeDefined();
    expect(bounded.next(3, 5)).toBeDefined();
    expect(bounded.next(3, 5)).toBeUndefined();
    expect(bounded.count).toBe(2);
    const unbounded = new Restarts({ name: 'on-failure', maximumRetryCount: 0 });
    for (let i = 0; i < 50; i++) expect(unbounded.next(1, 5)).toBeDefined();
    expect(new Restarts({ name: 'no', maximumRetryCount: 0 }).next(1, 5)).toBeUndefined();
    expect(new Restarts(undefined).next(1, 5)).toBeUndefined();
    expect(new Restarts({ name: 'unless-stopped', maximumRetryCount: 0 }).next(0, 5)).toBe(100);
  });
});
