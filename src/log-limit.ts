// One rate limiter for warnings that a flood can repeat (refused clients, descriptor exhaustion,
// dropped datagrams, loops): one log line per interval, carrying how many events it stands for.

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
