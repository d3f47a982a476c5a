/**
 * Our side of the LanceDB benchmark, in a child process of run.ts so its peak RSS is its own.
 * Imports the main repository's library (apache-arrow 21 from the top-level node_modules) and
 * answers the driver's messages: build, query, usage.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { IndexRequest } from '../../lib/workflow/types.js';
import { serve } from './child.mjs';

/**
 * With LANCEDB_BENCH_LIB (set by the driver for LANCEDB_BENCH_OURS=dist), the library is
 * imported from that directory of compiled JavaScript instead of the TypeScript sources.
 */
const LIB = process.env.LANCEDB_BENCH_LIB;
const lib = async <T>(rel: string, fromSource: () => Promise<T>): Promise<T> =>
  LIB ? ((await import(pathToFileURL(path.join(LIB, rel)).href)) as T) : fromSource();

const { query } = await lib('query/evaluate.js', () => import('../../lib/query/evaluate.js'));
const { build } = await lib('workflow/build.js', () => import('../../lib/workflow/build.js'));
const { QueryCache } = await lib('query/cache.js', () => import('../../lib/query/cache.js'));
const { useThroughputGc } = await lib('runtime.js', () => import('../../lib/runtime.js'));

// The V8 setting our CLI and Lambda handlers run builds with (lib/runtime.ts).
useThroughputGc('large-builds');

/**
 * One cache for this long-lived query process, as LanceDB's table handle keeps its index
 * cache: manifests and opened bitmap indexes are reused, the versions are listed every query.
 */
const cache = new QueryCache();

/**
 * Row addresses as sorted u64le, one fragment at a time so that a zone map's "every row"
 * answer does not inflate this process's peak RSS: (id << 32) | offset is the word pair
 * (offset, id). Fragments come in id order and ranges are sorted, so the output is sorted.
 */
function writeAnswer(file: string, fragments: { id: number; ranges: [number, number][] }[]): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (const f of fragments) {
      const n = f.ranges.reduce((k, [a, b]) => k + (b - a), 0);
      const words = new Uint32Array(2 * n);
      let k = 0;
      for (const [a, b] of f.ranges) {
        for (let r = a; r < b; r++) {
          words[k++] = r;
          words[k++] = f.id;
        }
      }
      fs.writeSync(fd, words);
    }
  } finally {
    fs.closeSync(fd);
  }
}

serve({
  /** `build()` as a user calls it: the whole workflow, parts on every core. */
  async build(args: { dataset: string; indexes: IndexRequest[] }) {
    const t0 = performance.now();
    const summary = await build({ dataset: args.dataset, indexes: args.indexes });
    const ms = performance.now() - t0;
    return { ms, indexes: summary.indexes };
  },

  /** One query; with `answer`, the row addresses are written there as sorted u64le. */
  async query(args: { dataset: string; where: string; answer?: string }) {
    const t0 = performance.now();
    const result = await query(args.dataset, args.where, { cache });
    const ms = performance.now() - t0;
    if (args.answer) writeAnswer(args.answer, result.fragments);
    return {
      ms,
      rows: result.rows,
      exact: result.exact,
      fragments: result.fragments.length,
      unindexedFragments: result.unindexedFragments.length,
      indexesUsed: result.indexesUsed,
    };
  },
});
