import { describe, expect, it } from 'vitest';
import { LOG_EVERY_MS, LogLimit, WarnLimiter } from '../../src/log-limit.js';
import type { Logger } from '../../src/logger.js';

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

describe('WarnLimiter', () => {
  /** lines records what warn() was called with, as a pino logger would take it. */
  function recorder(): { log: Logger; lines: [Record<string, unknown>, string][] } {
    const lines: [Record<string, unknown>, string][] = [];
    const log = {
      warn: (fields: Record<string, unknown>, msg: string) => lines.push([fields, msg]),
    };
    return { log: log as unknown as Logger, lines };
  }

  it('limits each reason on its own, and a later line says how many it held back', () => {
    const { log, lines } = recorder();
    let now = 0;
    const w = new WarnLimiter(log, () => now, 100);
    w.warn('a', { client: 'x' }, 'A');
    w.warn('a', { client: 'y' }, 'A');
    w.warn('b', {}, 'B');
    now = 100;
    w.warn('a', { client: 'z' }, 'A');
    expect(lines).toEqual([
      [{ reason: 'a', client: 'x' }, 'A'],
      [{ reason: 'b' }, 'B'],
      [{ reason: 'a', client: 'z', suppressed: 1 }, 'A'],
    ]);
  });

  it('flush logs what is still held back, once', () => {
    const { log, lines } = recorder();
    const w = new WarnLimiter(log, () => 0, 100);
    w.warn('a', {}, 'A');
    w.warn('a', {}, 'A');
    w.warn('a', {}, 'A');
    w.warn('b', {}, 'B');
    w.flush();
    w.flush();
    expect(lines).toEqual([
      [{ reason: 'a' }, 'A'],
      [{ reason: 'b' }, 'B'],
      [{ reason: 'a', suppressed: 2 }, 'A'],
    ]);
  });
});
