/**
 * roaring (a native addon) is loaded only where bitmaps are decoded, which is the query side:
 * plan, build-part and merge (including an incremental merge over an existing bitmap index)
 * never load it, which is why the Lambda bundles can ship without it.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { roaringLoaded } from '../../lib/format/roaring.js';
import { build } from '../../lib/workflow/build.js';
import { writeFragment, type ColumnSpec } from '../support/dataset.js';
import { tempDir } from '../support/tmp.js';

const COLUMNS: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 's', type: 'utf8' },
];

async function writeFragments(root: string, from: number, count: number) {
  for (let f = from; f < from + count; f++) {
    const k = Array.from({ length: 300 }, (_, i) => (i % 11 === 5 ? null : (i * 7 + f) % 9));
    const s = Array.from({ length: 300 }, (_, i) => (i % 13 === 0 ? null : `v${(i + f) % 4}`));
    await writeFragment(path.join(root, 'data', `f${f}.arrow`), COLUMNS, { k, s }, { batchRows: 64, format: 'file' });
  }
}

describe('roaring loading', () => {
  it('builds and incrementally merges bitmap indexes without loading roaring; the first query loads it', async () => {
    const root = tempDir();
    await writeFragments(root, 0, 3);
    await build({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'bitmap' }, { column: 'k', type: 'zonemap' }], concurrency: 1 });
    await writeFragments(root, 3, 2);
    const second = await build({ dataset: root, concurrency: 1 });
    expect(second.fragmentsAdded).toBe(2);
    expect(roaringLoaded()).toBe(false);

    // Imported only now, so that the build above could not have pulled it in.
    const { query } = await import('../../lib/query/evaluate.js');
    const r = await query(root, 'k = 4');
    expect(r.exact).toBe(true);
    let expected = 0;
    for (let f = 0; f < 5; f++) for (let i = 0; i < 300; i++) if (i % 11 !== 5 && (i * 7 + f) % 9 === 4) expected++;
    expect(r.rows).toBe(expected);
    expect(roaringLoaded()).toBe(true);
  });
});
