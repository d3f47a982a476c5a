/**
 * The reconcile's decision (lib/workflow/reconcile.ts): a dataset needs a build exactly when
 * `data/` holds fragments that are unregistered, or registered and not covered by every
 * defined index; roots under a pattern are found the way the trigger routes keys.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalStore } from '../../lib/store/local.js';
import { build } from '../../lib/workflow/build.js';
import { checkDatasets, discoverDatasetRoots, needsBuild, reconcileName } from '../../lib/workflow/reconcile.js';
import { parseDatasetPrefixes } from '../../lib/workflow/trigger.js';
import { writeFragment, type ColumnSpec } from '../support/dataset.js';
import { tempDir } from '../support/tmp.js';

const COLS: ColumnSpec[] = [{ name: 'x', type: 'int32' }];
const write = (root: string, name: string, f = 0) => writeFragment(path.join(root, 'data', name), COLS, { x: Array.from({ length: 30 }, (_, i) => (i + f) % 5) }, { batchRows: 8, format: 'file' });

describe('needsBuild', () => {
  it('counts unregistered fragments, then nothing once a build covers them, then the next new one', async () => {
    const root = tempDir('ssi-reconcile-');
    const store = new LocalStore(root);
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 0, gone: 0 });
    await write(root, 'a.arrow', 0);
    await write(root, 'sub/B.ARROW', 1);
    fs.writeFileSync(path.join(root, 'data', '_SUCCESS'), '');
    expect(await needsBuild(store)).toEqual({ unregistered: 2, uncovered: 0, gone: 0 });

    await build({ dataset: root, indexes: [{ column: 'x', type: 'bitmap' }, { column: 'x', type: 'zonemap' }], concurrency: 1 });
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 0, gone: 0 });
    await write(root, 'c.arrow', 2);
    expect(await needsBuild(store)).toEqual({ unregistered: 1, uncovered: 0, gone: 0 });
  });

  it('counts fragments a failed build registered but did not index, and not those marked failed', async () => {
    const root = tempDir('ssi-reconcile-');
    const store = new LocalStore(root);
    await write(root, 'a.arrow', 0);
    await build({ dataset: root, indexes: [{ column: 'x', type: 'bitmap' }], concurrency: 1 });
    await write(root, 'b.arrow', 1);
    fs.writeFileSync(path.join(root, 'data', 'c-garbage.arrow'), 'not arrow');
    const failing = build({
      dataset: root,
      skipBadFragments: true,
      concurrency: 1,
      overrideStep: {
        BuildPart: async () => {
          throw Object.assign(new Error('injected'), { name: 'InjectedFailure' });
        },
      },
    });
    await expect(failing).rejects.toThrow('injected');
    // The plan step committed the registration of b (good) and c (failed); no index covers b.
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 1, gone: 0 });
    await build({ dataset: root, skipBadFragments: true, concurrency: 1 });
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 0, gone: 0 });
  });

  it('has nothing to cover on a dataset without indexes, once its fragments are registered', async () => {
    const root = tempDir('ssi-reconcile-');
    await write(root, 'a.arrow');
    await build({ dataset: root, concurrency: 1 });
    expect(await needsBuild(new LocalStore(root))).toEqual({ unregistered: 0, uncovered: 0, gone: 0 });
  });

  it('leaves out fragments written after settledBefore (their own build is likely running)', async () => {
    const root = tempDir('ssi-reconcile-');
    await write(root, 'old.arrow');
    await write(root, 'new.arrow');
    const past = new Date(Date.now() - 3600_000);
    fs.utimesSync(path.join(root, 'data', 'old.arrow'), past, past);
    const store = new LocalStore(root);
    expect(await needsBuild(store, { settledBefore: new Date(Date.now() - 600_000) })).toEqual({ unregistered: 1, uncovered: 0, gone: 0 });
    expect(await needsBuild(store, { settledBefore: new Date(Date.now() + 600_000) })).toEqual({ unregistered: 2, uncovered: 0, gone: 0 });
  });
});

describe('checkDatasets', () => {
  it('expands a pattern into the roots under it (one segment or more, never the base itself) and checks each', async () => {
    const bucketDir = tempDir('ssi-bucket-');
    const open = (uri: string) => new LocalStore(path.join(bucketDir, uri.replace(/^s3:\/\/bucket\/?/, '')));
    await write(path.join(bucketDir, 'datasets/sales'), 'a.arrow');
    await write(path.join(bucketDir, 'datasets/eu/web'), 'b.parquet.arrow');
    await write(path.join(bucketDir, 'datasets'), 'stray.arrow'); // datasets/data/…: not a root under datasets/*
    await write(path.join(bucketDir, 'other/x'), 'c.arrow');
    await build({ dataset: path.join(bucketDir, 'datasets/sales'), indexes: [{ column: 'x', type: 'bitmap' }], concurrency: 1 });

    const pattern = parseDatasetPrefixes('datasets/*')[0]!;
    expect(await discoverDatasetRoots('bucket', pattern, open)).toEqual(['datasets/eu/web', 'datasets/sales']);
    const checks = await checkDatasets({ bucket: 'bucket', roots: parseDatasetPrefixes('datasets/*,other/x'), open });
    expect(checks).toEqual([
      { dataset: 's3://bucket/datasets/eu/web', unregistered: 1, uncovered: 0, gone: 0 },
      { dataset: 's3://bucket/datasets/sales', unregistered: 0, uncovered: 0, gone: 0 },
      { dataset: 's3://bucket/other/x', unregistered: 1, uncovered: 0, gone: 0 },
    ]);
  });

  it('reports a dataset it cannot read in its entry and still checks the others', async () => {
    const bucketDir = tempDir('ssi-bucket-');
    const open = (uri: string) => new LocalStore(path.join(bucketDir, uri.replace(/^s3:\/\/bucket\/?/, '')));
    await write(path.join(bucketDir, 'a'), 'x.arrow');
    await build({ dataset: path.join(bucketDir, 'a'), indexes: [{ column: 'x', type: 'bitmap' }], concurrency: 1 });
    const versions = path.join(bucketDir, 'a', '_index', 'versions');
    for (const f of fs.readdirSync(versions)) fs.writeFileSync(path.join(versions, f), '{ damaged');
    await write(path.join(bucketDir, 'b'), 'y.arrow');
    const checks = await checkDatasets({ bucket: 'bucket', roots: parseDatasetPrefixes('a,b'), open });
    expect(checks).toEqual([
      { dataset: 's3://bucket/a', error: expect.objectContaining({ name: 'IndexFileError' }) },
      { dataset: 's3://bucket/b', unregistered: 1, uncovered: 0, gone: 0 },
    ]);
  });
});

describe('reconcileName', () => {
  it('is an automatic name, the same for the same dataset and time, new for a new time', () => {
    const at = new Date('2026-11-02T10:00:00Z');
    const name = reconcileName('s3://bucket/datasets/sales', at);
    expect(name).toMatch(/^bucket-datasets-sales-[0-9a-f]{32}$/);
    expect(reconcileName('s3://bucket/datasets/sales', new Date(at))).toBe(name);
    expect(reconcileName('s3://bucket/datasets/sales', new Date(at.getTime() + 3600_000))).not.toBe(name);
  });
});
