// One rate limiter for warnings that a flood can repeat (refused clients, descriptor exhaustion,
// dropped datagrams, loops): one log line per interval, carrying how many events it stands for.
import type { Logger } from './logger.js';

/** LOG_EVERY_MS is the default interval between two lines of one kind. */
export const LOG_EVERY_MS = 10_000;

/**
 * LogLimit lets one warning through per interval and counts the ones it held back, so a flood
 * costs one log line per interval. Use one per kind of warning.
 */
export class LogLimit {
  private last = -Infinity;
  private held = 0;
  private readonly everyMs: number;

  constructor(everyMs = LOG_EVERY_MS) {
    this.everyMs = everyMs;
  }

  /**
   * take records one event and returns the number of events since the last line (this one
   * included) when a line is due now, or 0 to stay quiet. now is a Date.now() or
   * performance.now() value, the same clock on every call.
   */
  take(now: number = Date.now()): number {
    this.held++;
    if (now - this.last < this.everyMs) return 0;
    this.last = now;
    const n = this.held;
    this.held = 0;
    return n;
  }
}

/**
 * WarnLimiter logs at most one warning per reason per interval (one LogLimit per reason); the
 * next one after the interval carries how many were suppressed, so a flood costs a counter
 * increment per event. flush() (at close) logs the counts still held back.
 */
export class WarnLimiter {
  private readonly limits = new Map<string, { limit: LogLimit; msg: string }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly everyMs: number = LOG_EVERY_MS,
  ) {}

  warn(reason: string, fields: Record<string, unknown>, msg: string): void {
    let entry = this.limits.get(reason);
    if (entry === undefined) {
      entry = { limit: new LogLimit(this.everyMs), msg };
      this.limits.set(reason, entry);
    }
    const events = entry.limit.take(this.now());
    if (events === 0) return;
    entry.msg = msg;
    const suppressed = events - 1;
    this.log.warn({ reason, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
  }

  /** flush logs the counts still suppressed (at close). */
  flush(): void {
    for (const [reason, { limit, msg }] of this.limits) {
      // take(Infinity) forces the line due; it counts one event of its own, hence the - 1.
      const suppressed = limit.take(Infinity) - 1;
      if (suppressed > 0) this.log.warn({ reason, suppressed }, msg);
    }
    this.limits.clear();
  }
}
