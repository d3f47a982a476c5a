/**
 * A process-wide V8 setting for building indexes, opted into by the programs that build: the
 * Lambda handlers (`'always'`), the CLI and the benchmarks (`'large-builds'`). The library
 * never opts in by itself; a program embedding `build()` may.
 *
 * Why: index building streams hundreds of megabytes of ArrayBuffers (column reads, row-offset
 * orders, serialized bitmaps, batches) while the JavaScript heap stays small (about 20 MB).
 * V8 then keeps incremental marking running almost without pause (a major GC every 20-40 ms
 * in the merge, each reclaiming little), and its marking barriers and concurrent marking
 * threads cost the build more than the collections free. With incremental marking off, a
 * major GC is one short stop-the-world pause on that small heap. Measured (2 cores, 50M rows,
 * one bitmap on `cat_i32`, one thread): 2.80 s → 2.22 s; 10M rows: 0.436 → 0.420 s (mean of 4).
 * The price is a later collection, so a higher peak: about 20 MB on a 1M-row build, where it
 * buys nothing; hence `'large-builds'`.
 *
 * Set `SCALAR_INDEX_INCREMENTAL_GC=1` to keep V8's default in every case.
 */
import * as v8 from 'node:v8';

/** From this much work (rows read × indexes) a local build runs with incremental marking off. */
export const THROUGHPUT_GC_MIN_WORK_ROWS = 8_000_000;

export type ThroughputGcMode = 'always' | 'large-builds';

let mode: ThroughputGcMode | undefined;
/** Builds in this process that have incremental marking off right now. */
let active = 0;

/**
 * Opt this process in. `'always'`: incremental marking off from now on (and in the worker
 * threads started later: V8 flags are process-wide). `'large-builds'`: off only while a local
 * build of at least THROUGHPUT_GC_MIN_WORK_ROWS runs (see `throughputGcFor`). Returns the mode
 * in effect, or undefined when `SCALAR_INDEX_INCREMENTAL_GC=1` keeps V8's default.
 */
export function useThroughputGc(wanted: ThroughputGcMode = 'always', env: NodeJS.ProcessEnv = process.env): ThroughputGcMode | undefined {
  if (env.SCALAR_INDEX_INCREMENTAL_GC === '1') return undefined;
  if (mode === 'always') return mode;
  mode = wanted;
  if (mode === 'always') v8.setFlagsFromString('--no-incremental-marking');
  return mode;
}

/**
 * Called by the local engine once a build's size is known: in `'large-builds'` mode, turns
 * incremental marking off for a build of at least THROUGHPUT_GC_MIN_WORK_ROWS and returns the
 * function that turns it back on (once no such build is running). Otherwise a no-op.
 */
export function throughputGcFor(workRows: number): () => void {
  if (mode !== 'large-builds' || workRows < THROUGHPUT_GC_MIN_WORK_ROWS) return () => {};
  if (active++ === 0) v8.setFlagsFromString('--no-incremental-marking');
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--active === 0 && mode === 'large-builds') v8.setFlagsFromString('--incremental-marking');
  };
}
