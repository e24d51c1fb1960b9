// npm run bench, compiled the way `npm run bench` compiles it (tsconfig.bench.json, here into a
// temp dir so parallel runs do not share output), in --smoke mode with direct and the portpub
// subjects only: every row is present for each subject, with finite numbers, and the ratio
// columns are there. Timing values are never asserted: the machine is shared.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadNative } from '../../src/engine/load.js';
import { BIN } from '../helpers/cli.js';
import { reservePorts } from '../helpers/ports.js';
import { ROWS } from '../bench/rows.js';
import type { Line } from '../bench/report.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const native = loadNative().binding !== undefined;
/** DEADLINE_MS bounds the bench run: SIGTERM (it stops its own children), SIGKILL 3 s later. */
const DEADLINE_MS = 45_000;
/** PORTS is how many listening ports the smoke run may use (30 were enough by hand). */
const PORTS = 120;

interface BenchDoc {
  lines: Line[];
  skipped: { name: string; why: string }[];
}

function runBench(
  script: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stop = (): void => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 3000).unref();
    };
    onTestFinished(stop);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`the bench did not finish within ${DEADLINE_MS} ms\n${stderr}`));
    }, DEADLINE_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npm run bench --smoke', () => {
  it('prints every row for direct and each portpub engine, with the ratio columns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portpub-bench-smoke-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'out');
    const tsc = spawnSync(process.execPath, [TSC, '-p', 'tsconfig.bench.json', '--outDir', out], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);

    const subjects = ['direct', 'portpub-js', ...(native ? ['portpub-native'] : [])];
    // Listening ports from this worker's own block, so no other test file can hold one.
    const first = await reservePorts(PORTS);
    const json = join(dir, 'bench.json');
    const r = await runBench(join(out, 'run.js'), [
      '--smoke',
      '--subjects',
      subjects.join(','),
      '--json',
      json,
      '--portpub',
      BIN,
      '--ports',
      `${first}-${first + PORTS - 1}`,
    ]);
    expect(r.code, r.stderr).toBe(0);

    const doc = JSON.parse(readFileSync(json, 'utf8')) as BenchDoc;
    expect(doc.lines.map((l) => l.key)).toEqual(ROWS.map((row) => row.key));
    const portpubs = subjects.filter((s) => s.startsWith('portpub-'));
    for (const line of doc.lines) {
      const row = ROWS.find((x) => x.key === line.key)!;
      for (const s of subjects) {
        const cell = line.values[s];
        expect(cell, `${line.key} ${s} (skipped: ${JSON.stringify(doc.skipped)})`).toBeDefined();
        if (s === 'direct' && row.perProcess) {
          expect(cell, `${line.key} ${s}`).toHaveProperty('na');
          continue;
        }
        expect(cell, `${line.key} ${s}: ${JSON.stringify(cell)}`).toHaveProperty('value');
        const value = (cell as { value: number }).value;
        expect(Number.isFinite(value), `${line.key} ${s} = ${value}`).toBe(true);
        // CPU and RSS move in ticks and pages: a short smoke run can read 0 (or, for RSS, a
        // collected heap below the start); every other row must have measured something.
        if (!row.perProcess) expect(value, `${line.key} ${s}`).toBeGreaterThan(0);
      }
      // No peer ran, so every ratio is there and empty.
      expect(Object.keys(line.ratios).sort()).toEqual([...portpubs].sort());
      expect(line.best).toBeNull();
    }

    const [head] = r.stdout.split('\n').filter((l) => l.startsWith('row '));
    expect(head).toBeDefined();
    for (const col of ['better', 'client', ...subjects, 'best peer', 'js/best'])
      expect(head).toContain(col);
    if (native) expect(head).toContain('native/best');
    for (const row of ROWS) expect(r.stdout).toContain(row.label);
  }, 90_000);
});
