/**
 * The hand-written portable Roaring serializer used when training bitmap parts must produce
 * exactly the bytes roaring (CRoaring) produces after runOptimize(): same container choice,
 * cookies and offsets. Checked on random sets shaped to hit every container kind and the
 * size boundaries between them.
 */
import fc from 'fast-check';
import roaring from 'roaring';
import { describe, expect, it } from 'vitest';
import { appendPortableValues, serializePortable, U32Builder } from '../../lib/format/roaring-portable.js';

const { RoaringBitmap32 } = roaring;

function viaRoaring(sorted: Uint32Array): Buffer {
  const b = new RoaringBitmap32(sorted);
  b.runOptimize();
  return Buffer.from(b.serialize('portable'));
}

function sortedUnique(values: number[]): Uint32Array {
  return Uint32Array.from(new Set(values.map((v) => v >>> 0))).sort();
}

/** Runs of `length` values, each followed by a gap, from `start`. */
function runs(start: number, count: number, length: number, gap: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < count; r++) for (let i = 0; i < length; i++) out.push(start + r * (length + gap) + i);
  return out;
}

describe('serializePortable', () => {
  it('equals roaring runOptimize + serialize("portable") on random sets of every shape', () => {
    const chunk = fc.integer({ min: 0, max: 70 }).map((c) => c * 65536);
    const shape = fc.oneof(
      // sparse anywhere in u32 (array containers, many keys)
      fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 300 }),
      // dense in one or two chunks (bitset containers, > 4096 values)
      fc.tuple(chunk, fc.integer({ min: 3000, max: 20000 })).map(([base, n]) => Array.from({ length: n }, (_, i) => base + ((i * 7919) % 65536))),
      // runs of random lengths and gaps (run containers, from arrays and from bitsets)
      fc.array(fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 50 })), { maxLength: 40 }).map((rs) => {
        const out: number[] = [];
        let x = 0;
        for (const [len, gap] of rs) {
          for (let i = 0; i < len; i++) out.push(x + i);
          x += len + gap;
        }
        return out;
      }),
      // tiny sets, where run vs array is decided by a few bytes
      fc.array(fc.integer({ min: 65530, max: 65545 }), { maxLength: 8 }),
    );
    fc.assert(
      fc.property(fc.array(shape, { minLength: 1, maxLength: 3 }), (parts) => {
        const sorted = sortedUnique(parts.flat());
        expect(Buffer.from(serializePortable(sorted)).equals(viaRoaring(sorted))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('matches at the container-size boundaries: 4096 vs 4097 values, 2047 vs 2048 runs, 3 and 4 consecutive values, empty', () => {
    const cases: number[][] = [
      [],
      [0],
      [0xffffffff],
      [1, 2, 3],
      [1, 2, 3, 4],
      Array.from({ length: 4096 }, (_, i) => i * 16),
      Array.from({ length: 4097 }, (_, i) => i * 15),
      runs(0, 2047, 10, 2),
      runs(0, 2048, 10, 2),
      runs(0, 2048, 31, 1),
      Array.from({ length: 65536 }, (_, i) => i),
      Array.from({ length: 65536 * 3 }, (_, i) => i + 5),
    ];
    for (const c of cases) {
      const sorted = sortedUnique(c);
      const got = Buffer.from(serializePortable(sorted));
      expect(got.equals(viaRoaring(sorted)), `${c.length} values`).toBe(true);
      // And it reads back as the same set.
      expect([...RoaringBitmap32.deserialize(got, 'portable').toUint32Array()]).toEqual([...sorted]);
    }
  });

  it('serializes a subarray range without copying it out first', () => {
    const all = Uint32Array.from([5, 6, 7, 100, 200, 70000, 70001]);
    expect(Buffer.from(serializePortable(all, 2, 6)).equals(viaRoaring(all.subarray(2, 6)))).toBe(true);
  });
});

describe('appendPortableValues (reading portable bitmaps in JavaScript, for query unions)', () => {
  const shapes = fc.oneof(
    fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 300 }),
    fc.tuple(fc.integer({ min: 0, max: 70 }).map((c) => c * 65536), fc.integer({ min: 3000, max: 20000 })).map(([base, n]) => Array.from({ length: n }, (_, i) => base + ((i * 7919) % 65536))),
    fc.array(fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 50 })), { maxLength: 40 }).map((rs) => {
      const out: number[] = [];
      let at = 0;
      for (const [len, gap] of rs) {
        for (let i = 0; i < len; i++) out.push(at + i);
        at += len + gap;
      }
      return out;
    }),
    fc.constantFrom([0], [0xffffffff], [65535, 65536], runs(0, 1, 65536, 0), runs(5, 3, 4096, 1)),
  );

  it('reads back exactly the values roaring serialized, with and without run containers, appending after what is there', () => {
    fc.assert(
      fc.property(shapes, fc.boolean(), fc.array(fc.nat(), { maxLength: 5 }), (values, optimize, before) => {
        const sorted = sortedUnique(values);
        const b = new RoaringBitmap32(sorted);
        if (optimize) b.runOptimize();
        const out = new U32Builder();
        out.reserve(before.length);
        out.values.set(before);
        out.length = before.length;
        appendPortableValues(new Uint8Array(b.serialize('portable')), out);
        expect([...out.view()]).toEqual([...before, ...sorted]);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses malformed bytes with a RangeError, never reading past them', () => {
    const good = new Uint8Array(serializePortable(Uint32Array.from(runs(3, 4, 100, 7))));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: good.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), fc.boolean(), (at, xor, cut) => {
        const bad = cut ? good.slice(0, at) : good.slice();
        if (!cut) bad[at]! ^= xor;
        const out = new U32Builder();
        try {
          appendPortableValues(bad, out);
        } catch (err) {
          expect(err).toBeInstanceOf(RangeError);
          return;
        }
        // A flip that still decodes (a value byte) decodes to as many values as its headers say.
        expect(out.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});
