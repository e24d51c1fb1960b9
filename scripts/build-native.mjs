#!/usr/bin/env node
// Builds the optional native data plane (native/) during `npm ci`/`npm install`, and never fails
// the install: without a compiler, headers or Linux, portpub runs its TypeScript engine and says
// so at startup. `--sanitize` builds native/build-asan/ with -fsanitize=address,undefined for the
// sanitizer test run (PORTPUB_NATIVE_DIR=native/build-asan; see src/engine/load.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');
const sanitize = process.argv.includes('--sanitize');
const strict = process.argv.includes('--strict'); // fail loudly (CI), instead of falling back

function done(ok, why) {
  if (ok) console.log(`portpub: native engine built (${why})`);
  else console.log(`portpub: native engine not built (${why}); the TypeScript engine will serve`);
  process.exit(ok || !strict ? 0 : 1);
}

if (process.platform !== 'linux') done(false, `${process.platform} is not Linux`);
if (process.env.PORTPUB_SKIP_NATIVE) done(false, 'PORTPUB_SKIP_NATIVE is set');

// Node's own headers beside the running node (a distribution's nodejs package, or a tarball
// install), so node-gyp need not download them: this machine may reach only the npm registry.
const nodedir = resolve(process.execPath, '..', '..');
const haveHeaders = existsSync(join(nodedir, 'include', 'node', 'node_api.h'));

if (sanitize) {
  // The sanitizer build is a plain compiler call: a Node addon links against nothing, and this
  // keeps its flags and output directory apart from the normal build.
  if (!haveHeaders) done(false, `no Node headers in ${nodedir}/include/node`);
  const out = join(native, 'build-asan');
  mkdirSync(out, { recursive: true });
  const args = [
    '-std=gnu11',
    '-shared',
    '-fPIC',
    '-g',
    '-O1',
    '-fno-omit-frame-pointer',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-fvisibility=hidden',
    '-fsanitize=address,undefined',
    '-fno-sanitize-recover=undefined',
    '-DNAPI_VERSION=8',
    '-DNODE_GYP_MODULE_NAME=portpub_engine',
    `-I${join(nodedir, 'include', 'node')}`,
    ...['engine.c', 'tcp.c', 'tcp-accept.c', 'udp.c', 'udp-life.c', 'napi.c', 'napi-udp.c'].map(
      (f) => join(native, f),
    ),
    '-o',
    join(out, 'portpub_engine.node'),
  ];
  const r = spawnSync(process.env.CC ?? 'cc', args, { stdio: 'inherit' });
  done(r.status === 0, r.status === 0 ? `sanitizer build in ${out}` : `cc exited ${r.status}`);
}

const gyp =
  process.env.npm_config_node_gyp ??
  join(
    dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
if (!existsSync(gyp)) done(false, `node-gyp not found at ${gyp}`);
const args = [gyp, 'rebuild', '--directory', native, '--loglevel', 'error'];
if (haveHeaders) args.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, args, {
  stdio: ['ignore', 'ignore', 'pipe'],
  encoding: 'utf8',
});
if (r.status !== 0) {
  // The compiler's or make's own words say more than node-gyp's closing "gyp ERR! not ok".
  const lines = (r.stderr ?? '').trim().split('\n').filter(Boolean);
  const last =
    lines.find((l) => /error|not found|No such file/i.test(l) && !l.startsWith('gyp ERR!')) ??
    lines.find((l) => l.startsWith('gyp ERR! stack Error:')) ??
    lines.pop() ??
    `exit ${r.status}`;
  if (process.env.PORTPUB_NATIVE_VERBOSE) process.stderr.write(r.stderr ?? '');
  done(false, `node-gyp failed: ${last.slice(0, 200)}`);
}
done(true, join(native, 'build', 'Release', 'portpub_engine.node'));
