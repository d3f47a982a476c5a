/**
 * Registering new fragments reads them a few at a time, within a byte budget: many small
 * files overlap (up to 4 reads at once, for S3 latency), a handful of large local files do
 * not all sit in memory together. And how the plan sizes fragment groups.
 */
import { statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalStore } from '../../lib/store/local.js';
import { plan, PLAN_READ_BYTES } from '../../lib/workflow/plan.js';
import { tempDir } from '../support/tmp.js';

function writeFragments(root: string, count: number, rows: number): number {
  mkdirSync(join(root, 'data'), { recursive: true });
  let size = 0;
  for (let f = 0; f < count; f++) {
    const x = new Float64Array(rows).map((_, i) => i * 0.5 + f);
    const file = join(root, 'data', `f${f}.arrow`);
    writeFileSync(file, arrow.tableToIPC(arrow.tableFromArrays({ x }), 'file'));
    size = statSync(file).size;
  }
  return size;
}

/** Largest total size of fragment reads in flight at once, and the most reads at once. */
function watchReads(root: string): { bytes: number; reads: number } {
  const peak = { bytes: 0, reads: 0 };
  let bytes = 0;
  let reads = 0;
  const original = LocalStore.prototype.read;
  vi.spyOn(LocalStore.prototype, 'read').mockImplementation(async function (this: LocalStore, key, range) {
    if (!key.startsWith('data/')) return original.call(this, key, range);
    const size = statSync(join(root, key)).size;
    bytes += size;
    reads++;
    peak.bytes = Math.max(peak.bytes, bytes);
    peak.reads = Math.max(peak.reads, reads);
    try {
      return await original.call(this, key, range);
    } finally {
      bytes -= size;
      reads--;
    }
  });
  return peak;
}

afterEach(() => vi.restoreAllMocks());

describe('plan: reading new fragments', () => {
  it('overlaps up to 4 reads of small files', async () => {
    const root = tempDir('ssi-plan-small-');
    writeFragments(root, 8, 1000);
    const peak = watchReads(root);
    const out = await plan({ dataset: root });
    expect(out.fragmentsAdded).toBe(8);
    expect(peak.reads).toBe(4);
  });

  it(`holds at most ${PLAN_READ_BYTES / 2 ** 20} MiB of large fragments at once`, async () => {
    const root = tempDir('ssi-plan-large-');
    // Each file is a little over a third of the budget: two fit, three do not.
    const size = writeFragments(root, 5, Math.ceil(PLAN_READ_BYTES / 3 / 8) + 1000);
    expect(3 * size).toBeGreaterThan(PLAN_READ_BYTES);
    const peak = watchReads(root);
    const out = await plan({ dataset: root });
    expect(out.fragmentsAdded).toBe(5);
    expect(peak.bytes).toBeLessThanOrEqual(PLAN_READ_BYTES);
    expect(peak.reads).toBe(2);
  });
});

describe('plan: grouping', () => {
  // 8 fragments × 300K rows = 2.4M rows, one index: 2.4M rows of work.
  const setup = () => {
    const root = tempDir('ssi-plan-groups-');
    writeFragments(root, 8, 300_000);
    return root;
  };

  it('splits into at least minGroups groups (of at least 256K rows) when the work reaches minGroupsFromWorkRows', async () => {
    const out = await plan({ dataset: setup(), indexes: [{ column: 'x', type: 'bitmap' }], minGroups: 4, minGroupsFromWorkRows: 2_400_000 });
    expect(out.groupCount).toBe(4);
  });

  it('keeps the default group size (4M rows: one group here) below minGroupsFromWorkRows', async () => {
    const out = await plan({ dataset: setup(), indexes: [{ column: 'x', type: 'bitmap' }], minGroups: 4, minGroupsFromWorkRows: 2_400_001 });
    expect(out.groupCount).toBe(1);
  });

  it('counts work once per index: two indexes on the same rows reach the threshold one does not', async () => {
    const root = setup();
    const out = await plan({
      dataset: root,
      indexes: [
        { column: 'x', type: 'bitmap' },
        { column: 'x', type: 'zonemap' },
      ],
      minGroups: 4,
      minGroupsFromWorkRows: 4_000_000,
    });
    expect(out.groupCount).toBe(4);
  });
});
