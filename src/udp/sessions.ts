// UDP flow table: one session per client address, idle expiry on an injectable clock, and a cap
// that evicts the least recently active session. Pure bookkeeping: no sockets, no timers.
import { UsageError } from '../errors.js';

/** Clock returns milliseconds from any fixed origin; it must never go backwards. */
export type Clock = () => number;

/** monotonicClock is the default Clock: wall-clock jumps must not expire or revive flows. */
export const monotonicClock: Clock = () => performance.now();

export interface SessionTableOptions {
  /** idleTimeoutMs: a session expires this long after its last touch (> 0). */
  idleTimeoutMs: number;
  /** maxSessions: most sessions held; inserting one more evicts the least recently touched. */
  maxSessions: number;
  /** now: the clock for touches and expiry; default monotonicClock. */
  now?: Clock;
}

/** Session is one table entry as callers see it. */
export interface Session<V> {
  readonly key: string;
  readonly value: V;
  /** lastActive is the clock reading of the insert or the latest touch. */
  readonly lastActive: number;
}

/** Entry is a Session threaded on the recency list: touch and evict are O(1), allocation-free. */
interface Entry<V> {
  key: string;
  value: V;
  lastActive: number;
  prev: Entry<V> | null;
  next: Entry<V> | null;
  linked: boolean;
}

/** Inserted is what insert() did: the new session and the one evicted to make room, if any. */
export interface Inserted<V> {
  session: Session<V>;
  evicted: Session<V> | undefined;
}

/**
 * SessionTable maps a client key to a value and keeps the entries on a list ordered by last
 * touch, oldest first. Because the clock never goes backwards, that list is also ordered by
 * expiry time: expire() and eviction only ever look at its head.
 *
 * Policy when full: evict the least recently touched session (LRU), never refuse the new one. A
 * client that keeps sending stays at the tail and survives a flood of one-shot sources, and a
 * new client is never locked out until old flows time out (which drop-new would do for up to
 * idleTimeoutMs).
 */
export class SessionTable<V> {
  readonly idleTimeoutMs: number;
  readonly maxSessions: number;
  private readonly now: Clock;
  private readonly byKey = new Map<string, Entry<V>>();
  private head: Entry<V> | null = null;
  private tail: Entry<V> | null = null;

  constructor(options: SessionTableOptions) {
    const { idleTimeoutMs, maxSessions, now = monotonicClock } = options;
    if (
      typeof idleTimeoutMs !== 'number' ||
      !Number.isFinite(idleTimeoutMs) ||
      idleTimeoutMs <= 0
    ) {
      throw new UsageError(
        `idleTimeoutMs: expected a number of milliseconds > 0, got ${String(idleTimeoutMs)}`,
      );
    }
    if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) {
      throw new UsageError(`maxSessions: expected an integer >= 1, got ${String(maxSessions)}`);
    }
    if (typeof now !== 'function') {
      throw new UsageError(`now: expected a function returning milliseconds, got ${typeof now}`);
    }
    this.idleTimeoutMs = idleTimeoutMs;
    this.maxSessions = maxSessions;
    this.now = now;
  }

  /** size is the number of live sessions. */
  get size(): number {
    return this.byKey.size;
  }

  /** get returns the session for key without touching it. */
  get(key: string): Session<V> | undefined {
    return this.byKey.get(key);
  }

  /**
   * insert adds a session for a key that has none (throws if it has one: a caller bug). When the
   * table is full, the least recently touched session is removed first and returned as `evicted`;
   * closing whatever it owns is the caller's job.
   */
  insert(key: string, value: V): Inserted<V> {
    if (this.byKey.has(key)) throw new Error(`SessionTable.insert: key ${key} is already present`);
    let evicted: Entry<V> | undefined;
    if (this.byKey.size >= this.maxSessions && this.head !== null) {
      evicted = this.head;
      this.remove(evicted);
    }
    const entry: Entry<V> = {
      key,
      value,
      lastActive: this.now(),
      prev: null,
      next: null,
      linked: false,
    };
    this.byKey.set(key, entry);
    this.append(entry);
    return { session: entry, evicted };
  }

  /** touch marks a session active now and moves it to the most recently used end. */
  touch(session: Session<V>): void {
    const entry = session as Entry<V>;
    if (!entry.linked) return;
    entry.lastActive = this.now();
    if (this.tail === entry) return;
    this.unlink(entry);
    this.append(entry);
  }

  /** remove deletes a session (one already gone is ignored); returns whether it was present. */
  remove(session: Session<V>): boolean {
    const entry = session as Entry<V>;
    if (!entry.linked) return false;
    this.unlink(entry);
    this.byKey.delete(entry.key);
    return true;
  }

  /**
   * expire removes and returns, oldest first, every session idle for idleTimeoutMs or longer.
   * Cost is proportional to the number expired, so a frequent coarse sweep is cheap.
   */
  expire(): Session<V>[] {
    const deadline = this.now() - this.idleTimeoutMs;
    const expired: Session<V>[] = [];
    while (this.head !== null && this.head.lastActive <= deadline) {
      const entry = this.head;
      this.remove(entry);
      expired.push(entry);
    }
    return expired;
  }

  /** nextExpiry is the clock reading at which the oldest session expires, if there is one. */
  nextExpiry(): number | undefined {
    return this.head === null ? undefined : this.head.lastActive + this.idleTimeoutMs;
  }

  /** values lists the live sessions' values, least recently touched first. */
  values(): V[] {
    const out: V[] = [];
    for (let e = this.head; e !== null; e = e.next) out.push(e.value);
    return out;
  }

  /** clear removes every session and returns their values, least recently touched first. */
  clear(): V[] {
    const out = this.values();
    for (let e = this.head; e !== null;) {
      const next = e.next;
      e.prev = e.next = null;
      e.linked = false;
      e = next;
    }
    this.head = this.tail = null;
    this.byKey.clear();
    return out;
  }

  private append(entry: Entry<V>): void {
    entry.prev = this.tail;
    entry.next = null;
    if (this.tail !== null) this.tail.next = entry;
    else this.head = entry;
    this.tail = entry;
    entry.linked = true;
  }

  private unlink(entry: Entry<V>): void {
    if (entry.prev !== null) entry.prev.next = entry.next;
    else this.head = entry.next;
    if (entry.next !== null) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.prev = entry.next = null;
    entry.linked = false;
  }
}
