// keepOutput (src/cli/run-output.ts): the command's output relayed and kept, known noise dropped
// even when the tool wrote it in pieces.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { keepOutput } from '../../src/cli/run-output.js';
import { UNSHARE_NOISE } from '../../src/netns/sandbox.js';
import { sink, tempDir } from './cli-harness.js';

async function relay(stderrChunks: string[]): Promise<{ stderr: string; log: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const io = { stdout: sink(), stderr: sink() };
  const log = join(tempDir(), 'log');
  const kept = keepOutput({ stdout: out, stderr: err }, io, log, [UNSHARE_NOISE]);
  for (const c of stderrChunks) {
    err.write(c);
    await tick(); // one 'data' event per chunk, as separate write(2)s arrive
  }
  out.end();
  err.end();
  await kept.done(5_000);
  return { stderr: io.stderr.text(), log: readFileSync(log, 'utf8') };
}

describe('keepOutput drops the noise lines of stderr', () => {
  it.each([
    ['whole', ['before\n', UNSHARE_NOISE, 'after\n'], 'before\nafter\n'],
    ['in one chunk', [`before\n${UNSHARE_NOISE}after\n`], 'before\nafter\n'],
    // util-linux's err(): the program name, the message and the reason, each its own write.
    [
      'in pieces',
      ['before\n', 'unshare: ', 'sigprocmask unblock failed', ': Invalid argument\n'],
      'before\n',
    ],
    ['not at a line start', [`x${UNSHARE_NOISE}`], `x${UNSHARE_NOISE}`],
    ['a start that turns into something else', ['unshare: ', 'other\n'], 'unshare: other\n'],
    ['a start the stream ends on', ['unshare: sig'], 'unshare: sig'],
  ])('%s', async (_name, chunks, expected) => {
    const r = await relay(chunks);
    expect(r.stderr).toBe(expected);
    expect(r.log).toBe(expected);
  });
});
