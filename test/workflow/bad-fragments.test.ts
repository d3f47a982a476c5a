/**
 * Bad fragments. By default a build fails naming the file and commits nothing (see
 * test/cli/errors.test.ts). With --skip-bad-fragments (and always on the S3-event path, where
 * the Lambda's SKIP_BAD_FRAGMENTS=true applies) each bad file is registered as failed with
 * its reason, covered by no index, listed in every query's unindexedFragments and by inspect,
 * and the good fragments are indexed exactly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { loadLatestManifest, listVersions } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { planStep } from '../../lib/workflow/steps.js';
import { stepSettingsFromEnv } from '../../functions/shared.js';
import { fragmentBytes, writeFragment, type ColumnSpec } from '../support/dataset.js';
import { runCli } from '../support/run-cli.js';
import { expandRanges, tempDir } from '../support/tmp.js';
import { coveredIds, fragmentsOf } from '../support/manifest.js';

const COLS: ColumnSpec[] = [{ name: 'x', type: 'int32' }];
const good = (f: number) => ({ x: Array.from({ length: 20 }, (_, i) => (i * 3 + f) % 7) });

async function datasetWithBadFiles(): Promise<string> {
  const root = tempDir('ssi-bad-');
  const data = path.join(root, 'data');
  await writeFragment(path.join(data, 'a-good.arrow'), COLS, good(0), { batchRows: 8, format: 'file' });
  await writeFragment(path.join(data, 'c-good.parquet'), COLS, good(1), { batchRows: 8, format: 'parquet' });
  fs.writeFileSync(path.join(data, 'b-garbage.arrow'), 'not arrow at all');
  const pq = fragmentBytes(COLS, good(2), { batchRows: 8, format: 'parquet' });
  fs.writeFileSync(path.join(data, 'd-truncated.parquet'), pq.subarray(0, pq.length - 30));
  await writeFragment(path.join(data, 'e-no-column.arrow'), [{ name: 'y', type: 'int32' }], { y: [1, 2] }, { batchRows: 8, format: 'file' });
  await writeFragment(path.join(data, 'f-wrong-type.arrow'), [{ name: 'x', type: 'utf8' }], { x: ['1', '2'] }, { batchRows: 8, format: 'stream' });
  return root;
}

const BAD = ['data/b-garbage.arrow', 'data/d-truncated.parquet', 'data/e-no-column.arrow', 'data/f-wrong-type.arrow'];

describe('--skip-bad-fragments', () => {
  it('without it, the first bad file fails the build and nothing is committed', async () => {
    const root = await datasetWithBadFiles();
    const r = await runCli(['build', root, '--index', 'x:bitmap', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/b-garbage\.arrow|d-truncated\.parquet|e-no-column\.arrow|f-wrong-type\.arrow/);
    expect(await listVersions(new LocalStore(root))).toEqual([]);
  });

  it('records each bad file as failed with its reason; queries list them as unindexed; good rows are exact', async () => {
    const root = await datasetWithBadFiles();
    const r = await runCli(['build', root, '--index', 'x:bitmap', '--index', 'x:zonemap', '--skip-bad-fragments', '--json', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.fragmentsAdded).toBe(6);
    expect(summary.fragmentsFailed.map((f: { path: string }) => f.path).sort()).toEqual(BAD);
    for (const p of BAD) expect(r.stderr).toContain(`skipped bad fragment ${p}`);

    const m = await loadLatestManifest(new LocalStore(root));
    const fragments = await fragmentsOf(new LocalStore(root), m);
    const reasons = Object.fromEntries(fragments.filter((f) => f.failed).map((f) => [f.path, f.failed!]));
    expect(reasons['data/b-garbage.arrow']).toMatch(/corrupt or truncated fragment .*b-garbage\.arrow/);
    expect(reasons['data/d-truncated.parquet']).toMatch(/d-truncated\.parquet.*(footer|truncated)/);
    expect(reasons['data/e-no-column.arrow']).toMatch(/column 'x' not found in fragment .*e-no-column\.arrow/);
    expect(reasons['data/f-wrong-type.arrow']).toMatch(/column 'x' is Utf8 in fragment .*f-wrong-type\.arrow but Int32/);
    for (const e of m.indexes) expect(coveredIds(e).map((id) => fragments[id]!.path)).toEqual(['data/a-good.arrow', 'data/c-good.parquet']);

    const q = await query(root, 'x = 3');
    expect(q.exact).toBe(true);
    expect(q.unindexedFragments.map((f) => f.path).sort()).toEqual(BAD);
    const expected = [good(0), good(1)].map((g) => g.x.flatMap((v, i) => (v === 3 ? [i] : [])));
    const byPath = new Map(q.fragments.map((f) => [f.path, expandRanges(f.ranges)]));
    expect(byPath.get('data/a-good.arrow')).toEqual(expected[0]);
    expect(byPath.get('data/c-good.parquet')).toEqual(expected[1]);

    const inspected = await runCli(['inspect', root]);
    for (const p of BAD) expect(inspected.stdout).toMatch(new RegExp(`failed: ${p.replace('.', '\\.')} \\(id \\d+\\): `));
    expect(inspected.stdout).toContain('4 failed');

    // Later builds, with or without the flag, leave failed fragments alone and find nothing to do.
    const again = await runCli(['build', root, '--json', '--quiet']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ fragmentsAdded: 0, fragmentsFailed: [] });
  });

  it('a registered good fragment whose bytes changed is an error without the flag; with it, the old fragment is removed and the file registered again', async () => {
    const root = await datasetWithBadFiles();
    expect((await runCli(['build', root, '--index', 'x:bitmap', '--skip-bad-fragments', '--quiet'])).code).toBe(0);
    await writeFragment(path.join(root, 'data', 'a-good.arrow'), COLS, { x: [1, 2, 3] }, { batchRows: 8, format: 'file' });
    const refused = await runCli(['build', root, '--quiet']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/registered fragment .*a-good\.arrow \(id 0\) was rewritten: its size changed from \d+ to \d+ bytes; fragments are immutable \(with --skip-bad-fragments/);
    const r = await runCli(['build', root, '--skip-bad-fragments', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).fragmentsReplaced).toEqual([{ id: 0, path: 'data/a-good.arrow', reason: expect.stringMatching(/was rewritten/) }]);
    expect(r.stderr).toMatch(/a-good\.arrow \(id 0\) was rewritten.*: registered again as a new fragment/);
    const q = await query(root, 'x = 3');
    const byPath = new Map(q.fragments.map((f) => [f.path, { id: f.id, rows: expandRanges(f.ranges) }]));
    expect(byPath.get('data/a-good.arrow')).toEqual({ id: 6, rows: [2] });
  });

  it('a fragment holding a column name twice is refused by name (same or different types), not as a TypeError; with the flag it is recorded as failed', async () => {
    const root = tempDir('ssi-dup-');
    await writeFragment(path.join(root, 'data', 'a-good.arrow'), COLS, good(0), { batchRows: 8, format: 'file' });
    const x = new arrow.Field('x', new arrow.Int32(), true);
    for (const [name, second] of [['b-dup-same.arrow', new arrow.Field('x', new arrow.Int32(), true)], ['b-dup-types.arrow', new arrow.Field('x', new arrow.Utf8(), true)]] as const) {
      const schema = new arrow.Schema([x, second]);
      const batch = new arrow.RecordBatch(schema, arrow.makeData({
        type: new arrow.Struct(schema.fields),
        length: 2,
        nullCount: 0,
        children: [arrow.vectorFromArray([1, 2], new arrow.Int32()).data[0]!, arrow.vectorFromArray(second.type instanceof arrow.Utf8 ? ['1', '2'] : [3, 4], second.type).data[0]!],
      }));
      fs.writeFileSync(path.join(root, 'data', name), arrow.tableToIPC(new arrow.Table([batch]), 'file'));
    }
    const r = await runCli(['build', root, '--index', 'x:bitmap', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fragment .*b-dup-(same|types)\.arrow has 2 columns named 'x'; column names must be unique/);
    expect(await listVersions(new LocalStore(root))).toEqual([]);
    const skipped = await runCli(['build', root, '--index', 'x:bitmap', '--skip-bad-fragments', '--json', '--quiet']);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(JSON.parse(skipped.stdout).fragmentsFailed.map((f: { path: string; reason: string }) => [f.path, /has 2 columns named 'x'/.test(f.reason)])).toEqual([
      ['data/b-dup-same.arrow', true],
      ['data/b-dup-types.arrow', true],
    ]);
    const q = await query(root, 'x = 3');
    expect(q.unindexedFragments.map((f) => f.path)).toEqual(['data/b-dup-same.arrow', 'data/b-dup-types.arrow']);
  });

  it('the Lambda plan step skips bad fragments when SKIP_BAD_FRAGMENTS=true, unless the input says otherwise', async () => {
    const settings = stepSettingsFromEnv({ SKIP_BAD_FRAGMENTS: 'true' });
    expect(settings.skipBadFragments).toBe(true);
    const root = await datasetWithBadFiles();
    await expect(planStep({ dataset: root, indexes: [{ column: 'x', type: 'bitmap' }], skipBadFragments: false }, settings)).rejects.toThrow(/fragment/);
    const out = await planStep({ dataset: root, indexes: [{ column: 'x', type: 'bitmap' }] }, settings);
    expect(out.fragmentsFailed.map((f) => f.path).sort()).toEqual(BAD);
    expect(out.groupCount).toBe(1);
    expect(() => stepSettingsFromEnv({ SKIP_BAD_FRAGMENTS: 'yes' })).toThrow(/SKIP_BAD_FRAGMENTS/);
  });
});
