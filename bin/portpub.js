#!/usr/bin/env node
// Shim: the CLI lives in dist/cli.js (built from src/cli.ts by `npm run build`, which `npm ci`
// and `npm install` run through the prepare script).
import { main } from '../dist/cli.js';

// Exit explicitly: once main() has stopped everything, nothing may keep the process alive.
process.exit(await main(process.argv));
