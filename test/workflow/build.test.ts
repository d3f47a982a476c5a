import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { LocalStore } from '../../lib/store/local.js';
import { listVersions, loadLatestManifest, readManifest } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { build } from '../../lib/workflow/build.js';
import { buildPart } from '../../lib/workflow/build-part.js';
import { commit } from '../../lib/workflow/commit.js';
import { merge } from '../../lib/workflow/merge.js';
import { plan } from '../../lib/workflow/plan.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import { partDir } from '../../lib/workflow/types.js';
import { writeFragment, type ColumnSpec } from '../support/dataset.js';
import { coveredIds, fragmentsOf, indexFiles } from '../support/manifest.js';
import { decodeRowSetIndependently } from '../support/roaring-spec.js';
import { spawnCli } from '../support/run-cli.js';
import { tempDir } from '../support/tmp.js';

const COLUMNS: ColumnSpec[] = [
  { name: 'k', type: 'int64' },
  { name: 's', type: 'utf8' },
];

/** Fragment f: k cycles through `distinct` values (with nulls), s through a few strings. */
async function writeFragments(root: string, from: number, count: number, rows: number, distinct = 7) {
  for (let f = from; f < from + count; f++) {
    const k = Array.from({ length: rows }, (_, i) => (i % 11 === 5 ? null : BigInt(((i * 31 + f) % distinct) - 3) * 1_000_000_000_000n));
    const s = Array.from({ length: rows }, (_, i) => (i % 13 === 0 ? null : `v${(i + f) % 5}`));
    await writeFragment(path.join(root, 'data', `f${String(f).padStart(4, '0')}.arrow`), COLUMNS, { k, s }, { batchRows: 17, format: 'file' });
  }
}

function zonemapFile(root: string, manifestFiles: { name: string; key: string }[]) {
  const key = manifestFiles.find((f) => f.name === 'zonemap.arrow')!.key;
  return arrow.tableFromIPC(fs.readFileSync(path.join(root, key)));
}

describe('zone map rows_per_zone', () => {
  it('a non-default rows_per_zone survives the merge, a reload, a later append (its own segment) and a compaction of both', async () => {
    const root = tempDir();
    await writeFragments(root, 0, 5, 250);
    await build({ dataset: root, indexes: [{ column: 'k', type: 'zonemap', rowsPerZone: 100 }], groupRows: 300 });
    const store = new LocalStore(root);
    let m = await loadLatestManifest(store);
    let table = zonemapFile(root, indexFiles(m.indexes[0]!));
    // Read back by apache-arrow itself, not by our reader.
    expect(table.schema.metadata.get('rows_per_zone')).toBe('100');
    expect(table.numRows).toBe(5 * 3); // 250 rows → zones of 100, 100, 50

    await writeFragments(root, 5, 2, 250);
    await build({ dataset: root }); // no --index: update what is defined
    m = await loadLatestManifest(store);
    expect(m.indexes[0]!.params.rowsPerZone).toBe(100);
    expect(coveredIds(m.indexes[0]!)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    // The append is a segment of its own, written with the same metadata.
    expect(m.indexes[0]!.segments).toHaveLength(2);
    table = zonemapFile(root, m.indexes[0]!.segments[1]!.files);
    expect(table.schema.metadata.get('rows_per_zone')).toBe('100');
    expect(table.numRows).toBe(2 * 3);

    // Merging the two keeps it too: set on the merged file's schema, never taken from a batch.
    await compactDataset(root, { full: true });
    m = await loadLatestManifest(store);
    expect(m.indexes[0]!.segments).toHaveLength(1);
    table = zonemapFile(root, indexFiles(m.indexes[0]!));
    expect(table.schema.metadata.get('rows_per_zone')).toBe('100');
    const lengths = table.getChild('zone_length')!.toArray() as BigUint64Array;
    expect([...lengths].map(Number)).toEqual(Array.from({ length: 7 }, () => [100, 100, 50]).flat());
  });

  it('rejects a different rows_per_zone for an existing index instead of silently mixing zone sizes', async () => {
    const root = tempDir();
    await writeFragments(root, 0, 2, 50);
    await build({ dataset: root, indexes: [{ column: 'k', type: 'zonemap', rowsPerZone: 10 }] });
    await expect(build({ dataset: root, indexes: [{ column: 'k', type: 'zonemap', rowsPerZone: 20 }] })).rejects.toThrow(/already exists.*rowsPerZone/);
  });
});

describe('bitmap files', () => {
  it('every row set in bitmap.arrow decodes with an independent RoaringFormatSpec decoder to the exact rows', async () => {
    const root = tempDir();
    await writeFragments(root, 0, 13, 120, 5);
    await build({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }], groupRows: 200, tuning: { batchKeys: 2 } });
    const m = await loadLatestManifest(new LocalStore(root));
    expect(m.indexes[0]!.segments).toHaveLength(1);
    const key = indexFiles(m.indexes[0]!).find((f) => f.name === 'bitmap.arrow')!.key;
    const table = arrow.tableFromIPC(fs.readFileSync(path.join(root, key)));
    expect(table.batches.length).toBeGreaterThan(1);
    // Brute force: value → fragment → offsets, straight from the files.
    const expected = new Map<string, Map<number, number[]>>();
    for (const f of await fragmentsOf(new LocalStore(root), m)) {
      const t = arrow.tableFromIPC(fs.readFileSync(path.join(root, f.path)));
      const col = t.getChild('k')!;
      for (let i = 0; i < t.numRows; i++) {
        const v = col.get(i);
        const name = v === null ? 'null' : String(v);
        const byFrag = expected.get(name) ?? new Map<number, number[]>();
        expected.set(name, byFrag);
        byFrag.set(f.id, [...(byFrag.get(f.id) ?? []), i]);
      }
    }
    const keys = table.getChild('keys')!;
    const bitmaps = table.getChild('bitmaps')!;
    const seen: string[] = [];
    for (let i = 0; i < table.numRows; i++) {
      const name = keys.get(i) === null ? 'null' : String(keys.get(i));
      seen.push(name);
      expect(decodeRowSetIndependently(bitmaps.get(i) as Uint8Array)).toEqual(expected.get(name));
    }
    expect(seen[0]).toBe('null'); // the null key comes first
    expect(new Set(seen)).toEqual(new Set(expected.keys()));
  });
});

describe('merge memory', () => {
  it('a merge of 250 parts holds at most two batches per part (one read ahead), not the whole index', async () => {
    const root = tempDir();
    // 250 fragments, one group each; many distinct keys so each part has many batches.
    for (let f = 0; f < 250; f++) {
      const k = Array.from({ length: 40 }, (_, i) => BigInt((i * 7 + f) % 40));
      await writeFragment(path.join(root, 'data', `f${String(f).padStart(4, '0')}.arrow`), [COLUMNS[0]!], { k }, { batchRows: 40, format: 'file' });
    }
    const tuning = { batchKeys: 4 };
    const p = await plan({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }], groupRows: 1 });
    expect(p.groupCount).toBe(250);
    for (const g of p.groupIds) await buildPart({ dataset: root, buildId: p.buildId, groupId: g }, tuning);
    const partBytes = p.groupIds.reduce((n, g) => n + fs.statSync(path.join(root, partDir(p.buildId, 'k_bitmap', g), 'bitmap.arrow')).size, 0);
    const merged = await merge({ dataset: root, buildId: p.buildId }, tuning);
    const peak = merged.segments[0]!.peakHeldBytes;
    // Each part has 10 batches of 4 keys; holding two batches per part is ~2/10 of all parts.
    expect(peak).toBeGreaterThan(0);
    expect(peak * 4).toBeLessThan(partBytes);
    const out = await commit(merged);
    expect(out.indexes[0]!.fragmentsCovered).toBe(250);
    const r = await query(root, 'k = 3');
    expect(r.rows).toBe(250);
    expect(r.exact).toBe(true);
  });
});

describe('concurrent builds', () => {
  it('two build processes racing on one dataset both land, each fragment registered and covered once', async () => {
    const root = tempDir();
    await writeFragments(root, 0, 8, 300);
    const [a, b, c] = await Promise.all([
      spawnCli(['build', root, '--index', 'k:bitmap', '--json', '--quiet']),
      spawnCli(['build', root, '--index', 's:zonemap', '--rows-per-zone', '64', '--json', '--quiet']),
      spawnCli(['build', root, '--index', 'k:bitmap', '--json', '--quiet']),
    ]);
    for (const r of [a, b, c]) expect(r.stderr + r.stdout).toMatch(/"version":\d+/);
    expect([a.code, b.code, c.code]).toEqual([0, 0, 0]);
    const store = new LocalStore(root);
    const versions = await listVersions(store);
    // Linear history: 1..N without gaps.
    expect(versions).toEqual(versions.map((_, i) => i + 1));
    const m = await readManifest(store, versions[versions.length - 1]!);
    const fragments = await fragmentsOf(store, m);
    expect(fragments.map((f) => f.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(fragments.map((f) => f.path)).size).toBe(8);
    expect(m.indexes.map((e) => e.name).sort()).toEqual(['k_bitmap', 's_zonemap']);
    for (const e of m.indexes) expect(coveredIds(e)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const r = await query(root, 'k = 0');
    expect(r.exact).toBe(true);
    expect(r.unindexedFragments).toEqual([]);
    expect(r.rows).toBeGreaterThan(0);
  });

  it('in-process builds adding different fragments concurrently rebase and lose nothing', async () => {
    const root = tempDir();
    await writeFragments(root, 0, 3, 100);
    await build({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }, { column: 'k', type: 'zonemap', rowsPerZone: 30 }] });
    await writeFragments(root, 3, 4, 100);
    await Promise.all([build({ dataset: root }), build({ dataset: root }), build({ dataset: root })]);
    const m = await loadLatestManifest(new LocalStore(root));
    for (const e of m.indexes) expect(coveredIds(e)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const total = (await query(root, 'k IS NOT NULL OR k IS NULL')).rows;
    expect(total).toBe(700);
  });
});
