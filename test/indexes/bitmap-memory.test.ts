/**
 * A bitmap part's memory is bounded by design: per distinct value it holds a few typed-array
 * slots and the serialized bitmap bytes (no object per value), and a column whose distinct
 * values would outgrow the part's budget is refused with an error that says which index,
 * column and group, and what to use instead. The peak for id-like columns is measured in
 * `npm run bench` (bitmap part, high cardinality).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { ValueTooLargeError } from '../../lib/errors.js';
import { describeColumnType } from '../../lib/format/column-type.js';
import { bitmapIndex } from '../../lib/indexes/bitmap.js';
import { listVersions } from '../../lib/manifest/manifest.js';
import { LocalStore } from '../../lib/store/local.js';
import { build } from '../../lib/workflow/build.js';
import { writeFragment } from '../support/dataset.js';
import { tempDir } from '../support/tmp.js';

describe('bitmap part memory', () => {
  it('a part whose distinct values outgrow its budget is refused, suggesting a zone map or a bloom filter', () => {
    const ct = describeColumnType('id', new arrow.Int64());
    const trainer = bitmapIndex.createTrainer(ct, {}, { partMemoryBytes: 4 * 1024 * 1024 });
    const n = 200_000;
    const values = BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * 7919n);
    trainer.startFragment(0, n);
    expect(() => trainer.addBatch(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: values }) as arrow.Data)).toThrow(ValueTooLargeError);
    expect(() => {
      const t = bitmapIndex.createTrainer(ct, {}, { partMemoryBytes: 4 * 1024 * 1024 });
      t.startFragment(0, n);
      t.addBatch(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: values }) as arrow.Data);
    }).toThrow(/200000 distinct values in \d+ MiB, over its budget of 4 MiB: .*zone map .* bloom filter/);
  });

  it('the same column well within the budget trains and writes a part', async () => {
    const ct = describeColumnType('id', new arrow.Int64());
    const trainer = bitmapIndex.createTrainer(ct, {}, { partMemoryBytes: 256 * 1024 * 1024 });
    const n = 200_000;
    trainer.startFragment(0, n);
    trainer.addBatch(arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * 7919n) }) as arrow.Data);
    trainer.endFragment();
    const [bitmap] = await trainer.writeSegment(new LocalStore(tempDir('ssi-bm-mem-')), 'seg/', new Map());
    // 18 bytes of portable Roaring per single-row value, plus the keys and the row-set framing.
    expect(bitmap!.size).toBeGreaterThan(n * 18);
  });

  it('through a build, the error names the index, the column and the fragment group, and nothing is committed', async () => {
    const root = tempDir('ssi-bm-mem-build-');
    const n = 50_000;
    await writeFragment(path.join(root, 'data', 'ids.arrow'), [{ name: 'user_id', type: 'int64' }], { user_id: Array.from({ length: n }, (_, i) => BigInt(i) * 104729n) }, { batchRows: 8192, format: 'file' });
    const run = build({ dataset: root, indexes: [{ column: 'user_id', type: 'bitmap' }], tuning: { partMemoryBytes: 1024 * 1024 } });
    await expect(run).rejects.toThrow(ValueTooLargeError);
    await expect(build({ dataset: root, indexes: [{ column: 'user_id', type: 'bitmap' }], tuning: { partMemoryBytes: 1024 * 1024 } })).rejects.toThrow(
      /index user_id_bitmap on column 'user_id', fragment group 0 \(up to .*ids\.arrow\): a bitmap part would hold/,
    );
    // The registration committed (fragments are registered before parts are built), no index did.
    const versions = await listVersions(new LocalStore(root));
    expect(versions).toEqual([1]);
    expect(fs.readdirSync(path.join(root, '_index')).includes('indexes')).toBe(false);
  });
});
