/**
 * Compaction of index segments (and fragment table chunks):
 * - the size-tiered policy, alone: tiers, which segments it picks, and, over random append
 *   histories, the bounds the README states (segments per index, bytes written per byte
 *   appended);
 * - `compactDataset` and `compact` against real builds: answers never change, stale rows
 *   leave the files, a compaction whose inputs went elsewhere gives up and leaves nothing,
 *   one that races an append rebases onto it;
 * - the workflow compacting after its own commits, and the `compact` CLI;
 * - appends and compactions racing in separate processes, on a directory and on S3.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { loadLatestManifest, type IndexEntry, type Manifest } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import type { ObjectStore } from '../../lib/store/store.js';
import { listAll } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import { compact, compactDataset } from '../../lib/workflow/compact.js';
import { chunkCompaction, COMPACTION_BASE_BYTES, COMPACTION_FANOUT, indexCompaction, tierOf } from '../../lib/workflow/compaction-policy.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { coveredIds, staleIds } from '../support/manifest.js';
import { runCli } from '../support/run-cli.js';
import { datasetTargets, useS3Server } from '../support/s3-env.js';

/** Lets a test run something just before the next manifest commit (to race one). */
const hooks = vi.hoisted(() => ({ beforeCommit: undefined as undefined | (() => Promise<void>) }));
vi.mock('../../lib/manifest/manifest.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../lib/manifest/manifest.js')>();
  return {
    ...original,
    commitManifest: async (...args: Parameters<typeof original.commitManifest>) => {
      const hook = hooks.beforeCommit;
      hooks.beforeCommit = undefined;
      if (hook) await hook();
      return original.commitManifest(...args);
    },
  };
});

const T = COMPACTION_FANOUT;

// ---------------------------------------------------------------------------------------------
// The policy alone

/** An index whose segments have these sizes (and, optionally, stale and live fragment counts). */
function indexOf(sizes: (number | { bytes: number; live: number; stale: number })[]): IndexEntry {
  let next = 0;
  return {
    name: 'k_bitmap',
    column: 'k',
    type: 'bitmap',
    params: {},
    valueType: 'Int64',
    updatedAt: '2026-01-01T00:00:00.000Z',
    segments: sizes.map((s, i) => {
      const { bytes, live, stale } = typeof s === 'number' ? { bytes: s, live: 1, stale: 0 } : s;
      const fragments: [number, number][] = [[next, next + live]];
      next += live;
      const staleRanges: [number, number][] = stale > 0 ? [[next, next + stale]] : [];
      next += stale;
      return { id: `s${i}`, fragments, ...(stale > 0 && { stale: staleRanges }), rows: live, bytes, files: [], createdAt: '2026-01-01T00:00:00.000Z' };
    }),
  } as IndexEntry;
}

describe('the size-tiered policy', () => {
  it('puts segments of up to BASE bytes in tier 0, and each factor of T above it one tier higher', () => {
    expect(tierOf(1)).toBe(0);
    expect(tierOf(COMPACTION_BASE_BYTES)).toBe(0);
    expect(tierOf(COMPACTION_BASE_BYTES * T - 1)).toBe(0);
    expect(tierOf(COMPACTION_BASE_BYTES * T)).toBe(1);
    expect(tierOf(COMPACTION_BASE_BYTES * T ** 2 - 1)).toBe(1);
    expect(tierOf(COMPACTION_BASE_BYTES * T ** 2)).toBe(2);
    expect(tierOf(2 ** 40)).toBe(Math.floor(Math.log(2 ** 40 / COMPACTION_BASE_BYTES) / Math.log(T)));
  });

  it('asks for nothing while every tier holds fewer than T segments', () => {
    const b = COMPACTION_BASE_BYTES;
    expect(indexCompaction(indexOf([]))).toBeUndefined();
    expect(indexCompaction(indexOf(Array(T - 1).fill(100)))).toBeUndefined();
    expect(indexCompaction(indexOf([...Array(T - 1).fill(100), ...Array(T - 1).fill(b * T), b * T ** 3]))).toBeUndefined();
  });

  it('merges the lowest full tier, all of its segments and no other', () => {
    const b = COMPACTION_BASE_BYTES;
    const ix = indexOf([b * T * 2, 10, b * T * 2, 20, b * T * 2, 30, b * T * 2, 40, b * T ** 4]);
    expect(indexCompaction(ix)).toEqual({ index: 'k_bitmap', inputs: ['s1', 's3', 's5', 's7'] });
    const upper = indexOf([10, b * T, b * T, b * T, b * T, 20]);
    expect(indexCompaction(upper)).toEqual({ index: 'k_bitmap', inputs: ['s1', 's2', 's3', 's4'] });
  });

  it('compacts a segment alone once its stale fragments outnumber its live ones', () => {
    expect(indexCompaction(indexOf([{ bytes: 5000, live: 2, stale: 2 }, 100]))).toBeUndefined();
    expect(indexCompaction(indexOf([100, { bytes: 5000, live: 1, stale: 2 }]))).toEqual({ index: 'k_bitmap', inputs: ['s1'] });
  });

  it('merges only runs of contiguous small fragment table chunks', () => {
    const chunk = (firstId: number, count: number) => ({ key: `_index/fragments/c${firstId}.arrow`, firstId, count, size: count * 100, crc32c: 'AAAAAA==' });
    const m = (chunks: ReturnType<typeof chunk>[]) => ({ fragments: { chunks } }) as unknown as Manifest;
    expect(chunkCompaction(m([chunk(0, 1), chunk(1, 1), chunk(2, 1)]))).toBeUndefined();
    expect(chunkCompaction(m([chunk(0, 1), chunk(1, 1), chunk(2, 1), chunk(3, 2)]))?.inputs).toHaveLength(4);
    // A gap (ids compacted away elsewhere) breaks the run.
    expect(chunkCompaction(m([chunk(0, 1), chunk(1, 1), chunk(3, 1), chunk(4, 1)]))).toBeUndefined();
  });

  /**
   * Appends under the policy, merged segments modelled as the sum of their inputs (no stale
   * rows). Returns the bytes written (appends and merges), checking after each append that
   * every tier holds fewer than T segments.
   */
  function simulate(appends: number[]): { written: number; total: number; tier0Merges: number } {
    let segments: number[] = [];
    let total = 0;
    let written = 0;
    let tier0Merges = 0;
    for (const a of appends) {
      segments.push(a);
      total += a;
      written += a;
      for (;;) {
        const task = indexCompaction(indexOf(segments));
        if (!task) break;
        const ids = new Set(task.inputs.map((id) => Number(id.slice(1))));
        const merged = segments.filter((_, i) => ids.has(i)).reduce((x, y) => x + y, 0);
        if (tierOf(merged) === 0) tier0Merges++;
        segments = [...segments.filter((_, i) => !ids.has(i)), merged];
        written += merged;
      }
      expect(segments.length).toBeLessThanOrEqual((T - 1) * (tierOf(total) + 1));
    }
    return { written, total, tier0Merges };
  }

  it('over any history of appends, keeps segments within the bound and rewrites each byte at most once per tier it climbs', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4_000_000 }), { minLength: 1, maxLength: 300 }), (appends) => {
        const { written, total, tier0Merges } = simulate(appends);
        // A merge either lifts its bytes at least one tier, or stays in tier 0 (under T·BASE
        // bytes), which happens at most once per T - 1 appends.
        const climbing = appends.reduce((n, a) => n + a * (1 + tierOf(total) - tierOf(a)), 0);
        expect(tier0Merges).toBeLessThanOrEqual(Math.floor(appends.length / (T - 1)));
        expect(written).toBeLessThanOrEqual(climbing + tier0Merges * T * COMPACTION_BASE_BYTES);
      }),
      { numRuns: 200 },
    );
  });

  it('with appends of at least BASE bytes, writes at most 1 + log_T(S / a) bytes per byte appended', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: COMPACTION_BASE_BYTES, max: 4_000_000 }), { minLength: 1, maxLength: 300 }), (appends) => {
        const { written, total, tier0Merges } = simulate(appends);
        expect(tier0Merges).toBe(0);
        expect(written / total).toBeLessThanOrEqual(1 + tierOf(total) - tierOf(Math.min(...appends)));
      }),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Against real builds

const COLS: ColumnSpec[] = [
  { name: 'k', type: 'int64' },
  { name: 's', type: 'utf8' },
];
const N = 24;
/** Fragment f's rows: k and s cycle with f, so every fragment holds different values. */
const rowsOf = (f: number) => ({
  k: Array.from({ length: N }, (_, i) => (i % 10 === 0 ? null : BigInt((i * 7 + f) % 13))),
  s: Array.from({ length: N }, (_, i) => (i % 9 === 0 ? null : `v${(i + f) % 6}`)),
});
/** The brute force: rows of fragment f where k = 3. */
const kIs3 = (f: number) => rowsOf(f).k.flatMap((k, i) => (k === 3n ? [i] : []));
const INDEXES = [
  { column: 'k', type: 'bitmap' as const },
  { column: 's', type: 'zonemap' as const, rowsPerZone: 8 },
];
const PREDICATES = ['k = 3', 'k IN (1, 12) OR s = \'v2\'', 'NOT (k < 5)', "s >= 'v4'", 'k IS NULL'];

const put = (store: ObjectStore, f: number) => store.put(`data/f${String(f).padStart(3, '0')}.arrow`, fragmentBytes(COLS, rowsOf(f), { batchRows: 8, format: 'file' }));

async function answers(dataset: string) {
  return Promise.all(PREDICATES.map(async (p) => {
    const r = await query(dataset, p);
    return { exact: r.exact, rows: r.rows, fragments: r.fragments.map((f) => [f.path, f.ranges]), unindexed: r.unindexedFragments };
  }));
}

/** A dataset built one fragment per build, without compaction: `n` segments per index. */
async function appended(n: number, from = 0): Promise<{ root: string; store: ObjectStore }> {
  const { dataset: root, store } = datasetTargets('unused')['local directory']();
  for (let f = from; f < from + n; f++) {
    await put(store, f);
    await build({ dataset: root, ...(f === from && { indexes: INDEXES }), concurrency: 1, compact: false });
  }
  return { root, store };
}

const indexKeys = async (store: ObjectStore) => (await listAll(store, '_index/indexes/')).map((o) => o.key).sort();

describe('compacting real indexes', () => {
  it('follows the policy to its end: fewer segments, the same answers, and then nothing more to do', async () => {
    const { root, store } = await appended(10);
    const before = await answers(root);
    for (const ix of (await loadLatestManifest(store)).indexes) expect(ix.segments).toHaveLength(10);
    const r = await compactDataset(root);
    expect(r.compactions.length).toBeGreaterThan(0);
    expect(r.compactions.every((c) => c.committed)).toBe(true);
    const m = await loadLatestManifest(store);
    for (const ix of m.indexes) {
      expect(indexCompaction(ix), ix.name).toBeUndefined();
      expect(ix.segments.length, ix.name).toBeLessThan(T);
      expect(coveredIds(ix), ix.name).toEqual([...Array(10).keys()]);
    }
    expect(r.indexes.map((ix) => [ix.name, ix.segments])).toEqual(m.indexes.map((ix) => [ix.name, ix.segments.length]));
    expect(await answers(root)).toEqual(before);
    expect((await compactDataset(root)).compactions).toEqual([]);
  });

  it('gives up, committing nothing and leaving no file behind, when its inputs were compacted by another run', async () => {
    const { root, store } = await appended(T);
    const m = await loadLatestManifest(store);
    const task = indexCompaction(m.indexes[0]!)!;
    expect(task.inputs).toHaveLength(T);
    const first = await compact(root, task);
    expect(first.committed).toBe(true);
    const files = await indexKeys(store);
    const version = (await loadLatestManifest(store)).version;
    const second = await compact(root, task);
    expect(second).toMatchObject({ committed: false, gaveUp: expect.stringMatching(/no longer there/) });
    expect((await loadLatestManifest(store)).version).toBe(version);
    expect(await indexKeys(store)).toEqual(files);
  });

  it('rebases over an append that commits while it merges: the append keeps its own segment', async () => {
    const { root, store } = await appended(T);
    const before = await loadLatestManifest(store);
    const task = indexCompaction(before.indexes.find((e) => e.name === 'k_bitmap')!)!;
    hooks.beforeCommit = async () => {
      await put(store, 50);
      await build({ dataset: root, concurrency: 1, compact: false });
    };
    const r = await compact(root, task);
    expect(hooks.beforeCommit).toBeUndefined();
    expect(r.committed).toBe(true);
    const m = await loadLatestManifest(store);
    expect(r.version).toBe(m.version);
    const k = m.indexes.find((e) => e.name === 'k_bitmap')!;
    expect(k.segments).toHaveLength(2);
    expect(k.segments.map((s) => s.fragments)).toEqual(expect.arrayContaining([[[0, T]], [[T, T + 1]]]));
    const res = await query(root, 'k = 3');
    expect(res.exact).toBe(true);
    expect(res.unindexedFragments).toEqual([]);
    const want = [...Array(T).keys(), 50].map((f) => [`data/f${String(f).padStart(3, '0')}.arrow`, kIs3(f)] as const).filter(([, rows]) => rows.length > 0);
    expect(res.fragments.map((f) => [f.path, f.ranges.flatMap(([a, b]) => Array.from({ length: b - a }, (_, i) => a + i))])).toEqual(want);
  });

  it('drops the rows of a deleted fragment: the compacted segment holds no stale fragment and is smaller', async () => {
    const { dataset: root, store } = datasetTargets('unused')['local directory']();
    for (let f = 0; f < 3; f++) await put(store, f);
    await build({ dataset: root, indexes: INDEXES, concurrency: 1, compact: false });
    await store.deleteMany(['data/f001.arrow']);
    await build({ dataset: root, concurrency: 1, compact: false });
    const m = await loadLatestManifest(store);
    const k = m.indexes.find((e) => e.name === 'k_bitmap')!;
    expect(staleIds(k)).toEqual([1]);
    const before = await answers(root);
    await compactDataset(root, { full: true });
    const after = (await loadLatestManifest(store)).indexes.find((e) => e.name === 'k_bitmap')!;
    expect(after.segments).toHaveLength(1);
    expect(staleIds(after)).toEqual([]);
    expect(coveredIds(after)).toEqual([0, 2]);
    expect(after.segments[0]!.rows).toBe(2 * N);
    expect(after.segments[0]!.bytes).toBeLessThan(k.segments[0]!.bytes);
    expect(await answers(root)).toEqual(before);
  });
});

describe('the workflow compacts after its own commits', () => {
  it('keeps every index at the policy fixpoint across many one-fragment builds, answering exactly', async () => {
    const { dataset: root, store } = datasetTargets('unused')['local directory']();
    let merged = 0;
    for (let f = 0; f < 3 * T; f++) {
      await put(store, f);
      const summary = await build({ dataset: root, ...(f === 0 && { indexes: INDEXES }), concurrency: 1 });
      merged += summary.compaction.committed;
      const m = await loadLatestManifest(store);
      for (const ix of m.indexes) {
        expect(indexCompaction(ix), `${ix.name} after build ${f}`).toBeUndefined();
        expect(coveredIds(ix)).toEqual([...Array(f + 1).keys()]);
      }
    }
    expect(merged).toBeGreaterThanOrEqual(2 * 3);
    const res = await query(root, 'k = 3');
    expect(res.exact).toBe(true);
    expect(res.rows).toBe([...Array(3 * T).keys()].reduce((n, f) => n + kIs3(f).length, 0));
  });
});

describe('scalar-index compact', () => {
  it('--json reports each merge and the segments left; --index and --full limit it to one index; an unknown index is a usage error', async () => {
    const { root, store } = await appended(T + 1);
    const one = await runCli(['compact', root, '--index', 's_zonemap', '--full', '--json', '--quiet']);
    expect(one.code, one.stderr).toBe(0);
    const summary = JSON.parse(one.stdout);
    expect(summary.compactions).toEqual([{ index: 's_zonemap', inputs: T + 1, committed: true, bytesWritten: expect.any(Number) }]);
    expect(summary.indexes).toEqual([{ name: 's_zonemap', segments: 1, bytes: expect.any(Number) }]);
    let m = await loadLatestManifest(store);
    expect(m.indexes.find((e) => e.name === 'k_bitmap')!.segments).toHaveLength(T + 1);
    expect(m.version).toBe(summary.version);

    const all = await runCli(['compact', root, '--quiet']);
    expect(all.code, all.stderr).toBe(0);
    // The policy merges the whole of tier 0, all T + 1 segments.
    expect(all.stdout).toMatch(new RegExp(`k_bitmap: merged ${T + 1} into 1`));
    m = await loadLatestManifest(store);
    expect(m.indexes.find((e) => e.name === 'k_bitmap')!.segments).toHaveLength(1);

    const nothing = await runCli(['compact', root, '--quiet']);
    expect(nothing.stdout).toContain(`nothing to compact at version ${m.version}`);

    const bad = await runCli(['compact', root, '--index', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no index named nope (defined: k_bitmap, s_zonemap)');
  });
});

// ---------------------------------------------------------------------------------------------
// Racing processes

useS3Server({ buckets: ['compact-race'] });
const targets = datasetTargets('compact-race');

/** A child process: appends (its own fragments, one build each) or compactions (policy, then full). */
function child(dataset: string, role: { appender: number; count: number } | { compactor: number; rounds: number }, startAt: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const lib = (p: string) => JSON.stringify(path.join(import.meta.dirname, '../../lib', p));
  const script =
    'appender' in role
      ? `
    import { openDataset } from ${lib('dataset.ts')};
    import { fragmentBytes } from ${JSON.stringify(path.join(import.meta.dirname, '../support/dataset.ts'))};
    import { build } from ${lib('workflow/build.ts')};
    const { store } = openDataset(${JSON.stringify(dataset)});
    await new Promise((r) => setTimeout(r, Math.max(0, ${startAt} - Date.now())));
    for (let i = 0; i < ${role.count}; i++) {
      const f = ${100 * (role.appender + 1)} + i;
      const N = ${N};
      const rows = { k: Array.from({ length: N }, (_, j) => (j % 10 === 0 ? null : BigInt((j * 7 + f) % 13))), s: Array.from({ length: N }, (_, j) => (j % 9 === 0 ? null : 'v' + ((j + f) % 6))) };
      await store.put('data/f' + f + '.arrow', fragmentBytes(${JSON.stringify(COLS)}, rows, { batchRows: 8, format: 'file' }));
      await build({ dataset: ${JSON.stringify(dataset)}, concurrency: 1, compact: false });
    }`
      : `
    import { compactDataset } from ${lib('workflow/compact.ts')};
    await new Promise((r) => setTimeout(r, Math.max(0, ${startAt} - Date.now())));
    let committed = 0;
    for (let i = 0; i < ${role.rounds}; i++) {
      const r = await compactDataset(${JSON.stringify(dataset)}, { full: i % 2 === 1 });
      committed += r.compactions.filter((c) => c.committed).length;
      await new Promise((r) => setTimeout(r, ${50 + 30 * role.compactor}));
    }
    process.stdout.write(String(committed));`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.each(Object.keys(targets))('appends and compactions racing in separate processes on %s', (kind) => {
  it('lose no fragment, cover each exactly once, and answer as the brute force does', async () => {
    const t = targets[kind as keyof typeof targets]();
    for (let f = 0; f < 5; f++) {
      await put(t.store, f);
      await build({ dataset: t.dataset, ...(f === 0 && { indexes: INDEXES }), concurrency: 1, compact: false });
    }
    const startAt = Date.now() + 5000;
    const results = await Promise.all([
      child(t.dataset, { appender: 0, count: 4 }, startAt),
      child(t.dataset, { appender: 1, count: 4 }, startAt),
      child(t.dataset, { compactor: 0, rounds: 4 }, startAt),
      child(t.dataset, { compactor: 1, rounds: 4 }, startAt),
    ]);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    // The compactors did merge while the appenders committed.
    expect(Number(results[2]!.stdout) + Number(results[3]!.stdout)).toBeGreaterThan(0);

    const m = await loadLatestManifest(t.store);
    const all = [0, 1, 2, 3, 4, 100, 101, 102, 103, 200, 201, 202, 203];
    for (const ix of m.indexes) expect(coveredIds(ix), ix.name).toEqual([...Array(all.length).keys()]);
    const res = await query(t.dataset, 'k = 3');
    expect(res.exact).toBe(true);
    expect(res.unindexedFragments).toEqual([]);
    const name = (f: number) => (f < 100 ? `data/f${String(f).padStart(3, '0')}.arrow` : `data/f${f}.arrow`);
    const got = new Map(res.fragments.map((f) => [f.path, f.ranges.flatMap(([a, b]) => Array.from({ length: b - a }, (_, i) => a + i))]));
    for (const f of all) expect(got.get(name(f)) ?? [], name(f)).toEqual(kIs3(f));
    // Compacting to the end after the race leaves each index in one segment, same answer.
    await compactDataset(t.dataset, { full: true });
    for (const ix of (await loadLatestManifest(t.store)).indexes) expect(ix.segments, ix.name).toHaveLength(1);
    expect((await query(t.dataset, 'k = 3')).fragments).toEqual(res.fragments);
  });
});
