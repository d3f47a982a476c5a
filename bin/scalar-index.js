#!/usr/bin/env node
// The CLI entry point; the TypeScript sources are compiled to dist/ by `npm run build`
// (run automatically by `npm ci` / `npm install` through the `prepare` script).
import { main } from '../dist/cli/main.js';
import { useThroughputGc } from '../dist/runtime.js';

// Builds stream large buffers through a small heap: see lib/runtime.ts.
useThroughputGc('large-builds');

process.exitCode = await main(process.argv.slice(2));
