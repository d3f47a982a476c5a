// Bundles the CLI (and the build-part worker it starts) into dist/cli-bundle/ with esbuild, as
// part of `npm run build`. One file per command's code, split along the CLI's dynamic
// imports, instead of hundreds of modules: apache-arrow alone is ~200 files, and resolving and
// loading them took longer than the query they serve (bench/startup.bench.ts measures it).
// Native addons and parquet-wasm (which loads its .wasm beside itself) stay in node_modules.
import * as fs from 'node:fs';
import { build } from 'esbuild';

// `node scripts/bundle-cli.mjs [outdir]`: tests bundle into a directory of their own.
const outdir = process.argv[2] ?? 'dist/cli-bundle';

// Chunk names carry content hashes: clear out the last build's.
fs.rmSync(outdir, { recursive: true, force: true });

await build({
  entryPoints: { main: 'lib/cli/main.ts', 'part-worker': 'lib/workflow/part-worker.ts' },
  outdir,
  bundle: true,
  // The worker is found as ./part-worker.js beside the chunk that starts it: keep one flat directory.
  splitting: true,
  chunkNames: '[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['roaring', '@node-rs/crc32', 'parquet-wasm'],
  // CommonJS dependencies (commander, the AWS SDK …) bundled into ESM still require() Node's
  // own modules: give each chunk a require.
  banner: { js: "import { createRequire as __cliBundleCreateRequire } from 'node:module'; const require = __cliBundleCreateRequire(import.meta.url);" },
  // Less source to read, decode and compile per process (most of a query's start-up); names
  // are kept, since error classes are named by them.
  minify: true,
  keepNames: true,
  sourcemap: 'linked',
  logLevel: 'warning',
});
