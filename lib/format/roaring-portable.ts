/**
 * Serialize a sorted set of u32 values in the portable Roaring format (RoaringFormatSpec),
 * byte for byte what `new RoaringBitmap32(values)`, `runOptimize()` and `serialize('portable')`
 * of the `roaring` package (CRoaring) produce: the same container choice (array up to 4096
 * values, else bitset; either becomes a run container when that is strictly smaller), the
 * same cookies, and offsets where CRoaring writes them.
 *
 * Why not call roaring: a bitmap part holds one bitmap per distinct value per fragment, and
 * for 1,000 values that is 1,000 constructions, run optimizations and serializations through
 * N-API per fragment, about 30 ms per million rows here; this writes the bytes directly from
 * the sorted offsets in about a tenth of that. Reading and combining bitmaps stays with roaring.
 * A test checks the output against roaring's on random sets.
 */

const SERIAL_COOKIE_NO_RUNCONTAINER = 12346;
const SERIAL_COOKIE = 12347;
const NO_OFFSET_THRESHOLD = 4;
const ARRAY_MAX = 4096;
const BITSET_BYTES = 8192;

/** Typed-array stores are in the host's byte order; the format's is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

const ARRAY = 1;
const BITSET = 2;
const RUN = 3;

/** Size of a one-value bitmap: no-run cookie, container count, one key/cardinality, one offset, one value. */
export const PORTABLE_SINGLE_BYTES = 18;

/**
 * Write the one-value bitmap {value} at `out[pos …]` (PORTABLE_SINGLE_BYTES bytes), as
 * serializePortable would: the common case of a high-cardinality column (one row per value
 * per fragment) without building the general case's per-container lists.
 */
export function writePortableSingle(out: Uint8Array, pos: number, value: number): void {
  const dv = new DataView(out.buffer, out.byteOffset + pos, PORTABLE_SINGLE_BYTES);
  dv.setUint32(0, SERIAL_COOKIE_NO_RUNCONTAINER, true);
  dv.setUint32(4, 1, true);
  dv.setUint16(8, value >>> 16, true);
  dv.setUint16(10, 0, true);
  dv.setUint32(12, 16, true);
  dv.setUint16(16, value & 0xffff, true);
}

/**
 * @param values - strictly ascending u32 values (row offsets); `values.subarray(start, end)` is serialized
 */
export function serializePortable(values: Uint32Array, start = 0, end = values.length): Uint8Array {
  if (end - start === 1) {
    const out = new Uint8Array(PORTABLE_SINGLE_BYTES);
    writePortableSingle(out, 0, values[start]!);
    return out;
  }
  // Pass 1: one container per distinct high 16 bits, with its cardinality and run count.
  const keys: number[] = [];
  const firsts: number[] = [];
  const cards: number[] = [];
  const runCounts: number[] = [];
  const types: number[] = [];
  const sizes: number[] = [];
  let hasRun = false;
  let payload = 0;
  for (let i = start; i < end; ) {
    const key = values[i]! >>> 16;
    // The container ends at the first value of the next key: binary search (values ascend).
    const next = (key + 1) * 65536;
    let j = i + 1;
    let hi = end;
    if (j < hi && values[hi - 1]! >= next) {
      while (j < hi) {
        const mid = (j + hi) >>> 1;
        if (values[mid]! < next) j = mid + 1;
        else hi = mid;
      }
    } else j = hi;
    const card = j - i;
    // Count runs only as far as a run container could still be the smaller form: it wins iff
    // 2 + 4·runs < the array's 2·card bytes (or the bitset's 8192).
    const maxRuns = Math.ceil(((card <= ARRAY_MAX ? 2 * card : BITSET_BYTES) - 2) / 4) - 1;
    let runs = 0;
    let prev = -2;
    for (let k = i; k < j && runs <= maxRuns; k++) {
      const lo = values[k]! & 0xffff;
      if (lo !== prev + 1) runs++;
      prev = lo;
    }
    const runBytes = 2 + 4 * runs;
    let type: number;
    let bytes: number;
    if (card <= ARRAY_MAX) {
      // CRoaring keeps an array unless the run form is strictly smaller than its 2·card bytes.
      if (runBytes < 2 * card) {
        type = RUN;
        bytes = runBytes;
      } else {
        type = ARRAY;
        bytes = 2 * card;
      }
    } else if (runBytes < BITSET_BYTES) {
      type = RUN;
      bytes = runBytes;
    } else {
      type = BITSET;
      bytes = BITSET_BYTES;
    }
    if (type === RUN) hasRun = true;
    keys.push(key);
    firsts.push(i);
    cards.push(card);
    runCounts.push(runs);
    types.push(type);
    sizes.push(bytes);
    payload += bytes;
    i = j;
  }

  const size = keys.length;
  const runFlagBytes = hasRun ? (size + 7) >> 3 : 0;
  const withOffsets = !hasRun || size >= NO_OFFSET_THRESHOLD;
  const header = (hasRun ? 4 + runFlagBytes : 8) + 4 * size + (withOffsets ? 4 * size : 0);
  const out = new Uint8Array(header + payload);
  const dv = new DataView(out.buffer);
  let out16: Uint16Array | undefined;
  let p = 0;
  if (hasRun) {
    dv.setUint32(p, (SERIAL_COOKIE | ((size - 1) << 16)) >>> 0, true);
    p += 4;
    for (let k = 0; k < size; k++) if (types[k] === RUN) out[p + (k >> 3)]! |= 1 << (k & 7);
    p += runFlagBytes;
  } else {
    dv.setUint32(p, SERIAL_COOKIE_NO_RUNCONTAINER, true);
    dv.setUint32(p + 4, size, true);
    p += 8;
  }
  for (let k = 0; k < size; k++) {
    dv.setUint16(p, keys[k]!, true);
    dv.setUint16(p + 2, cards[k]! - 1, true);
    p += 4;
  }
  if (withOffsets) {
    let offset = header;
    for (let k = 0; k < size; k++) {
      dv.setUint32(p, offset, true);
      p += 4;
      offset += sizes[k]!;
    }
  }

  // Pass 2: the containers.
  for (let k = 0; k < size; k++) {
    const from = firsts[k]!;
    const to = from + cards[k]!;
    switch (types[k]) {
      case ARRAY:
        if (LITTLE_ENDIAN && (p & 1) === 0) {
          // Straight through a Uint16Array on little-endian hosts (the common case): about
          // twice as fast as DataView stores. `out` is fresh, so its byteOffset is 0.
          const u16 = (out16 ??= new Uint16Array(out.buffer, 0, out.byteLength >> 1));
          let q = p >> 1;
          for (let i = from; i < to; i++) u16[q++] = values[i]! & 0xffff;
          p = q << 1;
        } else for (let i = from; i < to; i++, p += 2) dv.setUint16(p, values[i]! & 0xffff, true);
        break;
      case BITSET:
        for (let i = from; i < to; i++) {
          const lo = values[i]! & 0xffff;
          out[p + (lo >> 3)]! |= 1 << (lo & 7);
        }
        p += BITSET_BYTES;
        break;
      case RUN: {
        dv.setUint16(p, runCounts[k]!, true);
        p += 2;
        let runStart = values[from]! & 0xffff;
        let prev = runStart;
        for (let i = from + 1; i <= to; i++) {
          const lo = i < to ? values[i]! & 0xffff : -1;
          if (lo !== prev + 1) {
            dv.setUint16(p, runStart, true);
            dv.setUint16(p + 2, prev - runStart, true);
            p += 4;
            runStart = lo;
          }
          prev = lo;
        }
        break;
      }
    }
  }
  return out;
}

/** A growable run of u32 values (row offsets), filled by `appendPortableValues`. */
export class U32Builder {
  values = new Uint32Array(256);
  length = 0;

  /** Room for `n` more values. */
  reserve(n: number): void {
    if (this.length + n <= this.values.length) return;
    let size = this.values.length * 2;
    while (size < this.length + n) size *= 2;
    const grown = new Uint32Array(size);
    grown.set(this.values.subarray(0, this.length));
    this.values = grown;
  }

  /** The values so far (a view; valid until the next append). */
  view(): Uint32Array {
    return this.values.subarray(0, this.length);
  }
}

/**
 * Append the values of a portable Roaring bitmap (RoaringFormatSpec) to `out`, ascending.
 * Reading in JavaScript, where a query only needs the union of many small bitmaps: one native
 * bitmap per (value, fragment) would hold memory the garbage collector does not see until it
 * runs, and a `NOT IN` over thousands of values made thousands of them.
 *
 * @throws RangeError when the bytes are not a well-formed portable bitmap
 */
export function appendPortableValues(bytes: Uint8Array, out: U32Builder): void {
  const n = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
  const need = (end: number, what: string) => {
    if (end > n) throw new RangeError(`portable bitmap truncated in ${what} (${n} bytes)`);
  };
  need(4, 'cookie');
  const cookie = dv.getUint32(0, true);
  let pos = 4;
  let size: number;
  let runFlags = -1;
  if ((cookie & 0xffff) === SERIAL_COOKIE) {
    size = (cookie >>> 16) + 1;
    runFlags = pos;
    pos += (size + 7) >> 3;
  } else if (cookie === SERIAL_COOKIE_NO_RUNCONTAINER) {
    need(8, 'container count');
    size = dv.getUint32(4, true);
    pos = 8;
  } else throw new RangeError(`not a portable bitmap (cookie ${cookie})`);
  const header = pos;
  need(header + 4 * size, 'header');
  const hasOffsets = runFlags < 0 || size >= NO_OFFSET_THRESHOLD;
  pos = header + 4 * size + (hasOffsets ? 4 * size : 0);
  let previousKey = -1;
  for (let k = 0; k < size; k++) {
    const key = dv.getUint16(header + 4 * k, true);
    const card = dv.getUint16(header + 4 * k + 2, true) + 1;
    if (key <= previousKey) throw new RangeError('portable bitmap keys not ascending');
    previousKey = key;
    const high = key * 65536;
    const isRun = runFlags >= 0 && ((bytes[runFlags + (k >> 3)]! >> (k & 7)) & 1) === 1;
    out.reserve(card);
    const values = out.values;
    let w = out.length;
    if (isRun) {
      need(pos + 2, 'run count');
      const runs = dv.getUint16(pos, true);
      pos += 2;
      need(pos + 4 * runs, 'runs');
      for (let r = 0; r < runs; r++) {
        const start = dv.getUint16(pos, true);
        const end = start + dv.getUint16(pos + 2, true);
        pos += 4;
        if (end > 0xffff || w - out.length + end - start + 1 > card) throw new RangeError('portable bitmap run out of range');
        for (let v = start; v <= end; v++) values[w++] = high + v;
      }
    } else if (card <= ARRAY_MAX) {
      need(pos + 2 * card, 'array container');
      for (let i = 0; i < card; i++) values[w++] = high + dv.getUint16(pos + 2 * i, true);
      pos += 2 * card;
    } else {
      need(pos + BITSET_BYTES, 'bitset container');
      for (let b = 0; b < BITSET_BYTES; b++) {
        let byte = bytes[pos + b]!;
        while (byte !== 0) {
          const bit = 31 - Math.clz32(byte & -byte);
          if (w - out.length >= card) throw new RangeError('portable bitmap bitset holds more values than its cardinality');
          values[w++] = high + b * 8 + bit;
          byte &= byte - 1;
        }
      }
      pos += BITSET_BYTES;
    }
    if (w - out.length !== card) throw new RangeError(`portable bitmap container ${k} holds ${w - out.length} values, its header says ${card}`);
    out.length = w;
  }
  if (pos !== n) throw new RangeError(`portable bitmap has ${n - pos} trailing bytes`);
}
