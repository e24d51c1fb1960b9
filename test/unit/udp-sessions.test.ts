import { describe, expect, it } from 'vitest';
import { SessionTable, type SessionTableOptions } from '../../src/udp/sessions.js';

/** table builds a SessionTable on a fake clock the test moves by hand. */
function table(idleTimeoutMs = 100, maxSessions = 10) {
  const clock = { t: 1_000 };
  const t = new SessionTable<string>({ idleTimeoutMs, maxSessions, now: () => clock.t });
  return { t, clock };
}

const keys = (t: SessionTable<string>) => t.values();

describe('SessionTable', () => {
  it('inserts, finds and removes sessions by key', () => {
    const { t } = table();
    const { session, evicted } = t.insert('127.0.0.1:1000', 'a');
    expect(evicted).toBeUndefined();
    expect(t.size).toBe(1);
    expect(t.get('127.0.0.1:1000')).toBe(session);
    expect(session.value).toBe('a');
    expect(session.lastActive).toBe(1_000);
    expect(t.get('127.0.0.1:1001')).toBeUndefined();
    expect(t.remove(session)).toBe(true);
    expect(t.remove(session)).toBe(false);
    expect(t.size).toBe(0);
    expect(t.get('127.0.0.1:1000')).toBeUndefined();
  });

  it('refuses a second insert for a key (a caller bug)', () => {
    const { t } = table();
    t.insert('k', 'a');
    expect(() => t.insert('k', 'b')).toThrow(/already present/);
  });

  it('expires a session idleTimeoutMs after its last touch, not before', () => {
    const { t, clock } = table(100);
    const a = t.insert('a', 'a').session;
    t.insert('b', 'b');
    clock.t += 60;
    t.touch(a);
    expect(a.lastActive).toBe(1_060);
    clock.t += 39; // b idle 99 ms
    expect(t.expire()).toEqual([]);
    clock.t += 1; // b idle 100 ms, a 40 ms
    expect(t.expire().map((s) => s.key)).toEqual(['b']);
    expect(t.nextExpiry()).toBe(1_160);
    clock.t = 1_159;
    expect(t.expire()).toEqual([]);
    clock.t = 1_160;
    expect(t.expire().map((s) => s.key)).toEqual(['a']);
    expect(t.size).toBe(0);
    expect(t.nextExpiry()).toBeUndefined();
  });

  it('expires many sessions oldest first in one sweep', () => {
    const { t, clock } = table(100, 1000);
    for (let i = 0; i < 500; i++) {
      t.insert(`k${i}`, `v${i}`);
      clock.t += 1;
    }
    clock.t = 1_000 + 100 + 249; // k0..k249 are 100+ ms idle
    const expired = t.expire();
    expect(expired).toHaveLength(250);
    expect(expired[0]!.key).toBe('k0');
    expect(expired[249]!.key).toBe('k249');
    expect(t.size).toBe(250);
  });

  it('evicts the least recently touched session when full (LRU), never the new one', () => {
    const { t, clock } = table(1_000, 3);
    const a = t.insert('a', 'a').session;
    clock.t++;
    t.insert('b', 'b');
    clock.t++;
    t.insert('c', 'c');
    clock.t++;
    t.touch(a); // order now b, c, a
    const { session, evicted } = t.insert('d', 'd');
    expect(evicted?.key).toBe('b');
    expect(session.key).toBe('d');
    expect(t.size).toBe(3);
    expect(t.get('b')).toBeUndefined();
    expect(keys(t)).toEqual(['c', 'a', 'd']);
    expect(t.insert('e', 'e').evicted?.key).toBe('c');
  });

  it('a touch on a removed or evicted session is ignored', () => {
    const { t } = table(1_000, 1);
    const a = t.insert('a', 'a').session;
    t.insert('b', 'b');
    t.touch(a);
    expect(keys(t)).toEqual(['b']);
    expect(t.get('a')).toBeUndefined();
  });

  it('touching the newest session keeps the order', () => {
    const { t, clock } = table();
    t.insert('a', 'a');
    const b = t.insert('b', 'b').session;
    clock.t += 5;
    t.touch(b);
    expect(keys(t)).toEqual(['a', 'b']);
    expect(b.lastActive).toBe(1_005);
  });

  it('clear empties the table and returns the values oldest first', () => {
    const { t } = table();
    const a = t.insert('a', 'a').session;
    t.insert('b', 'b');
    expect(t.clear()).toEqual(['a', 'b']);
    expect(t.size).toBe(0);
    expect(t.remove(a)).toBe(false);
    t.insert('a', 'again');
    expect(keys(t)).toEqual(['again']);
  });

  it('uses a monotonic clock by default', () => {
    const t = new SessionTable<number>({ idleTimeoutMs: 60_000, maxSessions: 1 });
    const before = performance.now();
    const s = t.insert('a', 1).session;
    expect(s.lastActive).toBeGreaterThanOrEqual(before);
    expect(s.lastActive).toBeLessThanOrEqual(performance.now());
    expect(t.expire()).toEqual([]);
  });

  const bad: { options: Partial<SessionTableOptions>; error: RegExp }[] = [
    { options: { idleTimeoutMs: 0 }, error: /^idleTimeoutMs: expected .* > 0, got 0$/ },
    { options: { idleTimeoutMs: -5 }, error: /^idleTimeoutMs: .*got -5$/ },
    { options: { idleTimeoutMs: Infinity }, error: /^idleTimeoutMs: .*got Infinity$/ },
    { options: { idleTimeoutMs: NaN }, error: /^idleTimeoutMs: .*got NaN$/ },
    { options: { maxSessions: 0 }, error: /^maxSessions: expected an integer >= 1, got 0$/ },
    { options: { maxSessions: 1.5 }, error: /^maxSessions: .*got 1.5$/ },
    { options: { now: 5 as unknown as () => number }, error: /^now: expected a function/ },
  ];
  it.each(bad)('rejects $options', ({ options, error }) => {
    const make = () => new SessionTable({ idleTimeoutMs: 100, maxSessions: 10, ...options });
    expect(make).toThrow(error);
    expect(make).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });
});
