#!/usr/bin/env node
// The CLI entry point. `npm run build` (run by `npm ci` / `npm install` through `prepare`)
// compiles the sources to dist/ and bundles the CLI into dist/cli-bundle/ (scripts/bundle-cli.mjs):
// a few files instead of hundreds of modules, so a command starts in a fraction of the time.
import { main, useThroughputGc } from '../dist/cli-bundle/main.js';

// Builds stream large buffers through a small heap: see lib/runtime.ts.
useThroughputGc('large-builds');

process.exitCode = await main(process.argv.slice(2));
