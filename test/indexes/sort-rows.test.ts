import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sortRowsBySlot } from '../../lib/indexes/bitmap.js';

/** The plain answer: for each slot in order, its rows ascending. */
function naive(codes: Int32Array, n: number, slotCount: number): { order: number[]; starts: number[] } {
  const order: number[] = [];
  const starts: number[] = [];
  for (let s = 0; s < slotCount; s++) {
    starts.push(order.length);
    for (let i = 0; i < n; i++) if (codes[i] === s) order.push(i);
  }
  starts.push(order.length);
  return { order, starts };
}

describe('sortRowsBySlot', () => {
  it('matches a plain per-slot scan for any row count (n % 4 tails, n < 4) and slot count', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }).chain((slotCount) =>
          fc.record({ slotCount: fc.constant(slotCount), codes: fc.array(fc.integer({ min: 0, max: slotCount - 1 }), { maxLength: 300 }), spare: fc.integer({ min: 0, max: 5 }) }),
        ),
        ({ slotCount, codes, spare }) => {
          const n = codes.length;
          // Buffers longer than n, as the trainer reuses them: the rows past n must be ignored.
          const buf = new Int32Array(n + spare).fill(slotCount - 1);
          buf.set(codes);
          const order = new Uint32Array(n + spare).fill(0xdeadbeef);
          const starts = sortRowsBySlot(buf, n, slotCount, order);
          const want = naive(buf, n, slotCount);
          expect(Array.from(starts)).toEqual(want.starts);
          expect(Array.from(order.subarray(0, n))).toEqual(want.order);
          expect(Array.from(order.subarray(n)).every((x) => x === 0xdeadbeef)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps rows ascending within a slot across the four quarters (one slot, a million rows)', () => {
    const n = 1_000_003;
    const codes = new Int32Array(n);
    for (let i = 0; i < n; i++) codes[i] = i % 7 === 0 ? 1 : 0;
    const order = new Uint32Array(n);
    const starts = sortRowsBySlot(codes, n, 2, order);
    expect(Array.from(starts)).toEqual([0, n - Math.ceil(n / 7), n]);
    for (let k = 1; k < n; k++) if (k !== starts[1]) expect(order[k]! > order[k - 1]!).toBe(true);
    expect(order[starts[1]!]).toBe(0);
    expect(order[n - 1]).toBe(n - 1 - ((n - 1) % 7));
  });
});
