/**
 * The hot loops: walking one column of one record batch through its typed arrays and
 * validity bitmap. Two jobs:
 * - `SlotAssigner`: give each row the slot id of its distinct value (bitmap index);
 * - `segmentStats`: null count, NaN count, min and max of a row range (zone map).
 * No per-row objects and no `vector.get(i)` here (platform-notes.md: 7–80× slower).
 */
import type * as arrow from 'apache-arrow';
import { canonicalKey, compareBytes, compareFloat, float16ToNumber, type ColumnType, type KeyValue } from '../format/column-type.js';

/** Slot 0 is reserved for null; distinct values get slots 1, 2, … in first-seen order. */
export const NULL_SLOT = 0;

const F16_VALUE = (() => {
  const t = new Float64Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = float16ToNumber(i);
  return t;
})();

function isValidAt(bitmap: Uint8Array | undefined, j: number): boolean {
  return !bitmap || ((bitmap[j >> 3]! >> (j & 7)) & 1) === 1;
}

function nullBitmapOf(data: arrow.Data): Uint8Array | undefined {
  return data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 ? data.nullBitmap : undefined;
}

// ---------------------------------------------------------------------------------------------
// Distinct values → slots

export interface SlotAssigner {
  /** Write the slot of rows [0, data.length) into out[outOffset …]. */
  assign(data: arrow.Data, out: Int32Array, outOffset: number): void;
  /** Number of slots in use, the null slot included. */
  readonly slotCount: number;
  /** The canonical key of a slot (never called for the null slot). */
  value(slot: number): KeyValue;
  /** The non-null slots in ascending order of their values. */
  sortedSlots(): Int32Array;
}

/** Slots 1 … count-1 sorted by their values with `cmp` (the generic way: a comparator per pair). */
function sortByValue(count: number, value: (slot: number) => KeyValue, cmp: (a: KeyValue, b: KeyValue) => number): Int32Array {
  const values = Array.from({ length: count - 1 }, (_, i) => value(i + 1));
  const idx = Array.from({ length: count - 1 }, (_, i) => i);
  idx.sort((x, y) => cmp(values[x]!, values[y]!));
  return Int32Array.from(idx, (i) => i + 1);
}

export function createSlotAssigner(ct: ColumnType): SlotAssigner {
  switch (ct.kind) {
    case 'int':
    case 'float':
      return new NumberSlots(ct.kind === 'float');
    case 'float16':
      return new Float16Slots();
    case 'i64':
    case 'u64':
      return new Int64Slots(ct.kind === 'u64');
    case 'bytes':
      return new BytesSlots();
    case 'bool':
      return new BoolSlots();
  }
}

class NumberSlots implements SlotAssigner {
  private readonly map = new Map<number, number>();
  private readonly values: number[] = [NaN];
  constructor(private readonly isFloat: boolean) {}
  get slotCount() {
    return this.values.length;
  }
  value(slot: number): KeyValue {
    return this.values[slot]!;
  }
  sortedSlots(): Int32Array {
    // Canonical keys (no -0, one NaN) sort natively in a Float64Array (NaN last, as in the
    // column order); each value then names its slot through the map.
    const sorted = Float64Array.from(this.values.slice(1)).sort();
    return Int32Array.from(sorted, (v) => this.map.get(v)!);
  }
  assign(data: arrow.Data, out: Int32Array, outOffset: number): void {
    const values = data.values as Int32Array | Float64Array;
    const off = data.offset;
    const n = data.length;
    const nulls = nullBitmapOf(data);
    const map = this.map;
    if (!this.isFloat && n >= 4096 && this.assignByTable(values, off, n, nulls, out, outOffset)) return;
    // Map keys use SameValueZero: every NaN is one key and -0 is +0, exactly the canonical
    // key rule, so floats need no special case here.
    for (let i = 0; i < n; i++) {
      const j = off + i;
      if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) {
        out[outOffset + i] = NULL_SLOT;
        continue;
      }
      const v = values[j]!;
      let s = map.get(v);
      if (s === undefined) {
        s = this.values.length;
        map.set(v, s);
        this.values.push(this.isFloat ? (canonicalKey('float', v) as number) : v);
      }
      out[outOffset + i] = s;
    }
  }

  /**
   * Low-cardinality integers: when the batch's values span at most 64K, a lookup table indexed
   * by `value - min` replaces a Map probe per row (the Map is consulted once per distinct value).
   */
  private assignByTable(values: Int32Array | Float64Array, off: number, n: number, nulls: Uint8Array | undefined, out: Int32Array, outOffset: number): boolean {
    // n ≥ 4096 here. Null rows hold arbitrary values; they only widen the span.
    let min = values[off]!;
    let max = min;
    for (let j = off + 1, end = off + n; j < end; j++) {
      const v = values[j]!;
      if (v < min) min = v;
      else if (v > max) max = v;
    }
    if (max - min > 65535) return false;
    const lut = (this.lut ??= new Int32Array(65536));
    lut.fill(-1, 0, max - min + 1);
    // `(v - min) | 0` keeps the table index a small integer (exact: it is in [0, 65535]).
    if (!nulls) {
      for (let i = 0; i < n; i++) {
        const k = (values[off + i]! - min) | 0;
        let s = lut[k]!;
        if (s < 0) lut[k] = s = this.slotOf(values[off + i]!);
        out[outOffset + i] = s;
      }
      return true;
    }
    for (let i = 0; i < n; i++) {
      const j = off + i;
      if (((nulls[j >> 3]! >> (j & 7)) & 1) === 0) {
        out[outOffset + i] = NULL_SLOT;
        continue;
      }
      const k = (values[j]! - min) | 0;
      let s = lut[k]!;
      if (s < 0) lut[k] = s = this.slotOf(values[j]!);
      out[outOffset + i] = s;
    }
    return true;
  }
  private lut?: Int32Array;

  /** The slot of an integer value, a new one if it is new (off the hot loop: once per value and batch). */
  private slotOf(v: number): number {
    let s = this.map.get(v);
    if (s === undefined) {
      s = this.values.length;
      this.map.set(v, s);
      this.values.push(v);
    }
    return s;
  }
}

class Float16Slots implements SlotAssigner {
  private readonly lut = new Int32Array(65536).fill(-1);
  private readonly values: number[] = [NaN];
  get slotCount() {
    return this.values.length;
  }
  value(slot: number): KeyValue {
    return this.values[slot]!;
  }
  sortedSlots(): Int32Array {
    return sortByValue(this.values.length, (s) => this.values[s]!, (a, b) => compareFloat(a as number, b as number));
  }
  assign(data: arrow.Data, out: Int32Array, outOffset: number): void {
    const bits = data.values as Uint16Array;
    const off = data.offset;
    const nulls = nullBitmapOf(data);
    for (let i = 0; i < data.length; i++) {
      const j = off + i;
      if (!isValidAt(nulls, j)) {
        out[outOffset + i] = NULL_SLOT;
        continue;
      }
      let b = bits[j]!;
      if ((b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0) b = 0x7e00;
      else if (b === 0x8000) b = 0;
      let s = this.lut[b]!;
      if (s < 0) {
        s = this.values.length;
        this.lut[b] = s;
        this.values.push(F16_VALUE[b]!);
      }
      out[outOffset + i] = s;
    }
  }
}

/**
 * 64-bit integers keyed by their two 32-bit words in an open-addressing table over typed
 * arrays: no BigInt and no Map entry per distinct value (a Map with heap-number keys cost
 * about 110 bytes per value; this, about 24), and keys stored so that a BigInt64Array view of
 * them sorts natively.
 */
class Int64Slots implements SlotAssigner {
  /** Key of slot s: words 2s (low) and 2s+1 (high); slot 0 (null) is unused. */
  private words = new Int32Array(2 * 1024);
  private table = new Int32Array(2048);
  private mask = 2047;
  private count = 1;
  constructor(private readonly unsigned: boolean) {}
  get slotCount() {
    return this.count;
  }
  value(slot: number): KeyValue {
    const v = (BigInt(this.words[2 * slot + 1]!) << 32n) | BigInt(this.words[2 * slot]! >>> 0);
    return this.unsigned ? BigInt.asUintN(64, v) : v;
  }
  sortedSlots(): Int32Array {
    const n = this.count - 1;
    const keys = this.unsigned ? new BigUint64Array(this.words.buffer, 8, n).slice() : new BigInt64Array(this.words.buffer, 8, n).slice();
    keys.sort();
    const out = new Int32Array(n);
    const w = new Int32Array(keys.buffer);
    for (let i = 0; i < n; i++) out[i] = this.find(w[2 * i]!, w[2 * i + 1]!);
    return out;
  }
  assign(data: arrow.Data, out: Int32Array, outOffset: number): void {
    const big = data.values as BigInt64Array | BigUint64Array;
    const words = new Int32Array(big.buffer, big.byteOffset, big.length * 2);
    const off = data.offset;
    const nulls = nullBitmapOf(data);
    for (let i = 0; i < data.length; i++) {
      const j = off + i;
      if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) {
        out[outOffset + i] = NULL_SLOT;
        continue;
      }
      out[outOffset + i] = this.slotOf(words[2 * j]!, words[2 * j + 1]!);
    }
  }

  private slotOf(lo: number, hi: number): number {
    const keys = this.words;
    let p = hash64(lo, hi) & this.mask;
    for (;;) {
      const s = this.table[p]!;
      if (s === 0) break;
      if (keys[2 * s] === lo && keys[2 * s + 1] === hi) return s;
      p = (p + 1) & this.mask;
    }
    const s = this.count++;
    if (2 * s + 1 >= keys.length) {
      const grown = new Int32Array(keys.length * 2);
      grown.set(keys);
      this.words = grown;
    }
    this.words[2 * s] = lo;
    this.words[2 * s + 1] = hi;
    this.table[p] = s;
    if (this.count * 2 > this.table.length) this.rehash();
    return s;
  }

  private find(lo: number, hi: number): number {
    let p = hash64(lo, hi) & this.mask;
    for (;;) {
      const s = this.table[p]!;
      if (s === 0 || (this.words[2 * s] === lo && this.words[2 * s + 1] === hi)) return s;
      p = (p + 1) & this.mask;
    }
  }

  private rehash(): void {
    const size = this.table.length * 2;
    this.table = new Int32Array(size);
    this.mask = size - 1;
    for (let s = 1; s < this.count; s++) {
      let p = hash64(this.words[2 * s]!, this.words[2 * s + 1]!) & this.mask;
      while (this.table[p] !== 0) p = (p + 1) & this.mask;
      this.table[p] = s;
    }
  }
}

/** A 32-bit mix of a 64-bit key's words (multiply-xorshift), enough to spread sequential ids. */
function hash64(lo: number, hi: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

class BoolSlots implements SlotAssigner {
  private readonly slotOf = [-1, -1];
  private readonly values: boolean[] = [false];
  get slotCount() {
    return this.values.length;
  }
  value(slot: number): KeyValue {
    return this.values[slot]!;
  }
  sortedSlots(): Int32Array {
    return Int32Array.from([this.slotOf[0]!, this.slotOf[1]!].filter((s) => s > 0));
  }
  assign(data: arrow.Data, out: Int32Array, outOffset: number): void {
    const bits = data.values as Uint8Array;
    const off = data.offset;
    const nulls = nullBitmapOf(data);
    for (let i = 0; i < data.length; i++) {
      const j = off + i;
      if (!isValidAt(nulls, j)) {
        out[outOffset + i] = NULL_SLOT;
        continue;
      }
      const b = (bits[j >> 3]! >> (j & 7)) & 1;
      let s = this.slotOf[b]!;
      if (s < 0) {
        s = this.values.length;
        this.slotOf[b] = s;
        this.values.push(b === 1);
      }
      out[outOffset + i] = s;
    }
  }
}

/**
 * Open-addressing hash table over byte strings, so utf8/binary values are never decoded
 * into JS strings. Keys live in one growing arena.
 */
export class BytesTable {
  private arena = new Uint8Array(1 << 16);
  private arenaUsed = 0;
  private starts = new Int32Array(1024);
  private lens = new Int32Array(1024);
  private hashes = new Int32Array(1024);
  private table = new Int32Array(2048);
  private mask = 2047;
  /** Slot ids in use start at 1 (0 is the null slot). */
  count = 1;

  lookupOrInsert(bytes: Uint8Array, start: number, end: number): number {
    let h = 0x811c9dc5 | 0;
    for (let k = start; k < end; k++) h = Math.imul(h ^ bytes[k]!, 0x01000193);
    const len = end - start;
    let p = h & this.mask;
    for (;;) {
      const s = this.table[p]!;
      if (s === 0) break;
      if (this.hashes[s] === h && this.lens[s] === len) {
        const a = this.starts[s]!;
        let k = 0;
        while (k < len && this.arena[a + k] === bytes[start + k]) k++;
        if (k === len) return s;
      }
      p = (p + 1) & this.mask;
    }
    const s = this.count++;
    if (s >= this.starts.length) this.growSlots();
    if (this.arenaUsed + len > this.arena.length) this.growArena(len);
    this.arena.set(bytes.subarray(start, end), this.arenaUsed);
    this.starts[s] = this.arenaUsed;
    this.lens[s] = len;
    this.hashes[s] = h;
    this.arenaUsed += len;
    this.table[p] = s;
    if (this.count * 2 > this.table.length) this.rehash();
    return s;
  }

  value(slot: number): Uint8Array {
    const a = this.starts[slot]!;
    return this.arena.slice(a, a + this.lens[slot]!);
  }

  private growSlots() {
    const n = this.starts.length * 2;
    const grow = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.starts = grow(this.starts);
    this.lens = grow(this.lens);
    this.hashes = grow(this.hashes);
  }

  private growArena(need: number) {
    let n = this.arena.length * 2;
    while (n < this.arenaUsed + need) n *= 2;
    const b = new Uint8Array(n);
    b.set(this.arena.subarray(0, this.arenaUsed));
    this.arena = b;
  }

  private rehash() {
    const size = this.table.length * 2;
    this.table = new Int32Array(size);
    this.mask = size - 1;
    for (let s = 1; s < this.count; s++) {
      let p = this.hashes[s]! & this.mask;
      while (this.table[p] !== 0) p = (p + 1) & this.mask;
      this.table[p] = s;
    }
  }
}

class BytesSlots implements SlotAssigner {
  private readonly table = new BytesTable();
  get slotCount() {
    return this.table.count;
  }
  value(slot: number): KeyValue {
    return this.table.value(slot);
  }
  sortedSlots(): Int32Array {
    return sortByValue(this.table.count, (s) => this.table.value(s), (a, b) => compareBytes(a as Uint8Array, b as Uint8Array));
  }
  assign(data: arrow.Data, out: Int32Array, outOffset: number): void {
    const off = data.offset;
    const nulls = nullBitmapOf(data);
    if (data.dictionary) {
      // Resolve each dictionary entry once, then map codes through a small array.
      const dictSlots = this.resolveDictionary(data.dictionary);
      const codes = data.values as Int32Array;
      for (let i = 0; i < data.length; i++) {
        const j = off + i;
        out[outOffset + i] = isValidAt(nulls, j) ? dictSlots[codes[j]!]! : NULL_SLOT;
      }
      return;
    }
    const offsets = data.valueOffsets as Int32Array | BigInt64Array;
    const bytes = data.values as Uint8Array;
    const table = this.table;
    if (offsets instanceof BigInt64Array) {
      for (let i = 0; i < data.length; i++) {
        const j = off + i;
        out[outOffset + i] = isValidAt(nulls, j) ? table.lookupOrInsert(bytes, Number(offsets[j]!), Number(offsets[j + 1]!)) : NULL_SLOT;
      }
      return;
    }
    for (let i = 0; i < data.length; i++) {
      const j = off + i;
      if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) {
        out[outOffset + i] = NULL_SLOT;
        continue;
      }
      out[outOffset + i] = table.lookupOrInsert(bytes, offsets[j]!, offsets[j + 1]!);
    }
  }

  private resolveDictionary(dict: arrow.Vector): Int32Array {
    const slots = new Int32Array(dict.length);
    let base = 0;
    for (const d of dict.data) {
      const offsets = d.valueOffsets as Int32Array | BigInt64Array;
      const bytes = d.values as Uint8Array;
      const dn = nullBitmapOf(d);
      for (let i = 0; i < d.length; i++) {
        const j = d.offset + i;
        slots[base + i] = isValidAt(dn, j) ? this.table.lookupOrInsert(bytes, Number(offsets[j]!), Number(offsets[j + 1]!)) : NULL_SLOT;
      }
      base += d.length;
    }
    return slots;
  }
}

// ---------------------------------------------------------------------------------------------
// Zone statistics

export interface SegmentStats {
  nulls: number;
  nans: number;
  min: KeyValue | null;
  max: KeyValue | null;
}

/** Null count, NaN count, min and max (NaN and null excluded) of rows [from, to) of `data`. */
export function segmentStats(ct: ColumnType, data: arrow.Data, from: number, to: number): SegmentStats {
  const nulls = nullBitmapOf(data);
  const off = data.offset;
  switch (ct.kind) {
    case 'int':
    case 'float': {
      const values = data.values as Float64Array;
      let min = Infinity;
      let max = -Infinity;
      let nullCount = 0;
      let nans = 0;
      let seen = false;
      for (let j = off + from, end = off + to; j < end; j++) {
        if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) {
          nullCount++;
          continue;
        }
        const v = values[j]!;
        if (v !== v) {
          nans++;
          continue;
        }
        seen = true;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      // +0 for -0 keeps min/max canonical, like bitmap keys.
      return { nulls: nullCount, nans, min: seen ? min + 0 : null, max: seen ? max + 0 : null };
    }
    case 'float16': {
      const bits = data.values as Uint16Array;
      let min = Infinity;
      let max = -Infinity;
      let nullCount = 0;
      let nans = 0;
      let seen = false;
      for (let j = off + from, end = off + to; j < end; j++) {
        if (!isValidAt(nulls, j)) {
          nullCount++;
          continue;
        }
        const v = F16_VALUE[bits[j]!]!;
        if (v !== v) {
          nans++;
          continue;
        }
        seen = true;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      return { nulls: nullCount, nans, min: seen ? min + 0 : null, max: seen ? max + 0 : null };
    }
    case 'i64':
    case 'u64': {
      const big = data.values as BigInt64Array | BigUint64Array;
      const w = new Int32Array(big.buffer, big.byteOffset, big.length * 2);
      // Compare as (hi, lo) words; hi is signed for Int64 and unsigned for UInt64. Flipping
      // the sign bit of an unsigned hi word makes signed comparison do the unsigned order.
      const flip = ct.kind === 'u64' ? 0x80000000 | 0 : 0;
      let minJ = -1;
      let maxJ = -1;
      let minHi = 0;
      let minLo = 0;
      let maxHi = 0;
      let maxLo = 0;
      let nullCount = 0;
      for (let j = off + from, end = off + to; j < end; j++) {
        if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) {
          nullCount++;
          continue;
        }
        const hi = w[2 * j + 1]! ^ flip;
        const lo = w[2 * j]! >>> 0;
        if (minJ < 0 || hi < minHi || (hi === minHi && lo < minLo)) {
          minJ = j;
          minHi = hi;
          minLo = lo;
        }
        if (maxJ < 0 || hi > maxHi || (hi === maxHi && lo > maxLo)) {
          maxJ = j;
          maxHi = hi;
          maxLo = lo;
        }
      }
      return { nulls: nullCount, nans: 0, min: minJ < 0 ? null : big[minJ]!, max: maxJ < 0 ? null : big[maxJ]! };
    }
    case 'bytes':
      return data.dictionary ? dictionaryStats(data, from, to) : bytesStats(data, from, to);
    case 'bool': {
      const bits = data.values as Uint8Array;
      let nullCount = 0;
      let anyFalse = false;
      let anyTrue = false;
      for (let j = off + from, end = off + to; j < end; j++) {
        if (!isValidAt(nulls, j)) {
          nullCount++;
          continue;
        }
        if ((bits[j >> 3]! >> (j & 7)) & 1) anyTrue = true;
        else anyFalse = true;
      }
      const seen = anyTrue || anyFalse;
      return { nulls: nullCount, nans: 0, min: seen ? !anyFalse : null, max: seen ? anyTrue : null };
    }
  }
}

function compareRanges(b: Uint8Array, s1: number, e1: number, s2: number, e2: number): number {
  const n = Math.min(e1 - s1, e2 - s2);
  for (let k = 0; k < n; k++) {
    const d = b[s1 + k]! - b[s2 + k]!;
    if (d !== 0) return d;
  }
  return e1 - s1 - (e2 - s2);
}

function bytesStats(data: arrow.Data, from: number, to: number): SegmentStats {
  const nulls = nullBitmapOf(data);
  const offsets = data.valueOffsets as Int32Array | BigInt64Array;
  const large = offsets instanceof BigInt64Array;
  const bytes = data.values as Uint8Array;
  let minS = -1;
  let minE = -1;
  let maxS = -1;
  let maxE = -1;
  let nullCount = 0;
  for (let j = data.offset + from, end = data.offset + to; j < end; j++) {
    if (!isValidAt(nulls, j)) {
      nullCount++;
      continue;
    }
    const s = large ? Number(offsets[j]!) : (offsets[j] as number);
    const e = large ? Number(offsets[j + 1]!) : (offsets[j + 1] as number);
    if (minS < 0) {
      minS = maxS = s;
      minE = maxE = e;
      continue;
    }
    if (compareRanges(bytes, s, e, minS, minE) < 0) {
      minS = s;
      minE = e;
    } else if (compareRanges(bytes, s, e, maxS, maxE) > 0) {
      maxS = s;
      maxE = e;
    }
  }
  return {
    nulls: nullCount,
    nans: 0,
    min: minS < 0 ? null : bytes.slice(minS, minE),
    max: maxS < 0 ? null : bytes.slice(maxS, maxE),
  };
}

function dictionaryStats(data: arrow.Data, from: number, to: number): SegmentStats {
  const nulls = nullBitmapOf(data);
  const codes = data.values as Int32Array;
  // Only codes decide min/max; compare dictionary entries once they are known.
  let minC = -1;
  let maxC = -1;
  let nullCount = 0;
  const dict = flattenDictionary(data.dictionary!);
  for (let j = data.offset + from, end = data.offset + to; j < end; j++) {
    if (!isValidAt(nulls, j)) {
      nullCount++;
      continue;
    }
    const c = codes[j]!;
    if (dict.valid[c] === 0) {
      nullCount++;
      continue;
    }
    if (c === minC || c === maxC) continue;
    if (minC < 0) {
      minC = maxC = c;
      continue;
    }
    if (compareBytes(dict.value(c), dict.value(minC)) < 0) minC = c;
    else if (compareBytes(dict.value(c), dict.value(maxC)) > 0) maxC = c;
  }
  return { nulls: nullCount, nans: 0, min: minC < 0 ? null : dict.value(minC).slice(), max: maxC < 0 ? null : dict.value(maxC).slice() };
}

const flatCache = new WeakMap<arrow.Vector, { valid: Uint8Array; value: (c: number) => Uint8Array }>();

function flattenDictionary(dict: arrow.Vector) {
  let hit = flatCache.get(dict);
  if (hit) return hit;
  const entries: Uint8Array[] = [];
  const valid = new Uint8Array(dict.length);
  for (const d of dict.data) {
    const offsets = d.valueOffsets as Int32Array | BigInt64Array;
    const bytes = d.values as Uint8Array;
    const dn = nullBitmapOf(d);
    for (let i = 0; i < d.length; i++) {
      const j = d.offset + i;
      valid[entries.length] = isValidAt(dn, j) ? 1 : 0;
      entries.push(bytes.subarray(Number(offsets[j]!), Number(offsets[j + 1]!)));
    }
  }
  hit = { valid, value: (c: number) => entries[c]! };
  flatCache.set(dict, hit);
  return hit;
}
