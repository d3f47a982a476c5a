/**
 * Process-wide V8 setting for programs whose job is building indexes: the CLI, the Lambda
 * handlers and the benchmark's build process call `useThroughputGc()` once at start. The
 * library never calls it by itself; a program embedding `build()` may.
 *
 * Why: index building streams hundreds of megabytes of ArrayBuffers (column reads, row-offset
 * orders, serialized bitmaps, batches) while the JavaScript heap stays small (about 20 MB).
 * V8 then keeps incremental marking running almost without pause (a major GC every 20-40 ms
 * in the merge, each reclaiming little), and its marking barriers and concurrent marking
 * threads cost the build more than the collections free. With incremental marking off, a
 * major GC is one short stop-the-world pause on that small heap. Measured (2 cores, 50M rows,
 * one bitmap on `cat_i32`, one thread): 2.80 s → 2.22 s; peak RSS 230 → 265 MB.
 *
 * Set `SCALAR_INDEX_INCREMENTAL_GC=1` to keep V8's default.
 */
import * as v8 from 'node:v8';

let applied: boolean | undefined;

/**
 * Turn V8's incremental marking off for this process (and the worker threads it starts later:
 * V8 flags are process-wide). Returns whether it is off. Idempotent; call it before the heavy
 * work starts, as V8 reads flags when it next decides to collect.
 */
export function useThroughputGc(env: NodeJS.ProcessEnv = process.env): boolean {
  if (applied !== undefined) return applied;
  applied = env.SCALAR_INDEX_INCREMENTAL_GC !== '1';
  if (applied) v8.setFlagsFromString('--no-incremental-marking');
  return applied;
}
