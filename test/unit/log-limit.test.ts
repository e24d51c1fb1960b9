import { describe, expect, it } from 'vitest';
import { LOG_EVERY_MS, LogLimit } from '../../src/log-limit.js';

describe('LogLimit', () => {
  it('lets the first event through, then one line per interval with the count it stands for', () => {
    const limit = new LogLimit();
    expect(limit.take(1_000)).toBe(1);
    expect(limit.take(1_001)).toBe(0);
    expect(limit.take(1_000 + LOG_EVERY_MS - 1)).toBe(0);
    expect(limit.take(1_000 + LOG_EVERY_MS)).toBe(3);
    expect(limit.take(1_000 + LOG_EVERY_MS)).toBe(0);
  });

  it('takes its interval from the constructor', () => {
    const limit = new LogLimit(100);
    expect(limit.take(0)).toBe(1);
    expect(limit.take(50)).toBe(0);
    expect(limit.take(100)).toBe(2);
  });
});
