/**
 * Concurrency, idempotency and incremental cost.
 * - Four build processes race on one dataset, each bringing its own new fragments, on a local
 *   directory and on S3 (through a proxy that honours If-None-Match as S3 does): every
 *   fragment ends up registered and covered exactly once, history is linear, and no build
 *   reports success for fragments that end up unindexed.
 * - Running build twice, or replaying it, changes nothing.
 * - Adding k fragments reads only those k (counted at the S3 server), merges the previous
 *   bitmap file in one streaming pass and appends zones; nothing new commits nothing.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLatestManifest, listVersions, readManifest } from '../../lib/manifest/manifest.js';
import { build } from '../../lib/workflow/build.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { coveredIds, fragmentsOf, indexFiles } from '../support/manifest.js';
import { datasetTargets, useS3Server, type DatasetTarget } from '../support/s3-env.js';

const CLI = path.join(import.meta.dirname, '../support/cli-entry.ts');
const COLS: ColumnSpec[] = [
  { name: 'k', type: 'int64' },
  { name: 's', type: 'utf8' },
];
const rows = (f: number) => ({
  k: Array.from({ length: 30 }, (_, i) => BigInt((i * 11 + f) % 17)),
  s: Array.from({ length: 30 }, (_, i) => (i % 7 === 0 ? null : `v${(i * f) % 9}`)),
});

const s3 = useS3Server({ buckets: ['race'] });

type Target = DatasetTarget;
const targets = datasetTargets('race');

const put = (t: Target, name: string, f: number) => t.store.put(`data/${name}`, fragmentBytes(COLS, rows(f), { batchRows: 8, format: f % 2 ? 'parquet' : 'file' }));

/** A writer process: put its own fragments, then build, printing the --json summary. */
function writerProcess(t: Target, w: number, fragments: number, startAt: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `
    import { openDataset } from ${JSON.stringify(path.join(import.meta.dirname, '../../lib/dataset.ts'))};
    import { fragmentBytes } from ${JSON.stringify(path.join(import.meta.dirname, '../support/dataset.ts'))};
    const { store } = openDataset(${JSON.stringify(t.dataset)});
    const COLS = ${JSON.stringify(COLS)};
    for (let i = 0; i < ${fragments}; i++) {
      const f = ${w} * 10 + i;
      const rows = { k: Array.from({ length: 30 }, (_, j) => BigInt((j * 11 + f) % 17)), s: Array.from({ length: 30 }, (_, j) => (j % 7 === 0 ? null : 'v' + ((j * f) % 9))) };
      await store.put('data/w${w}-' + i + (f % 2 ? '.parquet' : '.arrow'), fragmentBytes(COLS, rows, { batchRows: 8, format: f % 2 ? 'parquet' : 'file' }));
    }
    const { main } = await import(${JSON.stringify(path.join(import.meta.dirname, '../../lib/cli/main.ts'))});
    // A barrier: every writer starts its build at the same moment, so the commits collide.
    await new Promise((r) => setTimeout(r, Math.max(0, ${startAt} - Date.now())));
    process.exitCode = await main(['build', ${JSON.stringify(t.dataset)}, '--json', '--quiet', '--group-rows', '40']);
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.each(Object.keys(targets))('four racing builds on %s', (kind) => {
  it('cover every fragment exactly once, with linear history and honest summaries', async () => {
    const t = targets[kind as keyof typeof targets]();
    await put(t, 'seed.arrow', 100);
    await build({ dataset: t.dataset, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'zonemap', rowsPerZone: 8 }] });
    s3.server.resetLog();
    const startAt = Date.now() + 6000;
    const results = await Promise.all([0, 1, 2, 3].map((w) => writerProcess(t, w, 3, startAt)));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    if (t.dataset.startsWith('s3://')) console.log(`S3 race: ${s3.server.count({ status: 412 })} create-only commits refused with 412 and retried`);

    const m = await loadLatestManifest(t.store);
    const fragments = await fragmentsOf(t.store, m);
    const paths = fragments.map((f) => f.path);
    expect(new Set(paths).size).toBe(paths.length);
    expect(paths.length).toBe(13);
    expect(fragments.map((f) => f.id)).toEqual([...Array(13).keys()]);
    // Covered exactly once: coverage is checked disjoint across segments on every read.
    for (const e of m.indexes) expect(coveredIds(e)).toEqual([...Array(13).keys()]);

    // Linear history: versions 1..N, each one's fragments and coverage extend the previous.
    const versions = await listVersions(t.store);
    expect(versions).toEqual(versions.map((_, i) => i + 1));
    let prev = await readManifest(t.store, versions[0]!);
    let prevFragments = await fragmentsOf(t.store, prev);
    for (const v of versions.slice(1)) {
      const cur = await readManifest(t.store, v);
      const curFragments = await fragmentsOf(t.store, cur);
      expect(curFragments.slice(0, prevFragments.length)).toEqual(prevFragments);
      for (const e of prev.indexes) {
        const now = cur.indexes.find((x) => x.name === e.name)!;
        expect(coveredIds(e).every((id) => coveredIds(now).includes(id))).toBe(true);
      }
      prev = cur;
      prevFragments = curFragments;
    }

    // A build that reported success covered, in the version it reported, its own fragments.
    for (const [w, r] of results.entries()) {
      const summary = JSON.parse(r.stdout);
      const reported = await readManifest(t.store, summary.version);
      const mine = (await fragmentsOf(t.store, reported)).filter((f) => f.path.startsWith(`data/w${w}-`)).map((f) => f.id);
      expect(mine).toHaveLength(3);
      for (const e of reported.indexes) for (const id of mine) expect(coveredIds(e)).toContain(id);
    }
  });
});

describe('idempotency and incremental cost (counted at the S3 server)', () => {
  it('a second build, and a replay of the same build, commit nothing and write nothing', async () => {
    const t = targets['S3 (412-honouring proxy)']!();
    for (let f = 0; f < 3; f++) await put(t, `f${f}.arrow`, f);
    await build({ dataset: t.dataset, indexes: [{ column: 'k', type: 'bitmap' }] });
    const before = await listVersions(t.store);
    const manifest = await loadLatestManifest(t.store);
    s3.server.resetLog();
    const again = await build({ dataset: t.dataset });
    const replay = await build({ dataset: t.dataset, indexes: [{ column: 'k', type: 'bitmap' }] });
    expect(again.changed || replay.changed).toBe(false);
    expect(await listVersions(t.store)).toEqual(before);
    expect(await loadLatestManifest(t.store)).toEqual(manifest);
    expect(s3.server.count((r) => r.method === 'PUT' || r.method === 'POST' || r.method === 'DELETE')).toBe(0);
    expect(s3.server.count((r) => r.key.includes('/data/') && r.method === 'GET')).toBe(0);
  });

  it('adding k fragments reads only those k, reads no index file already written, and adds one segment per index', async () => {
    const t = targets['S3 (412-honouring proxy)']!();
    for (let f = 0; f < 8; f++) await put(t, `a${f}.arrow`, f);
    await build({ dataset: t.dataset, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'zonemap', rowsPerZone: 8 }] });
    const m1 = await loadLatestManifest(t.store);
    const oldFiles = m1.indexes.flatMap(indexFiles);
    for (let f = 8; f < 10; f++) await put(t, `b${f}.arrow`, f);

    s3.server.resetLog();
    await build({ dataset: t.dataset });
    const fragmentGets = s3.server.requests.filter((r) => r.method === 'GET' && r.key.includes('/data/'));
    const readKeys = [...new Set(fragmentGets.map((r) => r.key.split('/data/')[1]))].sort();
    console.log(`incremental build of 2 new fragments: ${s3.server.requests.length} requests; fragment GETs: ${fragmentGets.map((r) => `${r.key.split('/data/')[1]} (${r.bytesOut} B)`).join(', ')}`);
    expect(readKeys).toEqual(['b8.arrow', 'b9.arrow']);
    // Each new fragment is read twice: once to register it (plan), once to index it.
    expect(fragmentGets.length).toBe(4);
    // Nothing already indexed is read or rewritten: the append costs what it adds.
    const touched = s3.server.requests.filter((r) => oldFiles.some((f) => r.key.endsWith(f.key)));
    expect(touched).toEqual([]);

    const m2 = await loadLatestManifest(t.store);
    for (const e of m2.indexes) {
      const before = m1.indexes.find((x) => x.name === e.name)!;
      // The old segment, as it was; one new segment covering exactly the new fragments.
      expect(e.segments.slice(0, before.segments.length)).toEqual(before.segments);
      expect(e.segments).toHaveLength(before.segments.length + 1);
      expect(e.segments.at(-1)!.fragments).toEqual([[8, 10]]);
    }
    const zones = m2.indexes.find((e) => e.type === 'zonemap')!.segments.at(-1)!.files[0]!;
    const { IpcFileReader } = await import('../../lib/format/ipc.js');
    const reader = await IpcFileReader.open(t.store, zones.key, zones.size);
    const fragmentIds = new Set<number>();
    for await (const b of reader.batches()) for (const id of b.getChild('fragment_id')!.toArray() as BigUint64Array) fragmentIds.add(Number(id));
    expect([...fragmentIds]).toEqual([8, 9]);
  });
});
