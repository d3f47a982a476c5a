/**
 * Crash points. A build process is killed with a real SIGKILL after some parts, after the
 * merge wrote its files but before the commit, and after the commit before cleanup, on a local
 * directory and on S3. Every time: queries keep answering from the last committed version,
 * and a rerun converges to exactly the index an uninterrupted build makes (same file bytes).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadLatestManifest, listVersions } from '../../lib/manifest/manifest.js';
import { query, type QueryResult } from '../../lib/query/evaluate.js';
import { listAll, type ObjectStore } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import { vacuum } from '../../lib/workflow/vacuum.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { datasetTargets, useS3Server, type DatasetTarget } from '../support/s3-env.js';

const ENTRY = path.join(import.meta.dirname, '../support/crash-entry.ts');
const COLS: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 's', type: 'utf8' },
];
const rows = (f: number) => ({
  k: Array.from({ length: 25 }, (_, i) => (i * 7 + f * 3) % 13),
  s: Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? null : `w${(i + f) % 5}`)),
});
const INDEXES = [
  { column: 'k', type: 'bitmap' as const },
  { column: 's', type: 'zonemap' as const, rowsPerZone: 8 },
];
const QUERIES = ['k = 5', "s = 'w2' OR k IN (1, 2)", 's IS NULL'];

const s3 = useS3Server({ buckets: ['crash'] });

type Target = DatasetTarget;
const targets = datasetTargets('crash');

async function addFragments(t: Target, from: number, to: number): Promise<void> {
  for (let f = from; f < to; f++) {
    const format = f % 2 ? 'parquet' : 'file';
    await t.store.put(`data/f${String(f).padStart(2, '0')}.${format === 'parquet' ? 'parquet' : 'arrow'}`, fragmentBytes(COLS, rows(f), { batchRows: 10, format }));
  }
}

function runCrashing(dataset: string, point: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, dataset, point], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

const answer = (r: QueryResult) => ({ exact: r.exact, rows: r.rows, fragments: r.fragments, unindexed: r.unindexedFragments.map((f) => f.path) });

/** Every index file's bytes, by index, the fragments its segment covers, and file name. */
async function indexBytes(store: ObjectStore): Promise<Record<string, string>> {
  const m = await loadLatestManifest(store);
  const out: Record<string, string> = {};
  for (const e of m.indexes) {
    for (const s of e.segments) for (const f of s.files) out[`${e.name}/${JSON.stringify(s.fragments)}/${f.name}`] = Buffer.from(await store.read(f.key)).toString('base64');
  }
  return out;
}

describe.each(Object.keys(targets))('crash points on %s', (kind) => {
  // The uninterrupted reference: fragments 0-3, build, fragments 4-9, build.
  let reference: Record<string, string>;
  beforeAll(async () => {
    const ref = targets[kind as keyof typeof targets]();
    await addFragments(ref, 0, 4);
    await build({ dataset: ref.dataset, indexes: INDEXES, groupRows: 30 });
    await addFragments(ref, 4, 10);
    await build({ dataset: ref.dataset, groupRows: 30 });
    reference = await indexBytes(ref.store);
  });

  it.each(['after-parts:2', 'part-before-record', 'register-before-head', 'before-commit', 'before-cleanup'])('killed %s: queries keep answering, a rerun converges', async (point) => {
    const t = targets[kind as keyof typeof targets]();
    await addFragments(t, 0, 4);
    await build({ dataset: t.dataset, indexes: INDEXES, groupRows: 30 });
    const before = await Promise.all(QUERIES.map((q) => query(t.dataset, q)));
    const versionsBefore = await listVersions(t.store);
    await addFragments(t, 4, 10);

    const crashed = await runCrashing(t.dataset, point);
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');

    const after = await Promise.all(QUERIES.map((q) => query(t.dataset, q)));
    const versionsAfter = await listVersions(t.store);
    if (point === 'before-cleanup') {
      // The commit landed: the new version answers for every fragment.
      expect(versionsAfter.length).toBe(versionsBefore.length + 2);
      for (const r of after) expect(r.unindexedFragments).toEqual([]);
    } else if (point === 'register-before-head') {
      // Nothing landed (a table chunk no manifest names): the new files are unregistered.
      expect(versionsAfter).toEqual(versionsBefore);
      after.forEach((r, i) => {
        expect(r.fragments, QUERIES[i]).toEqual(before[i]!.fragments);
        expect(r.unindexedFragments.map((f) => [f.id, f.reason])).toEqual(Array.from({ length: 6 }, () => [null, 'unregistered']));
      });
    } else {
      // Only the registration landed: indexed answers are unchanged, new fragments unindexed.
      expect(versionsAfter.length).toBe(versionsBefore.length + 1);
      after.forEach((r, i) => {
        expect(r.fragments.filter((f) => f.id < 4), QUERIES[i]).toEqual(before[i]!.fragments);
        expect(r.unindexedFragments.map((f) => f.id)).toEqual([4, 5, 6, 7, 8, 9]);
      });
    }

    const rerun = await build({ dataset: t.dataset, groupRows: 30 });
    expect(rerun.indexes.every((i) => i.fragmentsCovered === 10)).toBe(true);
    expect(await indexBytes(t.store)).toEqual(reference);
    const final = await Promise.all(QUERIES.map((q) => query(t.dataset, q)));
    for (const r of final) expect(answer(r).unindexed).toEqual([]);
    // Linear history: each version's fragments extend the previous one's.
    const versions = await listVersions(t.store);
    expect(versions).toEqual(versions.map((_, i) => i + 1));
  });
});

/**
 * Compaction crash points: a full compaction of ten one-fragment segments per index is killed
 * after its first output file, and after writing a whole merged segment before its commit.
 * Queries answer as before from the last version; a rerun compacts to what an uninterrupted
 * compaction makes; vacuum removes what the killed run left.
 */
describe.each(Object.keys(targets))('compaction crash points on %s', (kind) => {
  async function appended(t: Target): Promise<void> {
    for (let f = 0; f < 10; f++) {
      await addFragments(t, f, f + 1);
      await build({ dataset: t.dataset, indexes: f === 0 ? INDEXES : undefined, compact: false });
    }
  }
  let reference: { answers: ReturnType<typeof answer>[]; segments: number[] };
  beforeAll(async () => {
    const ref = targets[kind as keyof typeof targets]();
    await appended(ref);
    await compactDataset(ref.dataset, { full: true });
    const m = await loadLatestManifest(ref.store);
    reference = { answers: (await Promise.all(QUERIES.map((q) => query(ref.dataset, q)))).map(answer), segments: m.indexes.map((e) => e.segments.length) };
  });

  it.each(['compact:mid-merge', 'compact:before-commit'])('killed %s: queries keep answering, a rerun converges, vacuum clears what it left', async (point) => {
    const t = targets[kind as keyof typeof targets]();
    await appended(t);
    const before = (await Promise.all(QUERIES.map((q) => query(t.dataset, q)))).map(answer);
    const versionsBefore = await listVersions(t.store);
    expect((await loadLatestManifest(t.store)).indexes.map((e) => e.segments.length)).toEqual([10, 10]);

    const crashed = await runCrashing(t.dataset, point);
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
    expect(await listVersions(t.store)).toEqual(versionsBefore);
    expect((await Promise.all(QUERIES.map((q) => query(t.dataset, q)))).map(answer)).toEqual(before);
    // The killed run left merged output that no manifest names.
    const referenced = new Set((await loadLatestManifest(t.store)).indexes.flatMap((e) => e.segments.flatMap((s) => s.files.map((f) => f.key))));
    const orphans = (await listAll(t.store, '_index/indexes/')).filter((o) => !referenced.has(o.key));
    expect(orphans.length).toBeGreaterThan(0);

    await compactDataset(t.dataset, { full: true });
    const m = await loadLatestManifest(t.store);
    expect(m.indexes.map((e) => e.segments.length)).toEqual(reference.segments);
    expect((await Promise.all(QUERIES.map((q) => query(t.dataset, q)))).map(answer)).toEqual(reference.answers);
    const versions = await listVersions(t.store);
    expect(versions).toEqual(versions.map((_, i) => i + 1));

    await vacuum({ dataset: t.dataset, olderThan: 0, keepVersions: 1, now: () => Date.now() + 60_000 });
    const live = new Set((await loadLatestManifest(t.store)).indexes.flatMap((e) => e.segments.flatMap((s) => s.files.map((f) => f.key))));
    expect((await listAll(t.store, '_index/indexes/')).map((o) => o.key).sort()).toEqual([...live].sort());
    expect((await Promise.all(QUERIES.map((q) => query(t.dataset, q)))).map(answer)).toEqual(reference.answers);
  });
});
