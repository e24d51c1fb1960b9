#!/usr/bin/env node
// Shim: the CLI lives in dist/cli/main.js (built from src/cli/main.ts by `npm run build`, which `npm ci`
// and `npm install` run through the prepare script).
import { setFlagsFromString } from 'node:v8';
import { HEAP_FLAGS } from '../dist/heap-flags.js';

// Heap sizing for many idle sockets (reasons in src/heap-flags.ts), set before the CLI loads.
for (const flag of HEAP_FLAGS) setFlagsFromString(flag);

const { main } = await import('../dist/cli/main.js');
// Exit explicitly: once main() has stopped everything, nothing may keep the process alive.
process.exit(await main(process.argv));
