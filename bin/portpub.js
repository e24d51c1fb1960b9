#!/usr/bin/env node
// Shim: the CLI lives in dist/cli/main.js (built from src/cli/main.ts by `npm run build`, which `npm ci`
// and `npm install` run through the prepare script).
import { setFlagsFromString } from 'node:v8';
import { HEAP_FLAGS } from '../dist/heap-flags.js';

// Heap sizing for many idle sockets (reasons in src/heap-flags.ts), set before the CLI loads.
for (const flag of HEAP_FLAGS) setFlagsFromString(flag);

// run() exits once stdout and stderr have drained (src/cli/main.ts says why).
const { run } = await import('../dist/cli/main.js');
await run(process.argv);
