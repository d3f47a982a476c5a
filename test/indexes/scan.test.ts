import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeColumnType } from '../../lib/format/column-type.js';
import { createSlotAssigner, NULL_SLOT } from '../../lib/indexes/scan.js';

/** Slots must be a bijection between distinct values and ids, with nulls on the null slot. */
function checkSlots(type: arrow.DataType, batches: (number | null)[][]) {
  const assigner = createSlotAssigner(describeColumnType('c', type));
  const seen = new Map<number, number>();
  for (const values of batches) {
    const vec = arrow.vectorFromArray(values, type);
    const data = vec.data[0]!;
    const out = new Int32Array(values.length);
    assigner.assign(data, out, 0);
    values.forEach((v, i) => {
      if (v === null) return expect(out[i]).toBe(NULL_SLOT);
      expect(out[i]).not.toBe(NULL_SLOT);
      expect(assigner.value(out[i]!)).toBe(v);
      const prior = seen.get(v);
      if (prior !== undefined) expect(out[i]).toBe(prior);
      seen.set(v, out[i]!);
    });
  }
  expect(new Set(seen.values()).size).toBe(seen.size);
}

describe('slot assignment for bitmap training', () => {
  it('large low-cardinality integer batches (lookup-table path) give one stable slot per value across batches', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<[arrow.DataType, number, number]>([new arrow.Int32(), -(2 ** 31), 2 ** 31 - 1], [new arrow.Int8(), -128, 127], [new arrow.Uint32(), 0, 2 ** 32 - 1]),
        fc.integer({ min: 1, max: 70000 }),
        fc.integer({ min: 2, max: 3 }),
        fc.integer(),
        fc.boolean(),
        ([type, lo, hi], span, nBatches, seed, withNulls) => {
          let x = seed >>> 0;
          const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
          const base = lo + (next() % Math.max(1, Math.min(hi - lo, 2 ** 31)));
          const batches = Array.from({ length: nBatches }, () =>
            Array.from({ length: 5000 }, () => (withNulls && next() % 17 === 0 ? null : Math.min(hi, Math.max(lo, base + (next() % span))))),
          );
          checkSlots(type, batches);
        },
      ),
      { numRuns: 20 },
    );
  });
});
