#!/usr/bin/env node
// Shim: the CLI lives in dist/cli.js (built from src/cli.ts by `npm run build`).
import { main } from '../dist/cli.js';

process.exitCode = await main(process.argv);
