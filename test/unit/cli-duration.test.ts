// Durations as people type them (issue 13 defects 4 and 14): parsing, including compose's
// `1m30s`, the timer limit, and the help text's way of writing them back.
import { describe, expect, it } from 'vitest';
import {
  formatDuration,
  MAX_TIMER_MS,
  parseCount,
  parseDuration,
  parseDurationMs,
  parseGoDurationMs,
} from '../../src/duration.js';

describe('parseDuration', () => {
  const rows: [string, number | undefined][] = [
    ['10', 10_000],
    ['1.5', 1500],
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h0m0s', 3_600_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['2s500ms', 2500],
    [' 10s ', 10_000],
    ['0', 0],
    ['', undefined],
    ['s', undefined],
    ['10x', undefined],
    ['-1s', undefined],
    ['1m 30s', undefined],
    ['10s10', undefined],
    ['soon', undefined],
    // Go's time.ParseDuration units and number forms, as compose-go parses durations.
    ['1500us', 2],
    ['2500\u00b5s', 3],
    ['2500\u03bcs', 3],
    ['1s500000us', 1500],
    ['3000000ns', 3],
    ['1ns', 1],
    ['0us', 0],
    ['.5s', 500],
    ['1.s', 1000],
    ['1.5.s', undefined],
    ['.s', undefined],
    ['1u', undefined],
  ];
  it.each(rows)('%j -> %j', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('stops at the timer limit, which parseDurationMs lets callers name', () => {
    expect(parseDuration('1000h')).toBeUndefined();
    expect(parseDurationMs('1000h')).toBe(3_600_000_000);
    expect(parseDuration(`${MAX_TIMER_MS}ms`)).toBe(MAX_TIMER_MS);
    expect(parseDuration(`${MAX_TIMER_MS + 1}ms`)).toBeUndefined();
  });
});

describe('formatDuration writes what a user would type', () => {
  const rows: [number, string][] = [
    [0, '0'],
    [500, '500ms'],
    [1500, '1.5s'],
    [5000, '5s'],
    [10_000, '10s'],
    [60_000, '1m'],
    [90_000, '90s'],
    [120_000, '2m'],
    [150_000, '2m30s'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
  ];
  it.each(rows)('%d ms -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseDuration(text)).toBe(ms);
  });
});

describe('parseCount', () => {
  it('reads whole numbers only', () => {
    expect(parseCount('4096')).toBe(4096);
    expect(parseCount('-3')).toBeUndefined();
    expect(parseCount('1.5')).toBeUndefined();
    expect(parseCount('99999999999999999999')).toBeUndefined();
  });
});

describe('parseGoDurationMs', () => {
  it('keeps what is finer than a millisecond, and wants a unit', () => {
    expect(parseGoDurationMs('250us')).toBe(0.25);
    expect(parseGoDurationMs('1ms500us')).toBe(1.5);
    expect(parseGoDurationMs('2s')).toBe(2000);
    expect(parseGoDurationMs('200')).toBeUndefined();
    expect(parseGoDurationMs('')).toBeUndefined();
    expect(parseGoDurationMs('1x')).toBeUndefined();
  });
});
