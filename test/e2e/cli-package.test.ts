// Issue 13 item 8: what `npm pack` ships. LICENSE, the sources the maps point at, every map's
// sources inside the package, and type declarations a consumer on `lib: ES2022` can compile
// against (as the README's Library section says). Runs on the dist/ that `npm run build` left.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

let files: Set<string>;

beforeAll(async () => {
  // --ignore-scripts: no prepare (build) and no native build; the test reads what is on disk.
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [pack] = JSON.parse(stdout) as { files: { path: string }[] }[];
  files = new Set(pack!.files.map((f) => f.path));
}, 90_000);

describe('npm pack', () => {
  it('ships LICENSE, bin, dist with its maps and declarations, and src/', () => {
    for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/portpub.js']) {
      expect(files, f).toContain(f);
    }
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/index.js.map', 'src/index.ts']) {
      expect(files, f).toContain(f);
    }
    expect([...files].filter((f) => f.startsWith('src/')).length).toBeGreaterThan(20);
    // No tests, no benchmarks, no build output of the addon.
    expect([...files].filter((f) => /^(test|dist-bench|native\/build)\//.test(f))).toEqual([]);
  });

  it("every map's sources resolve to a file inside the package", () => {
    const maps = [...files].filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const map of maps) {
      const { sources, sourceRoot } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as {
        sources: string[];
        sourceRoot?: string;
      };
      expect(sources.length, map).toBeGreaterThan(0);
      for (const s of sources) {
        const at = normalize(join(dirname(map), sourceRoot ?? '', s));
        if (at.startsWith('..') || !files.has(at)) missing.push(`${map} -> ${s}`);
      }
      // Each map's JavaScript file is shipped beside it.
      expect(files, map).toContain(map.replace(/\.map$/, ''));
    }
    expect(missing).toEqual([]);
  });
});

describe('a TypeScript consumer', () => {
  /** consumer compiles a file importing 'portpub' (linked to this checkout) with `lib`. */
  async function consumer(lib: string): Promise<{ ok: boolean; out: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'portpub-consumer-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'portpub'), 'dir');
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(
      join(dir, 'main.ts'),
      [
        "import { parsePublish, startPublisher, PortpubError, type Binding } from 'portpub';",
        "const publish = parsePublish('127.0.0.1::80').map((mapping) => ({",
        "  mapping, targetHost: '127.0.0.1' }));",
        'const publisher = await startPublisher({ publish });',
        'const first: Binding | undefined = publisher.bindings[0];',
        'console.log(first?.hostPort, PortpubError.name);',
        'await publisher.close(5000);',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: [lib],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          // The declarations are what is checked here, so no skipLibCheck for them.
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [relative(dir, join(ROOT, 'node_modules', '@types'))],
        },
        files: ['main.ts'],
      }),
    );
    try {
      const r = await run(process.execPath, [TSC, '-p', dir], { cwd: dir, timeout: 120_000 });
      return { ok: true, out: r.stdout };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  }

  it('type-checks against dist/*.d.ts with lib ES2022', async () => {
    const r = await consumer('ES2022');
    expect(r.out).toBe('');
    expect(r.ok).toBe(true);
  }, 150_000);

  it('needs ES2022, as the README says: ES2021 lacks ErrorOptions', async () => {
    const r = await consumer('ES2021');
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/dist\/errors\.d\.ts.*ErrorOptions/);
  }, 150_000);
});
