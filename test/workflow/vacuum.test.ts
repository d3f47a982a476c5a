/**
 * vacuum, on a local directory and on S3 (s3rver): it deletes exactly the orphaned builds,
 * the unreferenced index directories and the versions past retention; it keeps everything a
 * retained version references and everything younger than the threshold (a build in flight);
 * queries answer identically afterwards; a build it runs into at every step still commits; and
 * with it `_index/` stays bounded over many builds.
 *
 * Ages: S3 objects cannot be back-dated and their LastModified has whole seconds, so the tests
 * wait into a fresh second (`boundary()`), write the "new" objects after it, and run vacuum
 * with its clock set to a week after that boundary and `olderThan: 7d`. The local directory is
 * also tested against the real clock with back-dated mtimes (fs.utimes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../lib/errors.js';
import { listVersions, loadLatestManifest, readManifest } from '../../lib/manifest/manifest.js';
import { openDataset } from '../../lib/dataset.js';
import { query } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { S3Store } from '../../lib/store/s3.js';
import { listAll, type ObjectStore } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import { buildPart } from '../../lib/workflow/build-part.js';
import { commit } from '../../lib/workflow/commit.js';
import { merge } from '../../lib/workflow/merge.js';
import { plan } from '../../lib/workflow/plan.js';
import { buildPartStep, planStep } from '../../lib/workflow/steps.js';
import type { IndexRequest, MergeOutput, MergeStepInput } from '../../lib/workflow/types.js';
import { parseDuration, vacuum, type VacuumResult } from '../../lib/workflow/vacuum.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { indexFiles } from '../support/manifest.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import { runCli, spawnCli } from '../support/run-cli.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { tempDir } from '../support/tmp.js';

const COLUMNS: ColumnSpec[] = [
  { name: 'k', type: 'int64' },
  { name: 's', type: 'utf8' },
];
const INDEXES: IndexRequest[] = [
  { column: 'k', type: 'bitmap' },
  { column: 's', type: 'zonemap', rowsPerZone: 8 },
];
const ROWS = 50;
const WEEK = parseDuration('7d');
const WHERE = ['k = 3', 'k IS NULL', "s = 'v1'", "s BETWEEN 'v2' AND 'v4'", "k IN (1, 2) AND s != 'v0'", 'NOT k = 4'];

function fragment(f: number): Uint8Array {
  const k = Array.from({ length: ROWS }, (_, i) => (i % 11 === 5 ? null : BigInt((i * 7 + f) % 9)));
  const s = Array.from({ length: ROWS }, (_, i) => (i % 13 === 0 ? null : `v${(i + f) % 6}`));
  return fragmentBytes(COLUMNS, { k, s }, { batchRows: 16, format: 'file' });
}
const addFragment = (store: ObjectStore, f: number) => store.put(`data/f${String(f).padStart(3, '0')}.arrow`, fragment(f));

/** Every query's answer, without the stats (which name the version). */
async function answers(dataset: string) {
  return Promise.all(
    WHERE.map(async (w) => {
      const { stats: _stats, version: _version, ...r } = await query(dataset, w);
      return r;
    }),
  );
}

/** Every object of the dataset: key → size. */
async function snapshot(store: ObjectStore): Promise<Map<string, number>> {
  return new Map((await listAll(store, '')).map((o) => [o.key, o.size]));
}

/** Directories `_index/indexes/<name>/<dir>/` that a version references. */
async function dirsOf(store: ObjectStore, version: number): Promise<string[]> {
  const m = await readManifest(store, version);
  return [...new Set(m.indexes.flatMap((ix) => indexFiles(ix).map((f) => f.key.split('/').slice(0, 4).join('/') + '/')))].sort();
}

const dirsOfMerge = (m: MergeOutput) => [...new Set(m.segments.flatMap((ix) => ix.files.map((f) => f.key.split('/').slice(0, 4).join('/') + '/')))].sort();

/**
 * Wait into the next whole second and return it. Objects written before the call are older
 * than it, objects written after are not, on S3 (whole-second LastModified) as on disk.
 */
async function boundary(): Promise<number> {
  const next = Math.ceil((Date.now() + 1) / 1000) * 1000;
  await sleep(next - Date.now() + 25);
  return next;
}

let server: S3TestServer;
const savedEnv = { ...process.env };
beforeAll(async () => {
  server = await startS3Server({ buckets: ['vacuum'] });
  // build(), query() and vacuum() open s3:// datasets with the process's SDK settings.
  Object.assign(process.env, server.env);
});
afterAll(async () => {
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  await server?.stop();
});

let s3Datasets = 0;
const backends: { name: string; open: () => { dataset: string; store: ObjectStore } }[] = [
  {
    name: 'local directory',
    open: () => {
      const root = tempDir('ssi-vacuum-');
      return { dataset: root, store: new LocalStore(root) };
    },
  },
  {
    name: 'S3 (s3rver)',
    open: () => {
      const prefix = `d${s3Datasets++}`;
      return { dataset: `s3://vacuum/${prefix}`, store: new S3Store({ bucket: 'vacuum', prefix }, { env: server.env }) };
    },
  },
];

interface Scenario {
  dataset: string;
  store: ObjectStore;
  /** Between the old objects and the new ones. */
  boundary: number;
  /** The build whose merge crashed before its commit: its prefix and its merged (never referenced) directories. */
  crashedBuild: string;
  crashedDirs: string[];
  /** A build in flight after the boundary: planned, parts built, merged, not committed. */
  inflight: MergeOutput;
}

/** Every index into one segment; the fragment table's chunks stay as they are (one version per index). */
async function compactIndexes(dataset: string): Promise<void> {
  const { store } = openDataset(dataset);
  await compactDataset(dataset, { full: true, indexes: (await loadLatestManifest(store)).indexes.map((ix) => ix.name) });
}

/**
 * Versions 1–10 and a crashed build before the boundary, versions 11–13 and a build in flight
 * after it (builds leave compaction to the explicit one at v9–v10):
 *
 *   v1 v2   build 1 (register f0–f2, commit: segment 1)   v7      crashed build: registers f5, builds its part, dies
 *   v3 v4   build 2 (f3: segment 2)                        v8      recovery build commits f5 (segment 4)
 *   v5 v6   build 3 (f4: segment 3)                        v9 v10  compaction: each index's segments 1–4 into one
 *                                                          ---- boundary ----
 *                                                          v11 v12 build 5 (f6)
 *                                                          v13     build 6 registers f7, builds its part and merges
 */
async function scenario(dataset: string, store: ObjectStore): Promise<Scenario> {
  for (let f = 0; f < 3; f++) await addFragment(store, f);
  await build({ dataset, indexes: INDEXES, concurrency: 1, compact: false });
  for (const f of [3, 4]) {
    await addFragment(store, f);
    await build({ dataset, concurrency: 1, compact: false });
  }
  await addFragment(store, 5);
  let crashed: MergeOutput | undefined;
  const crash = build({
    dataset,
    concurrency: 1,
    overrideStep: {
      MergeAndCommit: async (input) => {
        crashed = await merge(input as MergeStepInput);
        throw Object.assign(new Error('simulated crash after the merge'), { name: 'InjectedFault' });
      },
    },
  });
  await expect(crash).rejects.toThrow('simulated crash');
  await build({ dataset, concurrency: 1, compact: false });
  await compactIndexes(dataset);
  const t = await boundary();
  await addFragment(store, 6);
  await build({ dataset, concurrency: 1, compact: false });
  await addFragment(store, 7);
  const p = await plan({ dataset });
  for (const groupId of p.groupIds) await buildPart({ dataset, buildId: p.buildId, groupId });
  const inflight = await merge({ dataset, buildId: p.buildId });
  expect(await listVersions(store)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  return { dataset, store, boundary: t, crashedBuild: `_index/builds/${crashed!.buildId}/`, crashedDirs: dirsOfMerge(crashed!), inflight };
}

describe.each(backends)('vacuum on a $name', ({ open }) => {
  it('deletes exactly the crashed build, the unreferenced old index directories and the versions past retention; queries answer identically', async () => {
    const { dataset, store } = open();
    const s = await scenario(dataset, store);
    const before = await snapshot(store);
    const answersBefore = await answers(dataset);
    const options = { dataset, olderThan: '7d', keepVersions: 2, now: () => s.boundary + WEEK };

    // v10 stays: it was still the latest after the cutoff (v11 came later). It and v11–v13
    // reference the compacted segment and build 5's of each index; the four segments the
    // compaction merged, per index, and the crashed build's part of each, go.
    const retainedDirs = [...new Set((await Promise.all([10, 11, 12, 13].map((v) => dirsOf(store, v)))).flat())];
    const oldDirs = [...new Set((await Promise.all([1, 2, 3, 4, 5, 6, 7, 8, 9].map((v) => dirsOf(store, v)))).flat())].filter((d) => !retainedDirs.includes(d));
    expect(retainedDirs).toHaveLength(4);
    expect(oldDirs).toHaveLength(8);
    expect(s.crashedDirs).toHaveLength(2);
    const expected = { versions: [1, 2, 3, 4, 5, 6, 7, 8, 9], indexDirs: [...oldDirs, ...s.crashedDirs].sort(), builds: [s.crashedBuild], fragmentChunks: [], temp: [] };
    const goes = (key: string) =>
      expected.versions.some((v) => key === `_index/versions/${String(v).padStart(20, '0')}.json`) ||
      [...expected.indexDirs, ...expected.builds].some((p) => key.startsWith(p));
    const deletedKeys = [...before.keys()].filter(goes);

    const dry = await vacuum({ ...options, dryRun: true });
    expect(dry.deleted).toEqual(expected);
    expect(await snapshot(store)).toEqual(before);

    const r = await vacuum(options);
    expect(r).toEqual({ ...dry, dryRun: false });
    expect(r.retainedVersions).toEqual([10, 11, 12, 13]);
    expect(r.objects).toBe(deletedKeys.length);
    expect(r.bytes).toBe(deletedKeys.reduce((n, k) => n + before.get(k)!, 0));
    const after = await snapshot(store);
    expect([...after.keys()].sort()).toEqual([...before.keys()].filter((k) => !goes(k)).sort());
    expect(await answers(dataset)).toEqual(answersBefore);

    // A reader still holding a version past retention finds it gone (accepted; see vacuum.ts).
    await expect(readManifest(store, 1)).rejects.toBeInstanceOf(NotFoundError);
    // Nothing left to do.
    expect((await vacuum(options)).objects).toBe(0);

    // The build in flight lost nothing: its parts, plan and merged directories are still
    // there, and it commits.
    for (const d of dirsOfMerge(s.inflight)) expect([...after.keys()].some((k) => k.startsWith(d)), d).toBe(true);
    const committed = await commit(s.inflight);
    expect(committed).toMatchObject({ committed: true, version: 14 });
    const final = await query(dataset, 'k = 3');
    expect(final.unindexedFragments).toEqual([]);
    expect(final.fragments.map((f) => f.path)).toContain('data/f007.arrow');
  });

  it('with 0s and keep-versions 1 leaves only the latest version and the files it references, and queries answer the same', async () => {
    const { dataset, store } = open();
    for (let f = 0; f < 2; f++) await addFragment(store, f);
    await build({ dataset, indexes: INDEXES, concurrency: 1 });
    for (const f of [2, 3]) {
      await addFragment(store, f);
      await build({ dataset, concurrency: 1 });
    }
    await addFragment(store, 4);
    await expect(
      build({ dataset, concurrency: 1, overrideStep: { MergeAndCommit: async () => Promise.reject(Object.assign(new Error('simulated crash'), { name: 'InjectedFault' })) } }),
    ).rejects.toThrow('simulated crash');
    const answersBefore = await answers(dataset);
    const latest = await loadLatestManifest(store);

    // S3 timestamps are whole seconds: a clock one second ahead makes everything written so far older than "now".
    const r = await vacuum({ dataset, olderThan: '0s', keepVersions: 1, now: () => Date.now() + 1000 });
    expect(r.retainedVersions).toEqual([latest.version]);
    expect(r.deleted.versions).toEqual(Array.from({ length: latest.version - 1 }, (_, i) => i + 1));
    expect(r.deleted.builds).toHaveLength(1);
    expect(await listVersions(store)).toEqual([latest.version]);
    const indexFiles = (await listAll(store, '_index/indexes/')).map((o) => o.key).sort();
    expect(indexFiles).toEqual(latest.indexes.flatMap((ix) => ix.segments.flatMap((seg) => seg.files.map((f) => f.key))).sort());
    expect(await listAll(store, '_index/builds/')).toEqual([]);
    expect(await answers(dataset)).toEqual(answersBefore);
  });

  it('a build that vacuum (0s from the build start, keep 1) runs into after its plan, after a part, and between a stale merge and its rebased commit, still commits and covers every fragment', async () => {
    const { dataset, store } = open();
    for (let f = 0; f < 3; f++) await addFragment(store, f);
    await build({ dataset, indexes: INDEXES, concurrency: 1 });
    await addFragment(store, 3);
    await build({ dataset, concurrency: 1 });
    for (const f of [4, 5]) await addFragment(store, f);
    const start = await boundary();
    const sweeps: VacuumResult[] = [];
    const sweep = async () => sweeps.push(await vacuum({ dataset, olderThan: 0, keepVersions: 1, now: () => start }));
    let firstMerge: MergeOutput | undefined;
    let parts = 0;
    const summary = await build({
      dataset,
      concurrency: 1,
      groupRows: ROWS, // one group per new fragment
      overrideStep: {
        Plan: async (input) => {
          const out = await planStep(input);
          await sweep();
          return out;
        },
        BuildPart: async (input) => {
          const out = await buildPartStep(input);
          if (++parts === 1) await sweep();
          return out;
        },
        MergeAndCommit: async (input) => {
          firstMerge = await merge(input as MergeStepInput);
          // Another build updates k_bitmap first, so this merge is stale and the commit rebases.
          await build({ dataset, indexes: [INDEXES[0]!], concurrency: 1 });
          await sweep();
          return commit(firstMerge);
        },
      },
    });
    expect(parts).toBe(2);
    expect(sweeps).toHaveLength(3);
    // The first sweep had old versions to delete; no sweep touched a build or the parts in flight.
    expect(sweeps[0]!.deleted.versions.length).toBeGreaterThan(0);
    for (const sw of sweeps) expect(sw.deleted.builds).toEqual([]);
    expect(summary.indexes.map((ix) => [ix.name, ix.fragmentsCovered])).toEqual([
      ['k_bitmap', 6],
      ['s_zonemap', 6],
    ]);
    // The other build covered fragments 4 and 5 in k_bitmap first: this commit dropped its own
    // k_bitmap segment (and deleted its files) and committed its s_zonemap segment as made.
    const final = await loadLatestManifest(store);
    const files = (name: string) => indexFiles(final.indexes.find((ix) => ix.name === name)!).map((f) => f.key);
    const mine = (name: string) => firstMerge!.segments.find((m) => m.name === name)!.files.map((f) => f.key);
    expect(files('s_zonemap')).toEqual(expect.arrayContaining(mine('s_zonemap')));
    for (const key of mine('k_bitmap')) {
      expect(files('k_bitmap')).not.toContain(key);
      expect(await store.head(key)).toBeUndefined();
    }

    // Same answers as the same fragments indexed in one go.
    const control = tempDir('ssi-vacuum-control-');
    for (let f = 0; f < 6; f++) await addFragment(new LocalStore(control), f);
    await build({ dataset: control, indexes: INDEXES, concurrency: 1 });
    expect(await answers(dataset)).toEqual(await answers(control));
    expect(await listAll(store, '_index/builds/')).toEqual([]);
  });
});

/** Set the mtime of every object under `<root>/_index/` (optionally only those matching) to `days` ago. */
function backdate(root: string, days: number, match: (key: string) => boolean = () => true): void {
  const t = new Date(Date.now() - days * 86_400_000);
  const walk = (dir: string, key: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const k = `${key}/${e.name}`;
      if (e.isDirectory()) walk(path.join(dir, e.name), k);
      else if (match(k)) fs.utimesSync(path.join(dir, e.name), t, t);
    }
  };
  walk(path.join(root, '_index'), '_index');
}

describe('vacuum on a local directory, by the real clock (back-dated mtimes)', () => {
  it('with the default 7 days deletes only what is older: an old crashed build goes, a recent one stays, and the version current 8 days ago stays', async () => {
    const root = tempDir('ssi-vacuum-');
    const store = new LocalStore(root);
    for (let f = 0; f < 2; f++) await addFragment(store, f);
    await build({ dataset: root, indexes: INDEXES, concurrency: 1, compact: false }); // v1 v2
    await addFragment(store, 2);
    await build({ dataset: root, concurrency: 1, compact: false }); // v3 v4
    await addFragment(store, 3);
    const crash = () =>
      build({
        dataset: root,
        concurrency: 1,
        compact: false,
        overrideStep: {
          MergeAndCommit: async (input) => {
            await merge(input as MergeStepInput);
            throw Object.assign(new Error('simulated crash'), { name: 'InjectedFault' });
          },
        },
      });
    await expect(crash()).rejects.toThrow('simulated crash'); // v5 registers f3
    const oldBuild = (await listAll(store, '_index/builds/'))[0]!.key.split('/').slice(0, 3).join('/') + '/';
    backdate(root, 30);
    // A week and a day ago the latest was v5; now v6 (f3 committed) and v7, v8 (f4).
    await build({ dataset: root, concurrency: 1, compact: false }); // v6
    await addFragment(store, 4);
    await build({ dataset: root, concurrency: 1, compact: false }); // v7 v8
    backdate(root, 8, (k) => k === '_index/versions/00000000000000000006.json');
    await addFragment(store, 5);
    await expect(crash()).rejects.toThrow('simulated crash'); // v9, and a recent crashed build
    const builds = [...new Set((await listAll(store, '_index/builds/')).map((o) => o.key.split('/').slice(0, 3).join('/') + '/'))];
    expect(builds).toHaveLength(2);
    const answersBefore = await answers(root);

    const r = await runCli(['vacuum', root, '--keep-versions', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as VacuumResult;
    // v5 was the latest until v6, which was written 8 days ago: v5 is past retention, v6 is not
    // (v7 came within the week).
    expect(out.deleted.versions).toEqual([1, 2, 3, 4, 5]);
    expect(out.retainedVersions).toEqual([6, 7, 8, 9]);
    expect(out.deleted.builds).toEqual([oldBuild]);
    expect(out.dryRun).toBe(false);
    // Appends never unreference a segment: only the first crashed build's parts (30 days old,
    // never referenced) go; the recent crashed build's are too young.
    expect(out.deleted.indexDirs).toHaveLength(2);
    expect(out.deleted.indexDirs.every((d) => d.includes(`/${oldBuild.split('/')[2]}-g`))).toBe(true);
    const left = (await listAll(store, '_index/builds/')).map((o) => o.key);
    expect(left.length).toBeGreaterThan(0);
    expect(left.every((k) => !k.startsWith(oldBuild))).toBe(true);
    expect(await answers(root)).toEqual(answersBefore);
  });
});

describe('vacuum bounds _index/', () => {
  it('without vacuum _index/ grows with every build; vacuuming after each of 20 builds (0s, keep 3) leaves 3 versions and only the directories they reference', async () => {
    const plain = tempDir('ssi-vacuum-grow-');
    const vacuumed = tempDir('ssi-vacuum-bounded-');
    const stores = [new LocalStore(plain), new LocalStore(vacuumed)];
    const count = async (store: ObjectStore) => {
      const all = await listAll(store, '_index/');
      const dirs = new Set(all.filter((o) => o.key.startsWith('_index/indexes/')).map((o) => o.key.split('/').slice(0, 4).join('/')));
      return {
        objects: all.length,
        bytes: all.reduce((n, o) => n + o.size, 0),
        versions: all.filter((o) => o.key.startsWith('_index/versions/')).length,
        dirsPerIndex: ['k_bitmap', 's_zonemap'].map((name) => [...dirs].filter((d) => d.split('/')[2] === name).length),
        builds: all.filter((o) => o.key.startsWith('_index/builds/')).length,
      };
    };
    let deletedTotal = 0;
    for (let i = 0; i < 20; i++) {
      for (const [dataset, store] of [
        [plain, stores[0]!],
        [vacuumed, stores[1]!],
      ] as const) {
        await addFragment(store, i);
        await build({ dataset, indexes: i === 0 ? INDEXES : undefined, concurrency: 1 });
      }
      const swept = await vacuum({ dataset: vacuumed, olderThan: '0s', keepVersions: 3, now: () => Date.now() + 1000 });
      deletedTotal += swept.objects;
      const bounded = await count(stores[1]!);
      expect(bounded.versions).toBeLessThanOrEqual(3);
      // What is left is what the retained versions reference, segments the policy bounds.
      const referenced = new Set((await Promise.all(swept.retainedVersions.map((v) => dirsOf(stores[1]!, v)))).flat());
      expect(bounded.dirsPerIndex.reduce((a, b) => a + b, 0)).toBe(referenced.size);
    }
    const grown = await count(stores[0]!);
    const bounded = await count(stores[1]!);
    // Every append writes a segment directory, and compactions more: nothing removes them.
    expect(grown.versions).toBeGreaterThan(40);
    for (const d of grown.dirsPerIndex) expect(d).toBeGreaterThan(20);
    expect(bounded.versions).toBe(3);
    expect(bounded.builds).toBe(0);
    expect(await answers(vacuumed)).toEqual(await answers(plain));

    await vacuum({ dataset: vacuumed, olderThan: '0s', keepVersions: 1, now: () => Date.now() + 1000 });
    const minimal = await count(stores[1]!);
    expect(minimal.versions).toBe(1);
    const latest = await loadLatestManifest(stores[1]!);
    expect(minimal.dirsPerIndex).toEqual(['k_bitmap', 's_zonemap'].map((n) => latest.indexes.find((ix) => ix.name === n)!.segments.length));
    expect(await answers(vacuumed)).toEqual(await answers(plain));
    console.info(
      `20 builds: without vacuum ${grown.objects} objects, ${grown.bytes} bytes under _index/; ` +
        `vacuumed after each (keep 3) ${bounded.objects} objects, ${bounded.bytes} bytes (${deletedTotal} objects deleted in all); ` +
        `keep 1: ${minimal.objects} objects, ${minimal.bytes} bytes`,
    );
  });
});

describe('scalar-index vacuum', () => {
  it('rejects a malformed --older-than or --keep-versions with exit code 2 and a line naming the flag', async () => {
    const root = tempDir('ssi-vacuum-cli-');
    for (const [args, pattern] of [
      [['--older-than', '7x'], /--older-than.*7x.*e\.g\. 7d/s],
      [['--older-than', 'd'], /--older-than/],
      [['--older-than', ''], /--older-than/],
      [['--older-than', '1.5d'], /--older-than/],
      [['--keep-versions', '0'], /--keep-versions must be a whole number of at least 1/],
      [['--keep-versions', 'ten'], /--keep-versions/],
    ] as const) {
      const r = await runCli(['vacuum', root, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(pattern);
    }
  });

  it('--dry-run lists what would go and deletes nothing; then the real run deletes it and says so', async () => {
    const root = tempDir('ssi-vacuum-cli-');
    const store = new LocalStore(root);
    for (let f = 0; f < 3; f++) {
      await addFragment(store, f);
      await build({ dataset: root, indexes: f === 0 ? INDEXES : undefined, concurrency: 1 });
    }
    // v7 merges k_bitmap's three segments, v8 s_zonemap's.
    await compactIndexes(root);
    backdate(root, 10);
    const before = await snapshot(store);
    const dry = await runCli(['vacuum', root, '--keep-versions', '2', '--dry-run', '--quiet']);
    expect(dry.code, dry.stderr).toBe(0);
    // v7 still references s_zonemap's three segments: only k_bitmap's go.
    expect(dry.stdout).toMatch(/^would delete 6 version\(s\), 3 index dir\(s\), 0 build\(s\), 0 fragment table chunk\(s\), 0 leftover temp file\(s\): \d+ object\(s\), [\d.]+ (B|KiB)\nkept 2 version\(s\): 7–8 \(latest 8\)\n {2}versions 1–6\n {2}_index\/indexes\/k_bitmap\//);
    expect(dry.stdout.split('\n').filter((l) => l.startsWith('  _index/indexes/'))).toHaveLength(3);
    expect(await snapshot(store)).toEqual(before);

    const real = await runCli(['vacuum', root, '--keep-versions', '2', '--older-than', '1h30m']);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/^deleted 6 version\(s\), 3 index dir\(s\), 0 build\(s\), 0 fragment table chunk\(s\), 0 leftover temp file\(s\)/);
    expect(real.stderr).toMatch(/deleting/);
    expect(await listVersions(store)).toEqual([7, 8]);
  });

  it('vacuums an s3:// dataset from a child process whose only settings are the endpoint and credentials', async () => {
    const store = new S3Store({ bucket: 'vacuum', prefix: 'cli' }, { env: server.env });
    const dataset = 's3://vacuum/cli';
    for (let f = 0; f < 2; f++) {
      await addFragment(store, f);
      await build({ dataset, indexes: f === 0 ? INDEXES : undefined, concurrency: 1 });
    }
    await compactIndexes(dataset); // v5, v6: each index's two segments into one
    await sleep(1100); // S3 timestamps are whole seconds; 0s means "older than now"
    const env = { AWS_ENDPOINT_URL_S3: server.env.AWS_ENDPOINT_URL_S3!, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
    const r = await spawnCli(['vacuum', dataset, '--older-than', '0s', '--keep-versions', '1', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as VacuumResult;
    expect(out).toMatchObject({ deleted: { versions: [1, 2, 3, 4, 5], builds: [] }, dryRun: false, retainedVersions: [6] });
    expect(out.deleted.indexDirs).toHaveLength(4);
    expect(out.bytes).toBeGreaterThan(0);
    expect(await listVersions(store)).toEqual([6]);
  });
});

describe('vacuum and what a killed writer leaves', () => {
  it('removes staged files under _index/tmp/ and an earlier release\'s .tmp- files beside versions once they are older than the threshold, and keeps young ones', async () => {
    const root = tempDir('ssi-vacuum-temp-');
    const store = new LocalStore(root);
    for (let f = 0; f < 2; f++) await addFragment(store, f);
    await build({ dataset: root, indexes: INDEXES, concurrency: 1 });
    const staged = path.join(root, '_index', 'tmp', 'a1b2c3d4e5f6-part_0_bitmap.arrow');
    const young = path.join(root, '_index', 'tmp', '0f0f0f0f0f0f-bitmap.arrow');
    const legacy = path.join(root, '_index', 'versions', '00000000000000000002.json.tmp-0123456789ab');
    for (const f of [staged, young, legacy]) fs.writeFileSync(f, 'half-written');
    const old = Date.now() / 1000 - 3 * 3600;
    fs.utimesSync(staged, old, old);
    fs.utimesSync(legacy, old, old);
    const before = await answers(root);
    const r = await vacuum({ dataset: root, olderThan: '1h' });
    expect(r.deleted.temp).toEqual(['_index/tmp/a1b2c3d4e5f6-part_0_bitmap.arrow', '_index/versions/00000000000000000002.json.tmp-0123456789ab']);
    expect(fs.existsSync(staged)).toBe(false);
    expect(fs.existsSync(legacy)).toBe(false);
    expect(fs.existsSync(young)).toBe(true);
    expect(await answers(root)).toEqual(before);
  });
});

describe('parseDuration', () => {
  it('reads s, m, h, d, w and compound terms, and rejects anything else', () => {
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('12h')).toBe(43_200_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('1w')).toBe(604_800_000);
    expect(parseDuration('1d12h')).toBe(129_600_000);
    expect(parseDuration('250ms')).toBe(250);
    for (const bad of ['', '7', 'd', '-1d', '1.5h', '7 d', '7D', 'P7D', '1y', '99999999999999999w']) expect(() => parseDuration(bad), bad).toThrow(/invalid duration/);
  });
});
