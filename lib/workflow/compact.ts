/**
 * Compaction: merge some segments of an index into one (or some fragment table chunks into
 * one), with the kind's streaming k-way merge, and commit a manifest that replaces exactly
 * those inputs. Rows of fragments removed or found bad since (stale) are left out of the new
 * segment: this is where their space comes back.
 *
 * Races: appends that commit meanwhile add segments of their own, which stay (the commit
 * rebases onto them). If any input is no longer there (another compaction merged it first),
 * this one gives up cleanly: it commits nothing and deletes what it wrote.
 */
import { openDataset } from '../dataset.js';
import { IndexFileError, UsageError } from '../errors.js';
import { IpcFileReader } from '../format/ipc.js';
import type { WriterTuning } from '../indexes/kind.js';
import { indexKind } from '../indexes/registry.js';
import { readChunk, writeFragmentChunks } from '../manifest/fragment-table.js';
import { commitManifest, loadLatestManifest, newSegmentId, someFragments, type Manifest, type SegmentEntry } from '../manifest/manifest.js';
import { has, idsOf, intersect, subtract, union, type IdRanges } from '../manifest/ranges.js';
import { columnTypeFromSignature } from '../query/coerce.js';
import { listAll } from '../store/store.js';
import { chunkCompaction, compactionTasks, indexCompaction } from './compaction-policy.js';
import { indexFilesPrefix, type CompactionTask } from './types.js';

export interface CompactResult {
  /** The index compacted, or null for the fragment table. */
  index: string | null;
  committed: boolean;
  /** Why nothing was committed, when nothing was. */
  gaveUp?: string;
  version: number;
  inputs: number;
  bytesRead: number;
  bytesWritten: number;
  /** What the policy asks for next on the same index (or table), after this commit. */
  next?: CompactionTask;
}

export async function compact(dataset: string, task: CompactionTask, tuning?: WriterTuning): Promise<CompactResult> {
  return task.index === null ? compactChunks(dataset, task) : compactSegments(dataset, task, tuning);
}

async function compactSegments(dataset: string, task: CompactionTask, tuning?: WriterTuning): Promise<CompactResult> {
  const { store } = openDataset(dataset);
  const name = task.index!;
  const base = await loadLatestManifest(store);
  const ix = base.indexes.find((e) => e.name === name);
  const inputs = task.inputs.map((id) => ix?.segments.find((s) => s.id === id));
  const result = (partial: Partial<CompactResult>): CompactResult => ({ index: name, committed: false, version: base.version, inputs: task.inputs.length, bytesRead: 0, bytesWritten: 0, ...partial });
  if (!ix) return result({ gaveUp: `index ${name} is not defined` });
  if (inputs.some((s) => !s)) return result({ gaveUp: 'an input segment is no longer there (compacted by another run)' });
  const segments = (inputs as SegmentEntry[]).sort((a, b) => (a.fragments[0]?.[0] ?? 0) - (b.fragments[0]?.[0] ?? 0));

  const kind = indexKind(ix.type);
  const ct = columnTypeFromSignature(ix.valueType);
  const readers = await Promise.all(
    segments.map((s) => {
      const f = s.files.find((x) => x.name === kind.mainFile);
      if (!f) throw new IndexFileError(`segment ${s.id} of index ${name} has no ${kind.mainFile}`);
      return IpcFileReader.open(store, f.key, { size: f.size, crc32c: f.crc32c });
    }),
  );
  // Each input keeps only the fragments it still covers: stale rows are dropped here.
  const outDir = `${indexFilesPrefix(name)}c-${newSegmentId()}/`;
  const out = await kind.merge({
    store,
    ct,
    params: ix.params,
    column: ix.column,
    inputs: readers.map((reader, i) => {
      const s = segments[i]!;
      return { reader, keep: s.stale?.length ? (id: number) => has(s.fragments, id) : undefined };
    }),
    outDir,
    tuning,
  });
  const held = segments.reduce<IdRanges>((acc, s) => union(acc, s.fragments), []);
  // Row counts of the merged fragments: only the table batches that hold them are read.
  const rowsOf = new Map([...(await someFragments(store, base, idsOf(held))).values()].map((f) => [f.id, f.rows]));
  const rowsIn = (r: IdRanges) => [...idsOf(r)].reduce((n, id) => n + (rowsOf.get(id) ?? 0), 0);
  const bytesRead = segments.reduce((n, s) => n + (s.files.find((f) => f.name === kind.mainFile)?.size ?? 0), 0);
  const bytesWritten = out.files.reduce((n, f) => n + f.size, 0);

  let gaveUp: string | undefined;
  const committed = await commitManifest(store, (latest) => {
    gaveUp = undefined;
    const now = latest.indexes.find((e) => e.name === name);
    const current = task.inputs.map((id) => now?.segments.find((s) => s.id === id));
    if (!now || current.some((s) => !s)) {
      gaveUp = 'an input segment is no longer there (compacted by another run)';
      return null;
    }
    // What still counts of what was merged: fragments only ever leave a segment.
    const still = (current as SegmentEntry[]).reduce<IdRanges>((acc, s) => union(acc, s.fragments), []);
    const covered = intersect(held, still);
    const stale = subtract(held, covered);
    now.segments = now.segments.filter((s) => !task.inputs.includes(s.id));
    if (covered.length > 0) {
      now.segments.push({
        id: newSegmentId(),
        fragments: covered,
        ...(stale.length > 0 && { stale }),
        rows: rowsIn(covered),
        bytes: bytesWritten,
        files: out.files,
        createdAt: new Date().toISOString(),
      });
    }
    now.updatedAt = new Date().toISOString();
    return latest;
  });
  if (!committed.committed) {
    await store.deleteMany((await listAll(store, outDir)).map((o) => o.key));
    return result({ gaveUp, version: committed.manifest.version, bytesRead });
  }
  const next = committed.manifest.indexes.find((e) => e.name === name);
  return { index: name, committed: true, version: committed.manifest.version, inputs: segments.length, bytesRead, bytesWritten, next: next && indexCompaction(next) };
}

async function compactChunks(dataset: string, task: CompactionTask): Promise<CompactResult> {
  const { store } = openDataset(dataset);
  const base = await loadLatestManifest(store);
  const refs = task.inputs.map((key) => base.fragments.chunks.find((c) => c.key === key));
  const result = (partial: Partial<CompactResult>): CompactResult => ({ index: null, committed: false, version: base.version, inputs: task.inputs.length, bytesRead: 0, bytesWritten: 0, ...partial });
  if (refs.some((r) => !r)) return result({ gaveUp: 'an input chunk is no longer there (compacted by another run)' });
  const chunks = (refs as NonNullable<(typeof refs)[number]>[]).sort((a, b) => a.firstId - b.firstId);
  for (let i = 1; i < chunks.length; i++) {
    if (chunks[i]!.firstId !== chunks[i - 1]!.firstId + chunks[i - 1]!.count) throw new IndexFileError('fragment table chunks to compact are not contiguous');
  }
  const rows = (await Promise.all(chunks.map((c) => readChunk(store, c)))).flat();
  const written = await writeFragmentChunks(store, rows);
  const bytesRead = chunks.reduce((n, c) => n + c.size, 0);
  const bytesWritten = written.reduce((n, c) => n + c.size, 0);
  let gaveUp: string | undefined;
  const committed = await commitManifest(store, (latest: Manifest) => {
    gaveUp = undefined;
    if (!task.inputs.every((k) => latest.fragments.chunks.some((c) => c.key === k))) {
      gaveUp = 'an input chunk is no longer there (compacted by another run)';
      return null;
    }
    latest.fragments.chunks = [...latest.fragments.chunks.filter((c) => !task.inputs.includes(c.key)), ...written].sort((a, b) => a.firstId - b.firstId);
    return latest;
  });
  if (!committed.committed) {
    await store.deleteMany(written.map((c) => c.key));
    return result({ gaveUp, version: committed.manifest.version, bytesRead });
  }
  return { index: null, committed: true, version: committed.manifest.version, inputs: chunks.length, bytesRead, bytesWritten, next: chunkCompaction(committed.manifest) };
}

export interface CompactionSummary {
  version: number;
  compactions: { index: string | null; inputs: number; committed: boolean; gaveUp?: string; bytesWritten: number }[];
  indexes: { name: string; segments: number; bytes: number }[];
}

/**
 * `scalar-index compact`: run what the policy asks for until it asks for nothing (or, with
 * `full`, merge every index's segments into one), on the given indexes or all of them.
 *
 * @example
 * const r = await compactDataset('s3://sales-data/datasets/2026', { full: true });
 * console.log(r.indexes.map((ix) => `${ix.name}: ${ix.segments} segment(s)`));
 */
export async function compactDataset(
  dataset: string,
  options: { indexes?: string[]; full?: boolean; tuning?: WriterTuning; progress?: (e: { step: string; done?: number; total?: number }) => void; maxCompactions?: number } = {},
): Promise<CompactionSummary> {
  const { store } = openDataset(dataset);
  const progress = options.progress ?? (() => {});
  const m = await loadLatestManifest(store);
  for (const name of options.indexes ?? []) {
    if (!m.indexes.some((e) => e.name === name)) throw new UsageError(`no index named ${name} (defined: ${m.indexes.map((e) => e.name).join(', ') || 'none'})`);
  }
  const wanted = (name: string | null) => options.indexes === undefined || (name !== null && options.indexes.includes(name));
  const pick = (latest: Manifest): CompactionTask[] => {
    if (!options.full) return compactionTasks(latest).filter((t) => wanted(t.index));
    // Everything into one segment per index (a lone segment too, when it holds stale rows),
    // and runs of small table chunks into one chunk each.
    const tasks: CompactionTask[] = latest.indexes
      .filter((e) => wanted(e.name) && (e.segments.length > 1 || e.segments.some((s) => s.stale?.length)))
      .map((e) => ({ index: e.name, inputs: e.segments.map((s) => s.id) }));
    const chunks = wanted(null) ? chunkCompaction(latest, 2) : undefined;
    return chunks ? [...tasks, chunks] : tasks;
  };
  const out: CompactionSummary['compactions'] = [];
  const limit = options.maxCompactions ?? 1000;
  let tasks = pick(m);
  while (tasks.length > 0 && out.length < limit) {
    for (const task of tasks) {
      progress({ step: `compacting ${task.index ?? 'the fragment table'} (${task.inputs.length} inputs)` });
      const r = await compact(dataset, task, options.tuning);
      out.push({ index: r.index, inputs: r.inputs, committed: r.committed, ...(r.gaveUp && { gaveUp: r.gaveUp }), bytesWritten: r.bytesWritten });
    }
    if (options.full) break;
    tasks = pick(await loadLatestManifest(store));
  }
  const final = await loadLatestManifest(store);
  return {
    version: final.version,
    compactions: out,
    indexes: final.indexes.filter((e) => wanted(e.name)).map((e) => ({ name: e.name, segments: e.segments.length, bytes: e.segments.reduce((n, s) => n + s.bytes, 0) })),
  };
}
