/**
 * The serialized row set must be byte-compatible with Lance's `RowIdTreeMap` (so Lance can
 * read our bitmaps) and must fail cleanly on damaged bytes. Compatibility is checked against
 * Lance's own test vector and against a decoder written independently from the
 * RoaringFormatSpec, not against the `roaring` package reading its own output.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IndexFileError } from '../../lib/errors.js';
import { RoaringBitmap32, type RowSet, decodeRowSet, encodeRowSet, splitEntries } from '../../lib/format/rowset.js';
import {
  type ContainerKind,
  NO_OFFSET_THRESHOLD,
  SERIAL_COOKIE,
  SERIAL_COOKIE_NO_RUNCONTAINER,
  decodePortableRoaring,
  decodeRowSetIndependently,
  parsePortableRoaring,
  splitRowSetIndependently,
} from '../support/roaring-spec.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const LANCE_VECTOR = hex('01000000 00000000 12000000 3a300000 01000000 00000000 10000000 0300');

const U32_MAX = 2 ** 32 - 1;

function bitmapOf(values: readonly number[]) {
  return new RoaringBitmap32(Uint32Array.from(values));
}

function toArrays(set: RowSet): [number, number[]][] {
  return [...set].map(([id, b]) => [id, b.toArray()]);
}

describe('row set: Lance test vector', () => {
  it('encodes {fragment 0, offset 3} to exactly the 30 bytes in Lance test data', () => {
    const bytes = encodeRowSet(new Map([[0, bitmapOf([3])]]));
    expect(Buffer.from(bytes).toString('hex')).toBe(Buffer.from(LANCE_VECTOR).toString('hex'));
    expect(bytes.byteLength).toBe(30);
  });

  it('decodes the Lance vector back to {fragment 0, offset 3}, with both decoders', () => {
    expect(toArrays(decodeRowSet(LANCE_VECTOR))).toEqual([[0, [3]]]);
    expect([...decodeRowSetIndependently(LANCE_VECTOR)]).toEqual([[0, [3]]]);
  });
});

// ---------------------------------------------------------------------------------------------
// random row sets, shaped to produce every container kind

type Chunk =
  | { kind: 'range'; start: number; length: number }
  | { kind: 'dense'; key: number; count: number; seed: number }
  | { kind: 'sparse'; values: number[] };

const offsetArb = fc.oneof(fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: U32_MAX }), fc.constantFrom(0, 65_535, 65_536, 2 ** 31, U32_MAX - 1, U32_MAX));

const chunkArb: fc.Arbitrary<Chunk> = fc.oneof(
  // Long runs: run containers once runOptimize() sees them, full 65536-value containers too.
  fc.record({ kind: fc.constant('range' as const), start: offsetArb, length: fc.integer({ min: 1, max: 140_000 }) }),
  // More than 4096 scattered values under one key: a bitset container.
  fc.record({ kind: fc.constant('dense' as const), key: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom(32_768, 65_535)), count: fc.integer({ min: 3000, max: 20_000 }), seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }) }),
  fc.record({ kind: fc.constant('sparse' as const), values: fc.array(offsetArb, { maxLength: 30 }) }),
);

function chunkValues(c: Chunk, out: Set<number>): void {
  switch (c.kind) {
    case 'range': {
      const end = Math.min(U32_MAX, c.start + c.length - 1);
      for (let v = c.start; v <= end; v++) out.add(v);
      break;
    }
    case 'dense': {
      let x = c.seed;
      for (let i = 0; i < c.count; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out.add(c.key * 65_536 + ((x >>> 0) & 0xffff));
      }
      break;
    }
    case 'sparse':
      for (const v of c.values) out.add(v);
  }
}

interface Case {
  /** fragment id -> sorted offsets (possibly empty: encodeRowSet must skip it). */
  expected: Map<number, number[]>;
  runOptimize: Set<number>;
}

const fragmentIdArb = fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: U32_MAX }), fc.constantFrom(2 ** 21, 2 ** 31, U32_MAX));

const caseArb: fc.Arbitrary<Case> = fc
  .uniqueArray(fc.record({ id: fragmentIdArb, chunks: fc.array(chunkArb, { maxLength: 4 }), runOptimize: fc.boolean() }), { selector: (f) => f.id, maxLength: 5 })
  .map((frags) => {
    const expected = new Map<number, number[]>();
    const runOptimize = new Set<number>();
    for (const f of frags) {
      const values = new Set<number>();
      for (const c of f.chunks) chunkValues(c, values);
      expected.set(f.id, [...values].sort((a, b) => a - b));
      if (f.runOptimize) runOptimize.add(f.id);
    }
    return { expected, runOptimize };
  });

function buildRowSet(c: Case): RowSet {
  const set: RowSet = new Map();
  for (const [id, values] of c.expected) {
    const b = bitmapOf(values);
    if (c.runOptimize.has(id)) b.runOptimize();
    set.set(id, b);
  }
  return set;
}

const nonEmptySorted = (c: Case) => [...c.expected].filter(([, v]) => v.length > 0).sort(([a], [b]) => a - b);

/** Deep equality on 100k-element arrays is slow in expect(); compare by hand, report the first difference. */
function expectSameEntries(actual: [number, ArrayLike<number>][], expected: [number, number[]][]): void {
  expect(actual.map(([id]) => id)).toEqual(expected.map(([id]) => id));
  actual.forEach(([id, values], i) => {
    const want = expected[i]![1];
    const n = Math.max(values.length, want.length);
    for (let j = 0; j < n; j++) {
      if (values[j] !== want[j]) throw new Error(`fragment ${id}: offset #${j} is ${values[j]}, expected ${want[j]} (${values.length} vs ${want.length} offsets)`);
    }
  });
}

describe('row set: encodeRowSet output read by an independent RoaringFormatSpec decoder', () => {
  it('decodes to exactly the generated offsets per fragment, fragments ascending, empty ones omitted', () => {
    const kinds = new Set<ContainerKind>();
    const layouts = new Set<string>();
    fc.assert(
      fc.property(caseArb, (c) => {
        const bytes = encodeRowSet(buildRowSet(c));
        expectSameEntries([...decodeRowSetIndependently(bytes)], nonEmptySorted(c));
        for (const e of splitRowSetIndependently(bytes)) {
          const parsed = parsePortableRoaring(e.bytes);
          for (const k of parsed.containers) kinds.add(k.kind);
          layouts.add(`${parsed.cookie}/${parsed.hasOffsets ? 'offsets' : 'no-offsets'}`);
        }
      }),
      { numRuns: 120 },
    );
    // Without these the property above would not have exercised the hard parts of the format.
    expect([...kinds].sort()).toEqual(['array', 'bitset', 'run']);
    expect([...layouts].sort()).toEqual([`${SERIAL_COOKIE_NO_RUNCONTAINER}/offsets`, `${SERIAL_COOKIE}/no-offsets`, `${SERIAL_COOKIE}/offsets`].sort());
  });

  it('round-trips through decodeRowSet to the same offsets', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const decoded = decodeRowSet(encodeRowSet(buildRowSet(c)));
        expectSameEntries([...decoded].map(([id, b]) => [id, b.toUint32Array()]), nonEmptySorted(c));
      }),
      { numRuns: 60 },
    );
  });

  it('omits the offset header of run-format bitmaps below NO_OFFSET_THRESHOLD containers and writes it at the threshold', () => {
    for (const containers of [1, NO_OFFSET_THRESHOLD - 1, NO_OFFSET_THRESHOLD, NO_OFFSET_THRESHOLD + 2]) {
      const values: number[] = [];
      for (let k = 0; k < containers; k++) for (let v = 0; v < 1000; v++) values.push(k * 65_536 + 17 + v);
      const b = bitmapOf(values);
      b.runOptimize();
      const bytes = encodeRowSet(new Map([[U32_MAX, b]]));
      const [entry] = splitRowSetIndependently(bytes);
      const parsed = parsePortableRoaring(entry!.bytes);
      expect(parsed.cookie).toBe(SERIAL_COOKIE);
      expect(parsed.hasOffsets).toBe(containers >= NO_OFFSET_THRESHOLD);
      expect(decodePortableRoaring(entry!.bytes)).toEqual(values);
    }
  });

  it('encodes an empty row set as a zero entry count', () => {
    expect(Buffer.from(encodeRowSet(new Map())).toString('hex')).toBe('00000000');
    expect(Buffer.from(encodeRowSet(new Map([[4, new RoaringBitmap32()]]))).toString('hex')).toBe('00000000');
    expect(decodeRowSet(hex('00000000')).size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// damaged bytes

function expectIndexFileError(f: () => unknown): void {
  let thrown: unknown;
  try {
    f();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(IndexFileError);
}

const sampleBytes = () =>
  encodeRowSet(
    new Map([
      [0, bitmapOf([3, 70_000])],
      [9, (() => {
        const b = RoaringBitmap32.fromRange(0, 70_000);
        b.runOptimize();
        return b;
      })()],
      [U32_MAX, bitmapOf(Array.from({ length: 5000 }, (_, i) => i * 3))],
    ]),
  );

describe('row set: corrupt or truncated bytes raise IndexFileError', () => {
  it('rejects every truncation of a valid encoding in splitEntries and decodeRowSet', () => {
    const bytes = sampleBytes();
    for (let len = 0; len < bytes.byteLength; len++) {
      const cut = bytes.subarray(0, len);
      expectIndexFileError(() => splitEntries(cut));
      expectIndexFileError(() => decodeRowSet(cut));
    }
  });

  it('rejects trailing bytes, overlong counts and lengths, and unsorted or repeated fragment ids', () => {
    expectIndexFileError(() => decodeRowSet(Uint8Array.from([...LANCE_VECTOR, 0])));
    expectIndexFileError(() => decodeRowSet(hex('ffffffff')));
    const twoEntries = hex('02000000 00000000 12000000 3a300000 01000000 00000000 10000000 0300');
    expectIndexFileError(() => decodeRowSet(twoEntries));
    const hugeLen = hex('01000000 00000000 ffffffff 3a300000 01000000 00000000 10000000 0300');
    expectIndexFileError(() => decodeRowSet(hugeLen));
    const entry = (id: string) => `${id} 12000000 3a300000 01000000 00000000 10000000 0300`;
    expectIndexFileError(() => decodeRowSet(hex(`02000000 ${entry('05000000')} ${entry('04000000')}`)));
    expectIndexFileError(() => decodeRowSet(hex(`02000000 ${entry('05000000')} ${entry('05000000')}`)));
    // The same two entries in ascending order are fine, so the failures above are about order.
    expect(toArrays(decodeRowSet(hex(`02000000 ${entry('04000000')} ${entry('05000000')}`)))).toEqual([
      [4, [3]],
      [5, [3]],
    ]);
  });

  it('rejects a damaged roaring payload (bad cookie, absurd container count, cut-short container)', () => {
    expectIndexFileError(() => decodeRowSet(hex('01000000 00000000 12000000 3c300000 01000000 00000000 10000000 0300')));
    expectIndexFileError(() => decodeRowSet(hex('01000000 00000000 12000000 3a300000 ffffff7f 00000000 10000000 0300')));
    expectIndexFileError(() => decodeRowSet(hex('01000000 00000000 12000000 3a300000 01000000 00000300 10000000 0300')));
    expectIndexFileError(() => decodeRowSet(hex('01000000 00000000 02000000 3a30')));
  });

  it('expands a whole-fragment entry (byte_len 0) only when the fragment row count is known', () => {
    const whole = hex('01000000 07000000 00000000');
    expectIndexFileError(() => decodeRowSet(whole));
    expectIndexFileError(() => decodeRowSet(whole, () => undefined));
    expect(toArrays(decodeRowSet(whole, (id) => (id === 7 ? 4 : undefined)))).toEqual([[7, [0, 1, 2, 3]]]);
  });

  it('never throws anything but IndexFileError on arbitrary byte damage (flip, overwrite, cut, append)', () => {
    const base = sampleBytes();
    fc.assert(
      fc.property(
        fc.array(fc.record({ pos: fc.nat({ max: base.byteLength - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat({ max: base.byteLength }), { nil: undefined }),
        fc.uint8Array({ maxLength: 8 }),
        (edits, cut, tail) => {
          const bytes = Uint8Array.from(base);
          for (const e of edits) bytes[e.pos] = e.value;
          const damaged = Uint8Array.from([...bytes.subarray(0, cut ?? bytes.byteLength), ...tail]);
          for (const f of [() => splitEntries(damaged), () => decodeRowSet(damaged)]) {
            try {
              f();
            } catch (err) {
              expect(err).toBeInstanceOf(IndexFileError);
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('rejects random garbage with IndexFileError or decodes it, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeRowSet(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(IndexFileError);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('independent decoder strictness (so its agreement means something)', () => {
  it('rejects trailing bytes, truncation, bad cookies, wrong offsets and unsorted keys', () => {
    const roaring = LANCE_VECTOR.subarray(12);
    expect(decodePortableRoaring(roaring)).toEqual([3]);
    expect(() => decodePortableRoaring(Uint8Array.from([...roaring, 0]))).toThrow(/trailing/);
    expect(() => decodePortableRoaring(roaring.subarray(0, roaring.length - 1))).toThrow(/truncated/);
    expect(() => decodePortableRoaring(hex('3c300000 01000000 00000000 10000000 0300'))).toThrow(/cookie/);
    expect(() => decodePortableRoaring(hex('3a300000 01000000 00000000 11000000 0300'))).toThrow(/offset/);
    expect(() => decodePortableRoaring(hex('3a300000 02000000 01000000 00000000 18000000 1a000000 0300 0300'))).toThrow(/ascending/);
    expect(() => decodeRowSetIndependently(hex('01000000 07000000 00000000'))).toThrow(/whole-fragment/);
  });

  it('decodes a run container with the spec layout (u16 count, then start and length-1 pairs)', () => {
    // cookie 12347 with 1 container, run flag set, key 0 card-1 = 5, 1 run: start 10, length-1 5.
    expect(decodePortableRoaring(hex('3b300000 01 0000 0500 0100 0a00 0500'))).toEqual([10, 11, 12, 13, 14, 15]);
  });
});
