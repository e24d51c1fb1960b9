#!/usr/bin/env node
// Shim: the CLI lives in dist/cli.js (built from src/cli.ts by `npm run build`, which `npm ci`
// and `npm install` run through the prepare script).
import { setFlagsFromString } from 'node:v8';

// V8 heap sizing for a process that holds thousands of long-lived sockets, set before anything
// is loaded (loading the CLI alone would already grow the young generation to 4 MiB):
// - semi-space-growth-factor=1 keeps the young generation at its initial 1 MiB per semi-space.
//   Every held connection survives the scavenges after its accept, and by default that survival
//   keeps doubling the young generation up to 16 MiB per semi-space: ~4 KiB of RSS per idle
//   connection with 2000 of them, for no speed gain a proxy can measure (GC is ~1 % of its CPU).
// - heap-growing-percent=50 runs a full GC once the old generation has grown by half, instead of
//   V8's default of up to 4x for a fast-collecting heap: connection set-up garbage promoted
//   during a burst is then reclaimed instead of staying resident (~1.5 KiB per connection with
//   5000 held).
setFlagsFromString('--semi-space-growth-factor=1');
setFlagsFromString('--heap-growing-percent=50');

const { main } = await import('../dist/cli.js');
// Exit explicitly: once main() has stopped everything, nothing may keep the process alive.
process.exit(await main(process.argv));
