// The engine choice: option parsing, the startup line, and what auto and native do when the
// addon is not there (loaded from an empty directory, so this process's cached load is untouched).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import {
  assertEngine,
  engineLine,
  engineStatus,
  parseEngineChoice,
} from '../../src/engine/index.js';
import { loadFrom, loadNative } from '../../src/engine/load.js';
import { BUSY_POLL_US, busyPollUs } from '../../src/engine/native-engine.js';
import { UsageError } from '../../src/errors.js';

describe('parseEngineChoice', () => {
  it.each([
    [undefined, 'auto'],
    ['auto', 'auto'],
    ['native', 'native'],
    ['js', 'js'],
  ])('%s -> %s', (input, expected) => {
    expect(parseEngineChoice(input)).toBe(expected);
  });

  it.each([['fast'], [''], [1], ['JS']])('rejects %o naming the option', (input) => {
    expect(() => parseEngineChoice(input, '--engine')).toThrow(
      /--engine must be one of auto, native, js/,
    );
    expect(() => parseEngineChoice(input)).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });
});

describe('engineStatus and engineLine', () => {
  it('js serves everything in TypeScript, saying it was chosen', () => {
    expect(engineStatus('js')).toEqual({ tcp: 'js', udp: 'js', why: 'chosen with --engine js' });
    expect(engineLine('js')).toBe('engine: tcp js, udp js (chosen with --engine js)');
  });

  it('auto serves TCP natively exactly when the addon loaded', () => {
    const loaded = loadNative();
    const status = engineStatus('auto');
    expect(status.tcp).toBe(loaded.binding ? 'native' : 'js');
    expect(status.udp).toBe(loaded.binding ? 'native' : 'js');
    expect(engineLine('auto')).toMatch(/^engine: tcp (native|js), udp (native|js) \(.+\)$/);
    if (loaded.binding) {
      expect(engineStatus('auto', { tcpShared: true })).toMatchObject({ tcp: 'js', udp: 'native' });
      expect(engineLine('auto', { tcpShared: true })).toMatch(/--tcp-workers/);
    }
  });

  it('the native line says how the engine thread busy-polls', (ctx) => {
    if (!loadNative().binding) ctx.skip('the native engine did not load');
    onTestFinished(() => {
      vi.unstubAllEnvs();
    });
    vi.stubEnv('PORTPUB_BUSY_POLL', '');
    expect(engineLine('auto')).toMatch(/; busy polling 1ms \(PORTPUB_BUSY_POLL\)\)$/);
    vi.stubEnv('PORTPUB_BUSY_POLL', '200us');
    expect(engineLine('auto')).toMatch(/; busy polling 200us \(PORTPUB_BUSY_POLL\)\)$/);
    vi.stubEnv('PORTPUB_BUSY_POLL', '2ms');
    expect(engineLine('auto')).toMatch(/; busy polling 2ms \(PORTPUB_BUSY_POLL\)\)$/);
    vi.stubEnv('PORTPUB_BUSY_POLL', '0');
    expect(engineLine('auto')).toMatch(/; busy polling off\)$/);
  });
});

describe('without the addon', () => {
  it('says why it did not load: not built, or a file that is no addon', () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-addon-'));
    onTestFinished(() => rmSync(empty, { recursive: true, force: true }));
    const none = loadFrom(empty);
    expect(none.binding).toBeUndefined();
    expect(engineLine('auto', { loaded: none })).toMatch(
      /^engine: tcp js, udp js \(native engine not built \(no .*portpub_engine\.node/,
    );
    writeFileSync(join(empty, 'portpub_engine.node'), 'not an ELF file');
    const bad = loadFrom(empty);
    expect(bad.binding === undefined && bad.why).toMatch(/did not load: /);
  });

  it('auto falls back; native fails before anything is bound, naming --engine', () => {
    const none = loadFrom(join(tmpdir(), 'portpub-no-such-dir'));
    expect(() => assertEngine('auto', none)).not.toThrow();
    expect(() => assertEngine('js', none)).not.toThrow();
    expect(() => assertEngine('native', none)).toThrow(
      /^--engine native: the native engine is unavailable/,
    );
    expect(() => assertEngine('native', none)).toThrow(
      expect.objectContaining({ code: 'ERR_UNSUPPORTED' }),
    );
  });
});

describe('busyPollUs (PORTPUB_BUSY_POLL)', () => {
  it.each([
    [undefined, BUSY_POLL_US],
    ['', BUSY_POLL_US],
    ['0', 0],
    ['200us', 200],
    ['1ms', 1000],
    ['1.5ms', 1500],
    ['500µs', 500],
    ['10ms', 10_000],
  ])('reads %j as %d µs', (value, us) => {
    expect(busyPollUs(value === undefined ? {} : { PORTPUB_BUSY_POLL: value })).toBe(us);
  });

  it.each(['200', '1', 'fast', '-1ms', '10.5ms', '1s'])(
    'refuses %j, naming the variable',
    (value) => {
      expect(() => busyPollUs({ PORTPUB_BUSY_POLL: value })).toThrow(
        new UsageError(
          'PORTPUB_BUSY_POLL must be a duration from 0 to 10ms with its unit (200us, 1ms; 0 turns ' +
            `busy polling off); got ${JSON.stringify(value)}`,
        ),
      );
    },
  );
});
