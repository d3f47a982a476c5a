/**
 * build-part reads fragment k+1 while it indexes fragment k (one ahead), and a failing read
 * ahead neither hides the error of the fragment before it nor leaks an unhandled rejection.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bitmapIndex } from '../../lib/indexes/bitmap.js';
import { LocalStore } from '../../lib/store/local.js';
import { buildPart } from '../../lib/workflow/build-part.js';
import { plan } from '../../lib/workflow/plan.js';
import { tempDir } from '../support/tmp.js';

function writeFragments(root: string, count: number): void {
  mkdirSync(join(root, 'data'), { recursive: true });
  for (let f = 0; f < count; f++) {
    const c = Int32Array.from({ length: 5000 }, (_, i) => (i * 7 + f) % 13);
    writeFileSync(join(root, 'data', `f${f}.arrow`), arrow.tableToIPC(arrow.tableFromArrays({ c }), 'file'));
  }
}

afterEach(() => vi.restoreAllMocks());

describe('build-part read-ahead', () => {
  it('starts reading the next fragment before indexing the current one, never more than one ahead', async () => {
    const root = tempDir('ssi-readahead-');
    writeFragments(root, 5);
    const p = await plan({ dataset: root, indexes: [{ column: 'c', type: 'bitmap' }], groupRows: 1_000_000 });
    expect(p.groupIds).toEqual([0]);

    const log: string[] = [];
    const original = LocalStore.prototype.read;
    vi.spyOn(LocalStore.prototype, 'read').mockImplementation(async function (this: LocalStore, key, range) {
      if (key.startsWith('data/')) log.push(`read ${key.slice(5, 7)}`);
      await new Promise((r) => setTimeout(r, 5));
      return original.call(this, key, range);
    });
    const createTrainer = bitmapIndex.createTrainer.bind(bitmapIndex);
    vi.spyOn(bitmapIndex, 'createTrainer').mockImplementation((...args) => {
      const t = createTrainer(...args);
      const startFragment = t.startFragment.bind(t);
      t.startFragment = (id, rows) => {
        log.push(`index f${id}`);
        startFragment(id, rows);
      };
      return t;
    });

    const out = await buildPart({ dataset: root, buildId: p.buildId, groupId: 0 });
    expect(out.rows).toBe(25_000);
    const firstRead = (f: number) => log.indexOf(`read f${f}`);
    const indexed = (f: number) => log.indexOf(`index f${f}`);
    for (let f = 0; f < 5; f++) {
      expect(indexed(f), log.join(', ')).toBeGreaterThan(firstRead(f));
      // Fragment f+1 is being read before f is indexed; f+2 is not (one ahead at most).
      if (f + 1 < 5) expect(firstRead(f + 1), log.join(', ')).toBeLessThan(indexed(f));
      if (f + 2 < 5) expect(firstRead(f + 2), log.join(', ')).toBeGreaterThan(indexed(f));
    }
  });

  it('reports the first bad fragment even when the one read ahead is bad too, with no unhandled rejection', async () => {
    const root = tempDir('ssi-readahead-bad-');
    writeFragments(root, 3);
    const p = await plan({ dataset: root, indexes: [{ column: 'c', type: 'bitmap' }], groupRows: 1_000_000 });
    // Both f1 and f2 are replaced after registration by files of another size.
    for (const f of [1, 2]) writeFileSync(join(root, 'data', `f${f}.arrow`), arrow.tableToIPC(arrow.tableFromArrays({ c: Int32Array.from([1, 2, 3]) }), 'file'));
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      await expect(buildPart({ dataset: root, buildId: p.buildId, groupId: 0 })).rejects.toThrow(/f1\.arrow/);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});
