/**
 * Datasets indexed before manifest format 2 keep working: a dataset written by the last
 * format-1 release (test/fixtures/v1-dataset, made by test/fixtures/make-v1-dataset.ts at
 * commit da065e8: a failed fragment, a removed one whose rows its indexes still hold) is
 * queried, inspected, appended to (the first commit writes format 2), vacuumed and compacted,
 * and every answer equals that of a fresh build over the same files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { inspect } from '../../lib/cli/inspect.js';
import { listVersions, loadLatestManifest } from '../../lib/manifest/manifest.js';
import { query, type QueryResult } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { build } from '../../lib/workflow/build.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import { vacuum } from '../../lib/workflow/vacuum.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { coveredIds, indexFiles, staleIds } from '../support/manifest.js';
import { tempDir } from '../support/tmp.js';

const FIXTURE = path.join(import.meta.dirname, '../fixtures/v1-dataset');
const V1 = 'serverless-scalar-index/manifest/1';
const V2 = 'serverless-scalar-index/manifest/2';
const COLS: ColumnSpec[] = [
  { name: 'k', type: 'int64' },
  { name: 's', type: 'utf8' },
  { name: 'x', type: 'float64' },
];
const PREDICATES = [
  'k = 3',
  'k IN (-6, 0, 6)',
  'k IS NULL',
  'NOT (k = 3)',
  "s = 'ü'",
  "s = '😀' OR s = ''",
  's IS NOT NULL AND k < 0',
  'x > 0',
  'x = 0',
  'x IS NULL',
  "x >= -1.5 AND s = 'a'",
  "NOT (x < 1) OR s IN ('b', 'ü')",
];

/** Answers keyed by path (fragment ids differ between the two histories). */
function byPath(r: QueryResult) {
  return {
    exact: r.exact,
    rows: r.rows,
    fragments: Object.fromEntries(r.fragments.map((f) => [f.path, f.ranges])),
    unindexed: r.unindexedFragments.map((f) => [f.path, f.reason]).sort(),
  };
}

const rawFormat = (root: string, version: number) => JSON.parse(fs.readFileSync(path.join(root, '_index/versions', `${String(version).padStart(20, '0')}.json`), 'utf8')).format;

let root: string;
/** A fresh format-2 build over the same data files, the reference. */
let reference: string;

beforeEach(async () => {
  root = tempDir('ssi-v1-');
  fs.cpSync(FIXTURE, root, { recursive: true });
  // A checkout gives files new modification times; the local store's tag is size and time,
  // so put back the times the fixture's manifest registered (else: "was rewritten").
  const v1 = JSON.parse(fs.readFileSync(path.join(root, '_index/versions', fs.readdirSync(path.join(root, '_index/versions')).sort().at(-1)!), 'utf8'));
  for (const f of v1.fragments as { path: string; etag: string; removed?: string }[]) {
    if (f.removed) continue;
    // Half a millisecond past it, so that seconds as a float do not round below it.
    const seconds = (Number(f.etag.split('-')[1]) + 0.5) / 1000;
    fs.utimesSync(path.join(root, f.path), seconds, seconds);
  }
  reference = tempDir('ssi-v1-ref-');
  fs.cpSync(path.join(root, 'data'), path.join(reference, 'data'), { recursive: true });
  await build({ dataset: reference, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'bitmap' }, { column: 'x', type: 'zonemap', rowsPerZone: 8 }], skipBadFragments: true, concurrency: 1 });
});

async function expectSameAnswers() {
  for (const p of PREDICATES) {
    const [got, want] = await Promise.all([query(root, p), query(reference, p)]);
    expect(byPath(got), p).toEqual(byPath(want));
  }
}

describe('a format-1 dataset', () => {
  it('is read as it is: the fixture really is format 1, and queries answer as a fresh build does', async () => {
    const versions = await listVersions(new LocalStore(root));
    expect(versions).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rawFormat(root, 6)).toBe(V1);
    await expectSameAnswers();
    const r = await query(root, 'k = 3');
    expect(r.version).toBe(6);
    expect(r.unindexedFragments).toEqual([{ id: 4, path: 'data/e.arrow', reason: expect.any(String) }]);
    expect(r.fragments.map((f) => f.path)).not.toContain('data/b.parquet');
  });

  it('inspects: fragments with their status, each index as one segment holding the removed fragment as stale', async () => {
    const info = await inspect(root);
    expect(info.version).toBe(6);
    expect(info.fragments.list.map((f) => [f.path, f.rows, !!f.failed, !!f.removed])).toEqual([
      ['data/a.arrow', 40, false, false],
      ['data/b.parquet', 37, false, true],
      ['data/c.arrow', 0, false, false],
      ['data/d.arrow', 25, false, false],
      ['data/e.arrow', 0, true, false],
    ]);
    expect(info.fragments.list[4]!.failed).toMatch(/corrupt or truncated/);
    for (const ix of info.indexes) {
      expect(ix.segments, ix.name).toHaveLength(1);
      expect(ix.fragmentsStale, ix.name).toEqual([1]);
      expect(ix.fragmentsCovered, ix.name).toBe(3);
      expect(ix.fragmentsMissing, ix.name).toEqual([]);
    }
  });

  it('takes an append: the commit writes format 2, keeps the format-1 files as a segment, adds one, and answers stay exact', async () => {
    const store = new LocalStore(root);
    const before = await loadLatestManifest(store);
    const v1Files = before.indexes.flatMap(indexFiles).map((f) => f.key);
    const f = fragmentBytes(COLS, { k: [3n, null, -6n, 3n], s: ['ü', 'z', null, ''], x: [-0, Number.NaN, 7, null] }, { batchRows: 3, format: 'file' });
    for (const r of [root, reference]) await new LocalStore(r).put('data/f.arrow', f);
    const summary = await build({ dataset: root, concurrency: 1, compact: false });
    await build({ dataset: reference, concurrency: 1 });
    // Registration and the build each commit a version, both format 2.
    expect(await listVersions(store)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(summary.version).toBe(8);
    for (const v of [7, 8]) expect(rawFormat(root, v)).toBe(V2);
    const after = await loadLatestManifest(store);
    for (const ix of after.indexes) {
      expect(ix.segments, ix.name).toHaveLength(2);
      expect(coveredIds(ix), ix.name).toEqual([0, 2, 3, 5]);
    }
    expect(after.indexes.flatMap(indexFiles).map((x) => x.key)).toEqual(expect.arrayContaining(v1Files));
    await expectSameAnswers();
  });

  it('vacuums: files the format-1 head references stay, the ones it replaced go, and answers do not change', async () => {
    const store = new LocalStore(root);
    const referenced = (await loadLatestManifest(store)).indexes.flatMap(indexFiles).map((f) => f.key).sort();
    const indexDirs = () => fs.readdirSync(path.join(root, '_index/indexes'), { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.relative(root, path.join(d.parentPath, d.name))).sort();
    expect(indexDirs()).toHaveLength(10);
    await vacuum({ dataset: root, olderThan: 0, keepVersions: 1 });
    expect(indexDirs()).toEqual(referenced);
    expect(await listVersions(store)).toEqual([6]);
    await expectSameAnswers();
  });

  it('compacts: each index into one format-2 segment without the removed fragment rows, answers unchanged', async () => {
    const r = await compactDataset(root, { full: true });
    expect(r.compactions.filter((c) => c.committed)).toHaveLength(3);
    const m = await loadLatestManifest(new LocalStore(root));
    expect(rawFormat(root, m.version)).toBe(V2);
    for (const ix of m.indexes) {
      expect(ix.segments, ix.name).toHaveLength(1);
      expect(staleIds(ix), ix.name).toEqual([]);
      expect(coveredIds(ix), ix.name).toEqual([0, 2, 3]);
    }
    await expectSameAnswers();
  });
});
