/**
 * What an indexed column's values are, how they order, and how they move between JS values
 * and Arrow data. Every index kind works through this one module, so the ordering rules of
 * index-format.md (PostgreSQL float order, exact 64-bit integers, UTF-8 byte order) live in
 * exactly one place.
 */
import * as arrow from 'apache-arrow';
import { ColumnTypeError } from '../errors.js';

/**
 * How values are handled in hot loops and held as keys:
 * - `int`: integers of up to 32 bits, Date32, Time32 (JS number)
 * - `float`: Float32/Float64 (JS number), `float16` (JS number, stored as binary16 bits)
 * - `i64` / `u64`: 64-bit integers, Date64, Timestamp, Time64 (JS bigint)
 * - `bytes`: Utf8, LargeUtf8, Binary, LargeBinary and Dictionary of those (Uint8Array)
 * - `bool` (JS boolean)
 */
export type ValueKind = 'int' | 'float' | 'float16' | 'i64' | 'u64' | 'bytes' | 'bool';

/** A non-null key, min or max value. */
export type KeyValue = number | bigint | Uint8Array | boolean;

export interface ColumnType {
  kind: ValueKind;
  /** Arrow type of the index's key/min/max columns (a dictionary's value type). */
  keyType: arrow.DataType;
  /** Stable identity used to check that fragments and parts agree, e.g. `Timestamp(us,UTC)`. */
  signature: string;
  /** True when values are Date/Timestamp/Time, so ISO string literals are accepted. */
  temporal?: 'date32' | 'date64' | 'timestamp' | 'time';
  /** Unit of a temporal column: nanoseconds per stored unit. */
  unitNanos?: bigint;
  /** For `int` kinds: the inclusive value range of the type. */
  intRange?: [bigint, bigint];
}

const T = arrow.Type;

/**
 * Describe a column's Arrow type, or throw a ColumnTypeError naming the column and type.
 */
export function describeColumnType(column: string, type: arrow.DataType): ColumnType {
  const unsupported = () =>
    new ColumnTypeError(
      `column '${column}' has type ${String(type)}, which cannot be indexed ` +
        `(supported: integers, floats, strings, binary, bool, dates, timestamps, times, dictionary-encoded strings)`,
    );
  if (arrow.DataType.isDictionary(type)) {
    const value = describeColumnType(column, type.dictionary);
    if (value.kind !== 'bytes') throw unsupported();
    return value;
  }
  switch (type.typeId) {
    case T.Int: {
      const t = type as arrow.Int;
      if (t.bitWidth === 64) {
        const kind = t.isSigned ? 'i64' : 'u64';
        return { kind, keyType: type, signature: kind === 'i64' ? 'Int64' : 'UInt64', intRange: t.isSigned ? [-(1n << 63n), (1n << 63n) - 1n] : [0n, (1n << 64n) - 1n] };
      }
      const bits = BigInt(t.bitWidth);
      const range: [bigint, bigint] = t.isSigned ? [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n] : [0n, (1n << bits) - 1n];
      return { kind: 'int', keyType: type, signature: `${t.isSigned ? 'Int' : 'UInt'}${t.bitWidth}`, intRange: range };
    }
    case T.Float: {
      const t = type as arrow.Float;
      if (t.precision === arrow.Precision.HALF) return { kind: 'float16', keyType: type, signature: 'Float16' };
      return { kind: 'float', keyType: type, signature: t.precision === arrow.Precision.SINGLE ? 'Float32' : 'Float64' };
    }
    case T.Utf8:
      return { kind: 'bytes', keyType: new arrow.Utf8(), signature: 'Utf8' };
    case T.LargeUtf8:
      return { kind: 'bytes', keyType: new arrow.LargeUtf8(), signature: 'LargeUtf8' };
    case T.Binary:
      return { kind: 'bytes', keyType: new arrow.Binary(), signature: 'Binary' };
    case T.LargeBinary:
      return { kind: 'bytes', keyType: new arrow.LargeBinary(), signature: 'LargeBinary' };
    case T.Bool:
      return { kind: 'bool', keyType: type, signature: 'Bool' };
    case T.Date: {
      const t = type as arrow.Date_;
      if (t.unit === arrow.DateUnit.DAY) {
        return { kind: 'int', keyType: type, signature: 'Date32', temporal: 'date32', unitNanos: 86_400_000_000_000n, intRange: [-(1n << 31n), (1n << 31n) - 1n] };
      }
      return { kind: 'i64', keyType: type, signature: 'Date64', temporal: 'date64', unitNanos: 1_000_000n, intRange: [-(1n << 63n), (1n << 63n) - 1n] };
    }
    case T.Timestamp: {
      const t = type as arrow.Timestamp;
      const unit = unitName(t.unit);
      return {
        kind: 'i64',
        keyType: type,
        signature: `Timestamp(${unit},${t.timezone ?? ''})`,
        temporal: 'timestamp',
        unitNanos: unitNanos(t.unit),
        intRange: [-(1n << 63n), (1n << 63n) - 1n],
      };
    }
    case T.Time: {
      const t = type as arrow.Time;
      const unit = unitName(t.unit);
      if (t.bitWidth === 64) {
        return { kind: 'i64', keyType: type, signature: `Time64(${unit})`, temporal: 'time', unitNanos: unitNanos(t.unit), intRange: [-(1n << 63n), (1n << 63n) - 1n] };
      }
      return { kind: 'int', keyType: type, signature: `Time32(${unit})`, temporal: 'time', unitNanos: unitNanos(t.unit), intRange: [-(1n << 31n), (1n << 31n) - 1n] };
    }
    default:
      throw unsupported();
  }
}

function unitName(unit: arrow.TimeUnit): string {
  return ['s', 'ms', 'us', 'ns'][unit] ?? String(unit);
}
function unitNanos(unit: arrow.TimeUnit): bigint {
  return [1_000_000_000n, 1_000_000n, 1_000n, 1n][unit] ?? 1n;
}

// ---------------------------------------------------------------------------------------------
// Ordering

/** PostgreSQL float order: numbers numerically (-0 == +0), NaN equal to NaN and above all. */
export function compareFloat(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  const an = a !== a;
  const bn = b !== b;
  return an === bn ? 0 : an ? 1 : -1;
}

/** Unsigned byte order, which for UTF-8 is code-point order. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export type Comparator = (a: KeyValue, b: KeyValue) => number;

export function comparatorFor(kind: ValueKind): Comparator {
  switch (kind) {
    case 'int':
      return (a, b) => (a as number) - (b as number);
    case 'float':
    case 'float16':
      return (a, b) => compareFloat(a as number, b as number);
    case 'i64':
    case 'u64':
      return (a, b) => ((a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0);
    case 'bytes':
      return (a, b) => compareBytes(a as Uint8Array, b as Uint8Array);
    case 'bool':
      return (a, b) => Number(a) - Number(b);
  }
}

/** Canonical key: one NaN, and +0.0 for -0.0 (index-format.md "Canonical keys"). */
export function canonicalKey(kind: ValueKind, v: KeyValue): KeyValue {
  if (kind === 'float' || kind === 'float16') {
    const n = v as number;
    if (n !== n) return NaN;
    if (n === 0) return 0;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// binary16 <-> number

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Exact for values that came from binary16; rounds to nearest-even otherwise. */
export function numberToFloat16(v: number): number {
  if (v !== v) return 0x7e00;
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00;
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

// ---------------------------------------------------------------------------------------------
// JS values <-> Arrow data (used for keys, min and max: one value per distinct key or zone,
// never per row)

/** Read a column of keys/min/max back into JS values (null for null slots). */
export function readKeyValues(ct: ColumnType, data: arrow.Data): (KeyValue | null)[] {
  const out: (KeyValue | null)[] = new Array(data.length);
  const valid = validityReader(data);
  const off = data.offset;
  switch (ct.kind) {
    case 'int':
    case 'float': {
      const values = data.values as ArrayLike<number>;
      for (let i = 0; i < data.length; i++) out[i] = valid(i) ? values[off + i]! : null;
      break;
    }
    case 'float16': {
      const values = data.values as Uint16Array;
      for (let i = 0; i < data.length; i++) out[i] = valid(i) ? float16ToNumber(values[off + i]!) : null;
      break;
    }
    case 'i64':
    case 'u64': {
      const values = data.values as BigInt64Array | BigUint64Array;
      for (let i = 0; i < data.length; i++) out[i] = valid(i) ? values[off + i]! : null;
      break;
    }
    case 'bytes': {
      const offsets = data.valueOffsets as Int32Array | BigInt64Array;
      const bytes = data.values as Uint8Array;
      for (let i = 0; i < data.length; i++) {
        out[i] = valid(i) ? bytes.subarray(Number(offsets[off + i]!), Number(offsets[off + i + 1]!)) : null;
      }
      break;
    }
    case 'bool': {
      const bits = data.values as Uint8Array;
      for (let i = 0; i < data.length; i++) {
        const j = off + i;
        out[i] = valid(i) ? ((bits[j >> 3]! >> (j & 7)) & 1) === 1 : null;
      }
      break;
    }
  }
  return out;
}

/** Build Arrow data of `ct.keyType` from JS values (null → null slot). */
export function buildKeyData(ct: ColumnType, values: readonly (KeyValue | null)[]): arrow.Data {
  const n = values.length;
  let nullCount = 0;
  const nullBitmap = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) {
    if (values[i] === null) nullCount++;
    else nullBitmap[i >> 3]! |= 1 << (i & 7);
  }
  const type = ct.keyType;
  const base = { type, length: n, nullCount, nullBitmap: nullCount ? nullBitmap : undefined } as const;
  switch (ct.kind) {
    case 'int':
    case 'float': {
      const ArrayType = (type as arrow.Int).ArrayType as unknown as { new (n: number): Int32Array };
      const data = new ArrayType(n);
      for (let i = 0; i < n; i++) data[i] = (values[i] as number | null) ?? 0;
      return arrow.makeData({ ...base, data } as never);
    }
    case 'float16': {
      const data = new Uint16Array(n);
      for (let i = 0; i < n; i++) data[i] = values[i] === null ? 0 : numberToFloat16(values[i] as number);
      return arrow.makeData({ ...base, data } as never);
    }
    case 'i64':
    case 'u64': {
      const data = ct.kind === 'u64' ? new BigUint64Array(n) : new BigInt64Array(n);
      for (let i = 0; i < n; i++) data[i] = (values[i] as bigint | null) ?? 0n;
      return arrow.makeData({ ...base, data } as never);
    }
    case 'bytes': {
      let total = 0;
      for (const v of values) if (v !== null) total += (v as Uint8Array).length;
      const large = type.typeId === T.LargeUtf8 || type.typeId === T.LargeBinary;
      if (!large && total > 0x7fffffff) throw new ColumnTypeError(`keys of type ${ct.signature} exceed 2 GiB in one batch`);
      const data = new Uint8Array(total);
      const valueOffsets = large ? new BigInt64Array(n + 1) : new Int32Array(n + 1);
      let pos = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i] as Uint8Array | null;
        if (v !== null) {
          data.set(v, pos);
          pos += v.length;
        }
        valueOffsets[i + 1] = (large ? BigInt(pos) : pos) as never;
      }
      return arrow.makeData({ ...base, data, valueOffsets } as never);
    }
    case 'bool': {
      const data = new Uint8Array((n + 7) >> 3);
      for (let i = 0; i < n; i++) if (values[i] === true) data[i >> 3]! |= 1 << (i & 7);
      return arrow.makeData({ ...base, data } as never);
    }
  }
}

/** A function telling whether slot i (relative to data.offset) is valid. */
export function validityReader(data: arrow.Data): (i: number) => boolean {
  const bitmap = data.nullBitmap;
  if (!data.nullCount || !bitmap || bitmap.length === 0) return () => true;
  const off = data.offset;
  return (i) => {
    const j = off + i;
    return ((bitmap[j >> 3]! >> (j & 7)) & 1) === 1;
  };
}

/** Rebuild a ColumnType from the signature recorded in the manifest. */
export function columnTypeFromSignature(signature: string): ColumnType {
  const simple: Record<string, () => arrow.DataType> = {
    Int8: () => new arrow.Int8(),
    Int16: () => new arrow.Int16(),
    Int32: () => new arrow.Int32(),
    Int64: () => new arrow.Int64(),
    UInt8: () => new arrow.Uint8(),
    UInt16: () => new arrow.Uint16(),
    UInt32: () => new arrow.Uint32(),
    UInt64: () => new arrow.Uint64(),
    Float16: () => new arrow.Float16(),
    Float32: () => new arrow.Float32(),
    Float64: () => new arrow.Float64(),
    Utf8: () => new arrow.Utf8(),
    LargeUtf8: () => new arrow.LargeUtf8(),
    Binary: () => new arrow.Binary(),
    LargeBinary: () => new arrow.LargeBinary(),
    Bool: () => new arrow.Bool(),
    Date32: () => new arrow.DateDay(),
    Date64: () => new arrow.DateMillisecond(),
  };
  const units: Record<string, arrow.TimeUnit> = { s: arrow.TimeUnit.SECOND, ms: arrow.TimeUnit.MILLISECOND, us: arrow.TimeUnit.MICROSECOND, ns: arrow.TimeUnit.NANOSECOND };
  let type: arrow.DataType | undefined = simple[signature]?.();
  let m: RegExpExecArray | null;
  if (!type && (m = /^Timestamp\((s|ms|us|ns),(.*)\)$/.exec(signature))) type = new arrow.Timestamp(units[m[1]!]!, m[2] || null);
  if (!type && (m = /^Time(32|64)\((s|ms|us|ns)\)$/.exec(signature))) type = new arrow.Time(units[m[2]!]!, Number(m[1]) as 32 | 64);
  if (!type) throw new ColumnTypeError(`unknown value type '${signature}'`);
  return describeColumnType('value', type);
}
