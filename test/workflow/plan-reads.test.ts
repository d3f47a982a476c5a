/**
 * Registering new fragments reads their footers and headers only: many files overlap (up to
 * PLAN_READ_CONCURRENCY at once, for S3 latency), a small file is read whole in one request,
 * a large one by a few ranged reads that return a small share of it. And how the plan sizes
 * fragment groups.
 */
import { statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalStore } from '../../lib/store/local.js';
import { plan, PLAN_READ_CONCURRENCY } from '../../lib/workflow/plan.js';
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

/** Reads of fragment files: how many, the bytes they returned per file, and the most in flight at once. */
function watchReads(): { reads: number; peak: number; bytes: Map<string, number>; requests: Map<string, number> } {
  const seen = { reads: 0, peak: 0, bytes: new Map<string, number>(), requests: new Map<string, number>() };
  let inFlight = 0;
  const original = LocalStore.prototype.read;
  vi.spyOn(LocalStore.prototype, 'read').mockImplementation(async function (this: LocalStore, key, range) {
    if (!key.startsWith('data/')) return original.call(this, key, range);
    seen.reads++;
    inFlight++;
    seen.peak = Math.max(seen.peak, inFlight);
    try {
      // Held a moment, so that reads issued together are seen together.
      await new Promise((r) => setTimeout(r, 5));
      const bytes = await original.call(this, key, range);
      seen.bytes.set(key, (seen.bytes.get(key) ?? 0) + bytes.byteLength);
      seen.requests.set(key, (seen.requests.get(key) ?? 0) + 1);
      return bytes;
    } finally {
      inFlight--;
    }
  });
  return seen;
}

afterEach(() => vi.restoreAllMocks());

describe('plan: registering new fragments by their footers', () => {
  it(`overlaps up to ${PLAN_READ_CONCURRENCY} registrations, each small file read whole in one request`, async () => {
    const root = tempDir('ssi-plan-small-');
    const size = writeFragments(root, 2 * PLAN_READ_CONCURRENCY, 1000);
    const seen = watchReads();
    const out = await plan({ dataset: root });
    expect(out.fragmentsAdded).toBe(2 * PLAN_READ_CONCURRENCY);
    expect(seen.peak).toBe(PLAN_READ_CONCURRENCY);
    expect([...seen.requests.values()]).toEqual(new Array(2 * PLAN_READ_CONCURRENCY).fill(1));
    expect([...seen.bytes.values()]).toEqual(new Array(2 * PLAN_READ_CONCURRENCY).fill(size));
  });

  it('reads at most 2% of a large fragment, in a few requests, and never the whole file', async () => {
    const root = tempDir('ssi-plan-large-');
    // 1.5M float64 rows in one batch: 12 MiB each.
    const size = writeFragments(root, 3, 1_500_000);
    expect(size).toBeGreaterThan(8 * 2 ** 20);
    const seen = watchReads();
    const out = await plan({ dataset: root, indexes: [{ column: 'x', type: 'zonemap' }] });
    expect(out.fragmentsAdded).toBe(3);
    expect(seen.bytes.size).toBe(3);
    for (const [key, bytes] of seen.bytes) {
      expect(bytes / size, key).toBeLessThanOrEqual(0.02);
      expect(seen.requests.get(key), key).toBeLessThanOrEqual(3);
    }
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
