/**
 * Random datasets for property tests, and the Arrow and Parquet fragment files that hold them.
 *
 * The generators lean hard on the values that break indexes: nulls, NaNs with odd payloads,
 * signed zeros, infinities, integer extremes (incl. the 64-bit ones, which JS numbers cannot
 * hold), strings whose UTF-8 order differs from JS's UTF-16 order, and low cardinality so that
 * equality predicates actually match something.
 *
 * Files are built from typed arrays with explicit Arrow types (never inferred), so what lands on
 * disk is exactly the JS value: an int64 is its bigint, a float16 is its binary16 bits.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { Compression, Table as WasmTable, writeParquet, WriterPropertiesBuilder } from 'parquet-wasm/node';

export type ColumnType =
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint32'
  | 'uint64'
  | 'float16'
  | 'float32'
  | 'float64'
  | 'utf8'
  | 'large_utf8'
  | 'dict_utf8'
  | 'binary'
  | 'bool'
  | 'date32'
  | 'date64'
  | 'timestamp_ms'
  | 'timestamp_us_utc';

export const ALL_COLUMN_TYPES: readonly ColumnType[] = [
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint32',
  'uint64',
  'float16',
  'float32',
  'float64',
  'utf8',
  'large_utf8',
  'dict_utf8',
  'binary',
  'bool',
  'date32',
  'date64',
  'timestamp_ms',
  'timestamp_us_utc',
];

/**
 * Arrow IPC file, stream and feather, or Parquet. Every ColumnType round-trips through Parquet
 * exactly (NaN payloads, -0, 64-bit extremes, float16, date64, zones, large and dictionary
 * strings): parquet-wasm stores the Arrow schema in the file and restores types from it.
 */
export type FragmentFormat = 'file' | 'stream' | 'feather' | 'parquet';

export const ARROW_FORMATS: readonly FragmentFormat[] = ['file', 'stream', 'feather'];

export type ParquetCompression = 'snappy' | 'zstd' | 'uncompressed';

export const PARQUET_COMPRESSIONS: readonly ParquetCompression[] = ['snappy', 'zstd', 'uncompressed'];

export interface ColumnSpec {
  name: string;
  type: ColumnType;
}

export interface FragmentSpec {
  name: string;
  rows: Record<string, unknown[]>;
  /** Rows per Arrow record batch; for Parquet, rows per row group. */
  batchRows: number;
  format: FragmentFormat;
  /** Parquet only (default snappy). */
  compression?: ParquetCompression;
  /** Parquet only: dictionary-encode pages (default true). */
  dictionary?: boolean;
}

export interface GeneratedDataset {
  columns: ColumnSpec[];
  fragments: FragmentSpec[];
}

export type TypeFamily = 'int' | 'float' | 'string' | 'binary' | 'bool';

/** How a column type's values compare; every temporal type is an integer in its unit. */
export function typeFamily(type: ColumnType): TypeFamily {
  switch (type) {
    case 'float16':
    case 'float32':
    case 'float64':
      return 'float';
    case 'utf8':
    case 'large_utf8':
    case 'dict_utf8':
      return 'string';
    case 'binary':
      return 'binary';
    case 'bool':
      return 'bool';
    default:
      return 'int';
  }
}

export function isTemporal(type: ColumnType): type is 'date32' | 'date64' | 'timestamp_ms' | 'timestamp_us_utc' {
  return type === 'date32' || type === 'date64' || type === 'timestamp_ms' || type === 'timestamp_us_utc';
}

/** Inclusive stored-integer range of an integer-family type. */
export function intRange(type: ColumnType): [bigint, bigint] {
  switch (type) {
    case 'int8':
      return [-128n, 127n];
    case 'int16':
      return [-32768n, 32767n];
    case 'int32':
    case 'date32':
      return [-(2n ** 31n), 2n ** 31n - 1n];
    case 'uint8':
      return [0n, 255n];
    case 'uint32':
      return [0n, 2n ** 32n - 1n];
    case 'uint64':
      return [0n, 2n ** 64n - 1n];
    case 'int64':
    case 'date64':
    case 'timestamp_ms':
    case 'timestamp_us_utc':
      return [-(2n ** 63n), 2n ** 63n - 1n];
    default:
      throw new Error(`${type} is not an integer type`);
  }
}

/** True when the JS value of this type is a bigint rather than a number. */
export function isBigIntType(type: ColumnType): boolean {
  return type === 'int64' || type === 'uint64' || type === 'date64' || type === 'timestamp_ms' || type === 'timestamp_us_utc';
}

export function arrowType(type: ColumnType): arrow.DataType {
  switch (type) {
    case 'int8':
      return new arrow.Int8();
    case 'int16':
      return new arrow.Int16();
    case 'int32':
      return new arrow.Int32();
    case 'int64':
      return new arrow.Int64();
    case 'uint8':
      return new arrow.Uint8();
    case 'uint32':
      return new arrow.Uint32();
    case 'uint64':
      return new arrow.Uint64();
    case 'float16':
      return new arrow.Float16();
    case 'float32':
      return new arrow.Float32();
    case 'float64':
      return new arrow.Float64();
    case 'utf8':
      return new arrow.Utf8();
    case 'large_utf8':
      return new arrow.LargeUtf8();
    case 'dict_utf8':
      return new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32());
    case 'binary':
      return new arrow.Binary();
    case 'bool':
      return new arrow.Bool();
    case 'date32':
      return new arrow.DateDay();
    case 'date64':
      return new arrow.DateMillisecond();
    case 'timestamp_ms':
      return new arrow.TimestampMillisecond();
    case 'timestamp_us_utc':
      return new arrow.TimestampMicrosecond('UTC');
  }
}

// ---------------------------------------------------------------------------------------------
// binary16, written here rather than imported so the fixtures do not trust the code under test

export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Exact only: a value that binary16 cannot hold is a generator bug, so it throws. */
export function numberToFloat16Bits(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  if (a < 2 ** -14) {
    const frac = a / 2 ** -24;
    if (!Number.isInteger(frac)) throw new Error(`${v} is not a binary16 value`);
    return sign | frac;
  }
  let e = 0;
  while (2 ** (e + 1) <= a) e++;
  while (2 ** e > a) e--;
  const frac = (a / 2 ** e - 1) * 1024;
  if (e > 15 || !Number.isInteger(frac)) throw new Error(`${v} is not a binary16 value`);
  return sign | ((e + 15) << 10) | frac;
}

/** A double NaN with a chosen bit pattern; V8 keeps payloads through plain assignment. */
export function nanWithBits(hi: number, lo: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setUint32(0, hi >>> 0);
  view.setUint32(4, lo >>> 0);
  return view.getFloat64(0);
}

const NAN_VARIANTS: readonly number[] = [
  NaN,
  nanWithBits(0x7ff80000, 0),
  nanWithBits(0xfff80000, 0), // negative quiet NaN
  nanWithBits(0x7ff00000, 1), // signalling NaN
  nanWithBits(0x7fffffff, 0xffffffff),
  nanWithBits(0xfff00000, 0xdeadbeef),
];

// ---------------------------------------------------------------------------------------------
// value arbitraries

const pow2 = (n: number) => 2 ** n;

function codePointArb(): fc.Arbitrary<string> {
  const range = (min: number, max: number) => fc.integer({ min, max }).map((c) => String.fromCodePoint(c));
  return fc.oneof(
    { weight: 4, arbitrary: range(0x61, 0x64) }, // a-d: keeps random strings colliding
    { weight: 2, arbitrary: range(0x00, 0x7f) },
    { weight: 1, arbitrary: range(0x80, 0x7ff) },
    { weight: 1, arbitrary: range(0x800, 0xd7ff) },
    // U+E000–U+FFFF sort above astral characters in UTF-16 but below them in UTF-8.
    { weight: 3, arbitrary: range(0xe000, 0xffff) },
    { weight: 3, arbitrary: range(0x10000, 0x10ffff) },
  );
}

const STRING_EDGES: readonly string[] = [
  '',
  'a',
  'A',
  'ab',
  'abc',
  'b',
  'é',
  'a\u0000',
  '\u0000',
  '\u007f',
  '\u0080',
  '\ud7ff',
  '\ue000',
  '\uffff',
  '\ufffd',
  // A leading U+FEFF is data; default TextDecoders drop it, so it must survive every read.
  '\ufeff',
  '\ufeffa',
  '\u{10000}',
  '\u{1f600}',
  '\u{10ffff}',
  'a\u{1f600}',
  'a\uffff',
  'zz',
];

const BINARY_EDGES: readonly number[][] = [[], [0], [0, 0], [1], [0x61], [0x61, 0x62], [0x7f], [0x80], [0xc3], [0xc3, 0xa9], [0xef, 0xbf, 0xbf], [0xf0, 0x9f, 0x98, 0x80], [0xfe], [0xff], [0xff, 0xff]];

const FLOAT64_EDGES: readonly number[] = [
  0,
  -0,
  Infinity,
  -Infinity,
  1,
  -1,
  0.1,
  -2.5,
  2.5,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MIN_VALUE,
  -Number.MIN_VALUE,
  2 ** -1022,
  Number.EPSILON,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  2 ** 63,
  -(2 ** 63),
  1e300,
];

const FLOAT32_EDGES: readonly number[] = [
  0,
  -0,
  Infinity,
  -Infinity,
  1,
  -1,
  Math.fround(0.1),
  2.5,
  -2.5,
  3.4028234663852886e38, // FLT_MAX
  -3.4028234663852886e38,
  1.401298464324817e-45, // smallest subnormal
  1.1754943508222875e-38, // smallest normal
  16777216,
  16777218,
];

const FLOAT16_EDGES: readonly number[] = [
  0,
  -0,
  Infinity,
  -Infinity,
  1,
  -1,
  0.5,
  2.5,
  -2.5,
  65504, // max
  -65504,
  pow2(-14), // smallest normal
  pow2(-24), // smallest subnormal
  1023 * pow2(-24), // largest subnormal
  2048,
  2050,
  0.0999755859375, // nearest to 0.1
];

function bigEdges(type: ColumnType): bigint[] {
  const [min, max] = intRange(type);
  const out = new Set<bigint>([min, max, 0n, 1n, min + 1n, max - 1n]);
  if (min < 0n) out.add(-1n);
  if (max >= 2n ** 53n + 1n) {
    out.add(2n ** 53n);
    out.add(2n ** 53n + 1n);
    out.add(2n ** 53n + 3n);
  }
  if (min < -(2n ** 53n)) out.add(-(2n ** 53n) - 1n);
  if (type === 'uint64') {
    out.add(2n ** 63n);
    out.add(2n ** 63n - 1n);
  }
  if (type === 'date32') {
    for (const d of [-1n, 1n, 19_000n, -719_162n /* 0001-01-01 */, 2_932_896n /* 9999-12-31 */, 11_016n /* 2000-02-29 */]) out.add(d);
  }
  if (type === 'date64' || type === 'timestamp_ms') {
    for (const t of [-1n, 86_400_000n, 951_782_400_000n /* 2000-02-29 */, 253_402_300_799_999n, -62_135_596_800_000n]) out.add(t);
  }
  if (type === 'timestamp_us_utc') {
    for (const t of [-1n, 1_000n, 86_400_000_000n, 951_782_400_000_000n, 253_402_300_799_999_999n, -62_135_596_800_000_000n]) out.add(t);
  }
  return [...out];
}

/** Plausible values of an integer-family type (kept inside the ISO-expressible range for dates). */
function intRandomArb(type: ColumnType): fc.Arbitrary<bigint> {
  const [min, max] = intRange(type);
  switch (type) {
    case 'date32':
      return fc.oneof(fc.bigInt({ min: -719_162n, max: 2_932_896n }), fc.bigInt({ min: 18_000n, max: 20_000n }));
    case 'date64':
      return fc.oneof(
        fc.bigInt({ min: -719_162n, max: 2_932_896n }).map((d) => d * 86_400_000n),
        fc.bigInt({ min: -62_135_596_800_000n, max: 253_402_300_799_999n }),
      );
    case 'timestamp_ms':
      return fc.oneof(fc.bigInt({ min: -62_135_596_800_000n, max: 253_402_300_799_999n }), fc.bigInt({ min: -5000n, max: 5000n }));
    case 'timestamp_us_utc':
      return fc.oneof(fc.bigInt({ min: -62_135_596_800_000_000n, max: 253_402_300_799_999_999n }), fc.bigInt({ min: -5000n, max: 5000n }));
    default:
      return fc.oneof(fc.bigInt({ min, max }), fc.bigInt({ min: min > -20n ? min : -20n, max: 20n }));
  }
}

/** A non-null value of `type`, biased to edge cases. */
export function nonNullValueArb(type: ColumnType): fc.Arbitrary<unknown> {
  switch (typeFamily(type)) {
    case 'int': {
      const toJs = (b: bigint): unknown => (isBigIntType(type) ? b : Number(b));
      return fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...bigEdges(type)) }, { weight: 3, arbitrary: intRandomArb(type) }).map(toJs);
    }
    case 'float': {
      const nan = fc.constantFrom(...NAN_VARIANTS);
      if (type === 'float16') {
        const random = fc.integer({ min: 0, max: 0xffff }).map(float16BitsToNumber);
        const small = fc.integer({ min: -40, max: 40 }).map((n) => n / 4);
        return fc.oneof({ weight: 1, arbitrary: nan }, { weight: 3, arbitrary: fc.constantFrom(...FLOAT16_EDGES) }, { weight: 2, arbitrary: random }, { weight: 2, arbitrary: small });
      }
      const edges = type === 'float32' ? FLOAT32_EDGES : FLOAT64_EDGES;
      const random = type === 'float32' ? fc.float({ noNaN: true }) : fc.double({ noNaN: true });
      const small = fc.integer({ min: -40, max: 40 }).map((n) => n / 4);
      return fc.oneof({ weight: 1, arbitrary: nan }, { weight: 3, arbitrary: fc.constantFrom(...edges) }, { weight: 2, arbitrary: random }, { weight: 2, arbitrary: small });
    }
    case 'string':
      return fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom(...STRING_EDGES) },
        { weight: 3, arbitrary: fc.string({ unit: codePointArb(), maxLength: 4 }) },
      );
    case 'binary':
      return fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom(...BINARY_EDGES).map((b) => Uint8Array.from(b)) },
        { weight: 1, arbitrary: fc.constantFrom(...STRING_EDGES).map((s) => new TextEncoder().encode(s)) },
        { weight: 2, arbitrary: fc.uint8Array({ maxLength: 4 }) },
      );
    case 'bool':
      return fc.boolean();
  }
}

/** Three common values per type, so independent draws still collide and equality matches. */
function commonValues(type: ColumnType): unknown[] {
  switch (typeFamily(type)) {
    case 'int':
      return isBigIntType(type) ? [0n, 1n, 2n] : [0, 1, 2];
    case 'float':
      return [0, 1.5, NaN];
    case 'string':
      return ['a', 'b', '\u{1f600}'];
    case 'binary':
      return [Uint8Array.of(0x61), Uint8Array.of(0x62), Uint8Array.of(0xff)];
    case 'bool':
      return [true, false];
  }
}

/** A value of `type`: about 10% null, a third from a tiny pool, the rest edge-heavy. */
export function columnValueArb(type: ColumnType): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 3, arbitrary: fc.constantFrom(...commonValues(type)) },
    { weight: 6, arbitrary: nonNullValueArb(type) },
  );
}

/**
 * Values of one column: most rows come from a small per-column pool so equality predicates and
 * bitmap keys hit several rows, the rest are fresh draws.
 */
function columnPoolArb(type: ColumnType): fc.Arbitrary<fc.Arbitrary<unknown>> {
  return fc.array(nonNullValueArb(type), { minLength: 1, maxLength: 5 }).map((pool) =>
    fc.oneof(
      { weight: 1, arbitrary: fc.constant(null) },
      { weight: 6, arbitrary: fc.constantFrom(...pool) },
      { weight: 3, arbitrary: nonNullValueArb(type) },
    ),
  );
}

export interface DatasetArbOptions {
  minFragments?: number;
  maxFragments?: number;
  maxRows?: number;
  types?: readonly ColumnType[];
  /** Formats fragments are drawn from (default: the three Arrow ones). */
  formats?: readonly FragmentFormat[];
}

export function datasetArb(options: DatasetArbOptions = {}): fc.Arbitrary<GeneratedDataset> {
  const { minFragments = 12, maxFragments = 16, maxRows = 60, types = ALL_COLUMN_TYPES, formats = ARROW_FORMATS } = options;
  // Drawn only when Parquet is possible, so Arrow-only datasets for a given seed stay the same.
  const parquetArbs: { compression?: fc.Arbitrary<ParquetCompression>; dictionary?: fc.Arbitrary<boolean> } = formats.includes('parquet')
    ? { compression: fc.constantFrom(...PARQUET_COMPRESSIONS), dictionary: fc.boolean() }
    : {};
  const columnsArb = fc.array(fc.constantFrom(...types), { minLength: 1, maxLength: 4 }).map((ts) => ts.map((type, i): ColumnSpec => ({ name: `c${i}_${type}`, type })));
  return columnsArb.chain((columns) =>
    fc.tuple(...columns.map((c) => columnPoolArb(c.type))).chain((valueArbs) => {
      const fragmentArb = fc
        .record({
          // Empty fragments are common in practice (a writer that flushed nothing), so weight them.
          rowCount: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 6, arbitrary: fc.integer({ min: 1, max: maxRows }) }),
          batchRows: fc.integer({ min: 1, max: Math.max(1, maxRows) }),
          format: fc.constantFrom<FragmentFormat>(...formats),
          ...parquetArbs,
        })
        .chain(({ rowCount, batchRows, format, compression, dictionary }) =>
          fc.tuple(...valueArbs.map((arb) => fc.array(arb, { minLength: rowCount, maxLength: rowCount }))).map((cols) => {
            const rows: Record<string, unknown[]> = {};
            columns.forEach((c, i) => (rows[c.name] = cols[i]!));
            return format === 'parquet' ? { rows, batchRows, format, compression, dictionary } : { rows, batchRows, format };
          }),
        );
      return fc.array(fragmentArb, { minLength: minFragments, maxLength: maxFragments }).map(
        (frags): GeneratedDataset => ({
          columns,
          fragments: frags.map((f, i) => ({ name: `frag_${String(i).padStart(3, '0')}${extension(f.format)}`, ...f })),
        }),
      );
    }),
  );
}

export function extension(format: FragmentFormat): string {
  return format === 'stream' ? '.arrows' : format === 'feather' ? '.feather' : format === 'parquet' ? '.parquet' : '.arrow';
}

export function fragmentRowCount(columns: readonly ColumnSpec[], rows: Record<string, unknown[]>): number {
  const first = columns[0];
  return first ? (rows[first.name]?.length ?? 0) : 0;
}

// ---------------------------------------------------------------------------------------------
// Arrow writing

const utf8 = new TextEncoder();

function validity(values: readonly unknown[]): { nullCount: number; nullBitmap?: Uint8Array } {
  const bitmap = new Uint8Array((values.length + 7) >> 3);
  let nullCount = 0;
  values.forEach((v, i) => {
    if (v === null || v === undefined) nullCount++;
    else bitmap[i >> 3]! |= 1 << (i & 7);
  });
  return nullCount ? { nullCount, nullBitmap: bitmap } : { nullCount };
}

function varBinaryData(type: arrow.DataType, values: readonly unknown[], large: boolean): arrow.Data {
  const parts = values.map((v) => (v === null || v === undefined ? new Uint8Array(0) : typeof v === 'string' ? utf8.encode(v) : (v as Uint8Array)));
  const total = parts.reduce((s, p) => s + p.length, 0);
  const data = new Uint8Array(total);
  const valueOffsets = large ? new BigInt64Array(values.length + 1) : new Int32Array(values.length + 1);
  let pos = 0;
  parts.forEach((p, i) => {
    data.set(p, pos);
    pos += p.length;
    valueOffsets[i + 1] = (large ? BigInt(pos) : pos) as never;
  });
  return arrow.makeData({ type, length: values.length, ...validity(values), data, valueOffsets } as never);
}

function columnData(type: ColumnType, arrowT: arrow.DataType, values: readonly unknown[], dictionary?: DictionaryInfo): arrow.Data {
  const n = values.length;
  const base = { type: arrowT, length: n, ...validity(values) };
  const isNull = (v: unknown) => v === null || v === undefined;
  switch (type) {
    case 'int8':
    case 'int16':
    case 'int32':
    case 'uint8':
    case 'uint32':
    case 'float32':
    case 'float64':
    case 'date32': {
      const ArrayType = (arrowT as unknown as { ArrayType: new (n: number) => Int32Array }).ArrayType;
      const data = new ArrayType(n);
      values.forEach((v, i) => (data[i] = isNull(v) ? 0 : (v as number)));
      return arrow.makeData({ ...base, data } as never);
    }
    case 'float16': {
      const data = new Uint16Array(n);
      values.forEach((v, i) => (data[i] = isNull(v) ? 0 : numberToFloat16Bits(v as number)));
      return arrow.makeData({ ...base, data } as never);
    }
    case 'int64':
    case 'date64':
    case 'timestamp_ms':
    case 'timestamp_us_utc': {
      const data = new BigInt64Array(n);
      values.forEach((v, i) => (data[i] = isNull(v) ? 0n : (v as bigint)));
      return arrow.makeData({ ...base, data } as never);
    }
    case 'uint64': {
      const data = new BigUint64Array(n);
      values.forEach((v, i) => (data[i] = isNull(v) ? 0n : (v as bigint)));
      return arrow.makeData({ ...base, data } as never);
    }
    case 'utf8':
    case 'binary':
      return varBinaryData(arrowT, values, false);
    case 'large_utf8':
      return varBinaryData(arrowT, values, true);
    case 'bool': {
      const data = new Uint8Array((n + 7) >> 3);
      values.forEach((v, i) => {
        if (v === true) data[i >> 3]! |= 1 << (i & 7);
      });
      return arrow.makeData({ ...base, data } as never);
    }
    case 'dict_utf8': {
      if (!dictionary) throw new Error('dict_utf8 needs a dictionary');
      const data = new Int32Array(n);
      values.forEach((v, i) => (data[i] = isNull(v) ? 0 : dictionary.index.get(v as string)!));
      return arrow.makeData({ ...base, data, dictionary: dictionary.vector } as never);
    }
  }
}

interface DictionaryInfo {
  vector: arrow.Vector;
  index: Map<string, number>;
}

/**
 * One dictionary per fragment, shared by every batch (the IPC file format forbids replacing
 * it). It is deliberately unsorted and carries an entry no row uses, so an index that reads
 * keys or min/max off the dictionary instead of the rows gives wrong answers.
 */
function buildDictionary(values: readonly unknown[]): DictionaryInfo {
  const distinct = [...new Set(values.filter((v): v is string => typeof v === 'string'))].reverse();
  distinct.push('\u{10ffff}unused');
  const index = new Map(distinct.map((s, i) => [s, i]));
  const vector = arrow.makeVector(varBinaryData(new arrow.Utf8(), distinct, false));
  return { vector, index };
}

export interface WriteFragmentOptions {
  /** Rows per Arrow record batch; for Parquet, rows per row group. */
  batchRows: number;
  format: FragmentFormat;
  /** Parquet codec (default snappy). */
  compression?: ParquetCompression;
  /** Parquet dictionary encoding (default on, as in most writers). */
  dictionary?: boolean;
  /**
   * Parquet data page size limit in bytes (default 64, so that even a few dozen plain-encoded
   * rows span several pages). Dictionary-encoded pages hold only small codes and mostly stay
   * one page per row group.
   */
  pageBytes?: number;
}

/** The bytes of one fragment: Arrow IPC, or Parquet converted from that Arrow data. */
export function fragmentBytes(columns: readonly ColumnSpec[], rows: Record<string, unknown[]>, options: WriteFragmentOptions): Uint8Array {
  const types = columns.map((c) => arrowType(c.type));
  const fields = columns.map((c, i) => new arrow.Field(c.name, types[i]!, true));
  const schema = new arrow.Schema(fields);
  const n = fragmentRowCount(columns, rows);
  for (const c of columns) {
    if ((rows[c.name]?.length ?? 0) !== n) throw new Error(`column ${c.name} has ${rows[c.name]?.length} rows, expected ${n}`);
  }
  const dictionaries = columns.map((c) => (c.type === 'dict_utf8' ? buildDictionary(rows[c.name]!) : undefined));
  const batchRows = Math.max(1, options.batchRows);
  const batches: arrow.RecordBatch[] = [];
  const makeBatch = (start: number, end: number) => {
    const children = columns.map((c, i) => columnData(c.type, types[i]!, rows[c.name]!.slice(start, end), dictionaries[i]));
    const struct = arrow.makeData({ type: new arrow.Struct(fields), length: end - start, nullCount: 0, children });
    batches.push(new arrow.RecordBatch(schema, struct));
  };
  for (let start = 0; start < n; start += batchRows) makeBatch(start, Math.min(n, start + batchRows));
  // Both shapes of empty file exist in the wild: no batches at all, or one zero-row batch.
  if (n === 0 && batchRows % 2 === 1) makeBatch(0, 0);
  const table = new arrow.Table(schema, batches);
  if (options.format === 'parquet') return arrowToParquet(arrow.tableToIPC(table, 'stream'), options);
  return arrow.tableToIPC(table, options.format === 'stream' ? 'stream' : 'file');
}

const CODECS: Record<ParquetCompression, Compression> = {
  snappy: Compression.SNAPPY,
  zstd: Compression.ZSTD,
  uncompressed: Compression.UNCOMPRESSED,
};

/** Parquet bytes of an Arrow IPC stream, written by parquet-wasm (arrow-rs). */
function arrowToParquet(ipcStream: Uint8Array, options: WriteFragmentOptions): Uint8Array {
  const props = new WriterPropertiesBuilder()
    .setCompression(CODECS[options.compression ?? 'snappy'])
    .setMaxRowGroupSize(Math.max(1, options.batchRows))
    .setDataPageSizeLimit(options.pageBytes ?? 64)
    .setDictionaryEnabled(options.dictionary ?? true)
    .build();
  // Both calls consume (and so free) their wasm-side arguments.
  return writeParquet(WasmTable.fromIPCStream(ipcStream), props);
}

export async function writeFragment(path: string, columns: readonly ColumnSpec[], rows: Record<string, unknown[]>, options: WriteFragmentOptions): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, fragmentBytes(columns, rows, options));
}

/** Where writeDataset can put fragments besides a directory: an object store, say. */
export interface FragmentSink {
  put(key: string, bytes: Uint8Array): Promise<unknown>;
}

/**
 * Write every fragment under `data/` of a directory, or to a sink as keys `data/<name>`;
 * returns their dataset-relative paths in order.
 */
export async function writeDataset(root: string | FragmentSink, ds: GeneratedDataset): Promise<string[]> {
  const paths: string[] = [];
  for (const f of ds.fragments) {
    const rel = `data/${f.name}`;
    const options: WriteFragmentOptions = { batchRows: f.batchRows, format: f.format, compression: f.compression, dictionary: f.dictionary };
    if (typeof root === 'string') await writeFragment(join(root, rel), ds.columns, f.rows, options);
    else await root.put(rel, fragmentBytes(ds.columns, f.rows, options));
    paths.push(rel);
  }
  return paths;
}

/** A compact rendering for failure messages (bigints and bytes survive). */
export function describeDataset(ds: GeneratedDataset): string {
  return JSON.stringify(ds, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (v instanceof Uint8Array) return `0x${Buffer.from(v).toString('hex')}`;
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    if (Object.is(v, -0)) return '-0';
    return v;
  });
}
