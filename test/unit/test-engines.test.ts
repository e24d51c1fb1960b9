// PORTPUB_TEST_ENGINES as test/helpers/engines.ts reads it: the engines a run narrows itself to.
import { describe, expect, it } from 'vitest';
import { testEngines } from '../helpers/engines.js';

describe('testEngines (PORTPUB_TEST_ENGINES)', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['native', ['native']],
    ['js', ['js']],
    ['native,js', ['js', 'native']],
    [' js , native ', ['js', 'native']],
    ['native,native', ['native']],
  ])('%j -> %j', (value, expected) => {
    expect(testEngines(value)).toEqual(expected);
  });

  it.each(['asan', 'native,', 'JS', 'auto'])('rejects %j naming the variable', (value) => {
    expect(() => testEngines(value)).toThrow(
      `PORTPUB_TEST_ENGINES: expected a comma list of js, native; got ${JSON.stringify(value)}`,
    );
  });
});
