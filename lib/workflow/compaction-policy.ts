/**
 * When to compact: a size-tiered policy over each index's segments (and over the fragment
 * table's chunks), run after every commit.
 *
 * A segment of `b` bytes is in tier `max(0, floor(log_T(b / BASE)))`. When a tier holds T
 * segments, they are merged into one, which is at least T times the tier's floor and so lands
 * in a higher tier. Hence, for an index holding S bytes:
 * - segments per index ≤ (T - 1) · (⌊log_T(S / BASE)⌋ + 1) + (T - 1) while a compaction is
 *   pending: about 27 at S = 1 GiB with T = 4 and BASE = 8 KiB, typically half that;
 * - each merge either lifts its bytes at least one tier, or (small appends) stays in tier 0,
 *   which at most one merge in T - 1 appends does, writing under T · BASE bytes. So bytes
 *   written per byte appended ≤ 1 + tier(S) - tier(a) (under 2 + log_T(S / a)) for appends
 *   of `a` ≥ BASE bytes: 6 at most for 1 MiB appends to a 1 GiB index, plus at most
 *   T · BASE / (T - 1) (11 KiB) per append below that. Both bounds are checked by a property
 *   test over random append histories (test/workflow/compaction.test.ts) and measured by
 *   `npm run bench:incremental`.
 * A segment whose stale rows (of fragments removed since) outnumber its live ones is also
 * compacted, alone, to give the space back.
 *
 * Chunks of the fragment table are merged the same way, by row count, as long as the merged
 * chunk stays within FRAGMENT_CHUNK_ROWS.
 */
import { FRAGMENT_CHUNK_ROWS } from '../manifest/fragment-table.js';
import type { IndexEntry, Manifest } from '../manifest/manifest.js';
import { countOf } from '../manifest/ranges.js';
import type { CompactionTask } from './types.js';

/** Segments merged at once, and the factor between tiers. */
export const COMPACTION_FANOUT = 4;
/** Segments of at most this many bytes are all in the lowest tier. */
export const COMPACTION_BASE_BYTES = 8 * 1024;

export function tierOf(bytes: number, fanout = COMPACTION_FANOUT, base = COMPACTION_BASE_BYTES): number {
  return bytes <= base ? 0 : Math.floor(Math.log(bytes / base) / Math.log(fanout));
}

/** The compaction one index needs now, if any: its lowest full tier, or a mostly stale segment. */
export function indexCompaction(ix: IndexEntry, fanout = COMPACTION_FANOUT): CompactionTask | undefined {
  const tiers = new Map<number, typeof ix.segments>();
  for (const s of ix.segments) {
    const t = tierOf(s.bytes, fanout);
    const list = tiers.get(t);
    if (list) list.push(s);
    else tiers.set(t, [s]);
  }
  for (const t of [...tiers.keys()].sort((a, b) => a - b)) {
    const list = tiers.get(t)!;
    if (list.length >= fanout) return { index: ix.name, inputs: list.map((s) => s.id) };
  }
  const dead = ix.segments.find((s) => s.stale && countOf(s.stale) > countOf(s.fragments));
  return dead ? { index: ix.name, inputs: [dead.id] } : undefined;
}

/** Runs of consecutive small chunks worth merging: at least `fanout` of them, together within a chunk's size. */
export function chunkCompaction(m: Manifest, fanout = COMPACTION_FANOUT): CompactionTask | undefined {
  const chunks = [...m.fragments.chunks].sort((a, b) => a.firstId - b.firstId);
  let run: typeof chunks = [];
  let rows = 0;
  const best = () => (run.length >= fanout ? { index: null, inputs: run.map((c) => c.key) } : undefined);
  for (const c of chunks) {
    const last = run[run.length - 1];
    const contiguous = last && last.firstId + last.count === c.firstId;
    if (!contiguous || rows + c.count > FRAGMENT_CHUNK_ROWS) {
      const done = best();
      if (done) return done;
      run = [];
      rows = 0;
    }
    if (c.count >= FRAGMENT_CHUNK_ROWS / fanout) continue; // big enough to stay
    run.push(c);
    rows += c.count;
  }
  return best();
}

/** Every compaction the manifest asks for now: at most one per index, and one for the fragment table. */
export function compactionTasks(m: Manifest, fanout = COMPACTION_FANOUT): CompactionTask[] {
  const tasks = m.indexes.map((ix) => indexCompaction(ix, fanout)).filter((t): t is CompactionTask => t !== undefined);
  const chunks = chunkCompaction(m, fanout);
  return chunks ? [...tasks, chunks] : tasks;
}
