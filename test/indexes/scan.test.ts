import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { comparatorFor, describeColumnType } from '../../lib/format/column-type.js';
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

describe('64-bit slots (typed open-addressing table)', () => {
  const big = (type: 'i64' | 'u64') =>
    type === 'i64'
      ? fc.oneof(fc.constantFrom(0n, -1n, 1n, -(2n ** 63n), 2n ** 63n - 1n, 2n ** 32n, -(2n ** 32n), 2n ** 53n + 1n), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: -300n, max: 300n }))
      : fc.oneof(fc.constantFrom(0n, 1n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 32n - 1n, 2n ** 32n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 600n }));

  it.each(['i64', 'u64'] as const)('%s: one slot per distinct value across batches, exact values, and sortedSlots in value order', (kind) => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.option(big(kind), { freq: 8 }), { maxLength: 3000 }), { minLength: 1, maxLength: 3 }), (batches) => {
        const type = kind === 'i64' ? new arrow.Int64() : new arrow.Uint64();
        const assigner = createSlotAssigner(describeColumnType('c', type));
        const seen = new Map<bigint, number>();
        for (const values of batches) {
          const data = arrow.vectorFromArray(values, type).data[0]!;
          const out = new Int32Array(values.length);
          assigner.assign(data, out, 0);
          values.forEach((v, i) => {
            if (v === null) return expect(out[i]).toBe(NULL_SLOT);
            expect(assigner.value(out[i]!)).toBe(v);
            const prior = seen.get(v);
            if (prior !== undefined) expect(out[i]).toBe(prior);
            seen.set(v, out[i]!);
          });
        }
        expect(assigner.slotCount).toBe(seen.size + 1);
        const sorted = [...seen.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        expect([...assigner.sortedSlots()].map((s) => assigner.value(s))).toEqual(sorted);
      }),
      { numRuns: 60 },
    );
  });
});

describe('sortedSlots: non-null slots in the column order, for every kind', () => {
  const cases: [string, arrow.DataType, unknown[]][] = [
    ['int32', new arrow.Int32(), [5, -3, 0, 2 ** 31 - 1, -(2 ** 31), 5, null, 7]],
    ['float64 (NaN last, -0 = 0)', new arrow.Float64(), [1.5, NaN, -0, 0, -Infinity, Infinity, null, -2.5, NaN]],
    ['float16', new arrow.Float16(), [1.5, NaN, -0, 0, -Infinity, 65504, null, -2.5]],
    ['utf8 (UTF-8 byte order)', new arrow.Utf8(), ['b', 'a', '\u{1F600}', '\uFFFD', '', null, 'ab', 'a']],
    ['bool', new arrow.Bool(), [true, null, false, true]],
  ];
  it.each(cases)('%s', (_name, type, values) => {
    const ct = describeColumnType('c', type);
    const assigner = createSlotAssigner(ct);
    const data = arrow.vectorFromArray(values as never[], type).data[0]!;
    assigner.assign(data, new Int32Array(values.length), 0);
    const cmp = comparatorFor(ct.kind);
    const got = [...assigner.sortedSlots()].map((s) => assigner.value(s));
    expect(got).toHaveLength(assigner.slotCount - 1);
    for (let i = 1; i < got.length; i++) expect(cmp(got[i - 1]!, got[i]!), `${String(got[i - 1])} before ${String(got[i])}`).toBeLessThan(0);
  });
});
