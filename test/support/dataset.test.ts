/**
 * Tests of the test fixtures themselves: the dataset writer must put exactly the generated
 * values on disk, the oracle must implement the spec's semantics (pinned by hand-written
 * cases), and the generators must actually produce the edge cases they promise. Every other
 * property test trusts these three.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Literal, Predicate } from '../../lib/query/ast.js';
import {
  type ColumnSpec,
  type ColumnType,
  type GeneratedDataset,
  ALL_COLUMN_TYPES,
  arrowType,
  columnValueArb,
  datasetArb,
  describeDataset,
  float16BitsToNumber,
  fragmentBytes,
  fragmentRowCount,
  intRange,
  nanWithBits,
  numberToFloat16Bits,
  writeDataset,
} from './dataset.js';
import { evaluateOracle } from './oracle.js';
import { isoSpellings, predicateArb } from './predicates.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dataset-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// reading back, through the raw buffers so the physical layout is checked too

// ignoreBOM: a leading U+FEFF is data, not a byte-order mark (the default decoder drops it).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function readColumn(type: ColumnType, data: arrow.Data): unknown[] {
  const out: unknown[] = [];
  const bitmap = data.nullBitmap;
  const off = data.offset;
  for (let i = 0; i < data.length; i++) {
    const j = off + i;
    const valid = !data.nullCount || !bitmap || bitmap.length === 0 || ((bitmap[j >> 3]! >> (j & 7)) & 1) === 1;
    if (!valid) {
      out.push(null);
      continue;
    }
    switch (type) {
      case 'float16':
        out.push(float16BitsToNumber((data.values as Uint16Array)[j]!));
        break;
      case 'utf8':
      case 'large_utf8':
      case 'binary': {
        const offsets = data.valueOffsets as Int32Array | BigInt64Array;
        const bytes = (data.values as Uint8Array).subarray(Number(offsets[j]!), Number(offsets[j + 1]!));
        out.push(type === 'binary' ? Uint8Array.from(bytes) : strictUtf8.decode(bytes));
        break;
      }
      case 'dict_utf8': {
        // Not `dictionary.get()`: Arrow JS decodes with a TextDecoder that drops a leading U+FEFF.
        const dict = data.dictionary!.data[0]!;
        const k = dict.offset + (data.values as Int32Array)[j]!;
        const offsets = dict.valueOffsets as Int32Array;
        out.push(strictUtf8.decode((dict.values as Uint8Array).subarray(offsets[k]!, offsets[k + 1]!)));
        break;
      }
      case 'bool':
        out.push((((data.values as Uint8Array)[j >> 3]! >> (j & 7)) & 1) === 1);
        break;
      default:
        out.push((data.values as ArrayLike<unknown>)[j]);
    }
  }
  return out;
}

function sameValue(actual: unknown, expected: unknown): boolean {
  if (expected === null) return actual === null;
  if (typeof expected === 'number' && Number.isNaN(expected)) return typeof actual === 'number' && Number.isNaN(actual);
  if (expected instanceof Uint8Array) return actual instanceof Uint8Array && Buffer.from(actual).equals(Buffer.from(expected));
  // Object.is: -0 must come back as -0, and a bigint as the identical bigint.
  return typeof actual === typeof expected && Object.is(actual, expected);
}

const show = (v: unknown): string =>
  typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? `0x${Buffer.from(v).toString('hex')}` : Object.is(v, -0) ? '-0' : typeof v === 'string' ? JSON.stringify(v) : String(v);

async function checkRoundTrip(ds: GeneratedDataset): Promise<void> {
  const dir = await mkdtemp(join(root, 'rt-'));
  const paths = await writeDataset(dir, ds);
  expect(paths).toEqual(ds.fragments.map((f) => `data/${f.name}`));
  expect([...paths].sort()).toEqual(paths);
  for (const [k, f] of ds.fragments.entries()) {
    const bytes = await readFile(join(dir, paths[k]!));
    // File and feather carry the ARROW1 magic; a stream never does.
    expect(Buffer.from(bytes.subarray(0, 6)).toString('latin1') === 'ARROW1').toBe(f.format !== 'stream');
    const table = arrow.tableFromIPC(bytes);
    const n = fragmentRowCount(ds.columns, f.rows);
    expect(table.numRows).toBe(n);
    const lengths = table.batches.map((b) => b.numRows).filter((l) => l > 0);
    const expectedLengths: number[] = [];
    for (let s = 0; s < n; s += f.batchRows) expectedLengths.push(Math.min(f.batchRows, n - s));
    expect(lengths).toEqual(expectedLengths);
    for (const [i, col] of ds.columns.entries()) {
      const field = table.schema.fields[i]!;
      expect(field.name).toBe(col.name);
      expect(String(field.type)).toBe(String(arrowType(col.type)));
      const actual = table.batches.flatMap((b) => readColumn(col.type, b.getChildAt(i)!.data[0]!));
      const expected = f.rows[col.name]!;
      expect(actual.length).toBe(expected.length);
      for (let r = 0; r < n; r++) {
        if (!sameValue(actual[r], expected[r])) {
          throw new Error(`${f.name} ${col.name}[${r}] (${col.type}): wrote ${show(expected[r])}, read ${show(actual[r])} in ${describeDataset(ds)}`);
        }
      }
    }
  }
}

describe('writeDataset', () => {
  it('keeps a leading U+FEFF in utf8 and dictionary strings (a CI counterexample: Arrow JS dictionary.get() dropped it)', async () => {
    const values = ['', '\ufeff', null, '\ufeffa', 'a'];
    await checkRoundTrip({
      columns: [
        { name: 'c0_dict_utf8', type: 'dict_utf8' },
        { name: 'c1_utf8', type: 'utf8' },
      ],
      fragments: [{ name: 'frag_000.arrow', rows: { c0_dict_utf8: values, c1_utf8: values }, batchRows: 2, format: 'file' }],
    });
  });

  it('writes every generated value so Arrow reads it back bit-exact (int64 extremes, -0, float16, unicode, batch splits)', async () => {
    await fc.assert(fc.asyncProperty(datasetArb(), checkRoundTrip), { numRuns: 12 });
  });

  it('round-trips the extremes of every 64-bit type and astral/BMP-private strings in every format', async () => {
    const columns: ColumnSpec[] = [
      { name: 'i64', type: 'int64' },
      { name: 'u64', type: 'uint64' },
      { name: 'ts', type: 'timestamp_us_utc' },
      { name: 's', type: 'dict_utf8' },
      { name: 'h', type: 'float16' },
    ];
    const rows = {
      i64: [-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n, null],
      u64: [2n ** 64n - 1n, 0n, 2n ** 63n, null],
      ts: [-(2n ** 63n), 2n ** 63n - 1n, -1n, null],
      s: ['\u{1f600}', '\ue000', '', null],
      h: [65504, -0, 2 ** -24, NaN],
    };
    for (const format of ['file', 'stream', 'feather'] as const) {
      await checkRoundTrip({ columns, fragments: [{ name: `x${format}.arrow`, rows, batchRows: 3, format }] });
    }
  });

  it('columnValueArb gives every type its documented JS representation, ~10% null, and those values round-trip', async () => {
    const jsType = (t: ColumnType) =>
      ['int64', 'uint64', 'date64', 'timestamp_ms', 'timestamp_us_utc'].includes(t) ? 'bigint' : ['utf8', 'large_utf8', 'dict_utf8'].includes(t) ? 'string' : t === 'binary' ? 'bytes' : t === 'bool' ? 'boolean' : 'number';
    for (const type of ALL_COLUMN_TYPES) {
      const values = fc.sample(columnValueArb(type), { numRuns: 400, seed: 1 });
      const nulls = values.filter((v) => v === null).length;
      expect(nulls / values.length, type).toBeGreaterThan(0.04);
      expect(nulls / values.length, type).toBeLessThan(0.2);
      for (const v of values) {
        if (v === null) continue;
        expect(v instanceof Uint8Array ? 'bytes' : typeof v, `${type} ${show(v)}`).toBe(jsType(type));
        if (typeof v === 'bigint' || (typeof v === 'number' && ['int8', 'int16', 'int32', 'uint8', 'uint32', 'date32'].includes(type))) {
          const [min, max] = intRange(type);
          expect(Number.isInteger(v) || typeof v === 'bigint').toBe(true);
          expect(BigInt(v as number | bigint) >= min && BigInt(v as number | bigint) <= max, `${type} ${show(v)}`).toBe(true);
        }
      }
      await checkRoundTrip({ columns: [{ name: 'v', type }], fragments: [{ name: 'frag_000.arrow', rows: { v: values }, batchRows: 64, format: 'file' }] });
    }
  });

  it('writes empty fragments that Arrow opens with the right schema and zero rows', () => {
    const columns: ColumnSpec[] = [{ name: 'd', type: 'dict_utf8' }, { name: 'x', type: 'int64' }];
    for (const batchRows of [1, 2]) {
      for (const format of ['file', 'stream'] as const) {
        const table = arrow.tableFromIPC(fragmentBytes(columns, { d: [], x: [] }, { batchRows, format }));
        expect(table.numRows).toBe(0);
        expect(table.schema.fields.map((f) => f.name)).toEqual(['d', 'x']);
      }
    }
  });

  it('refuses float16 values binary16 cannot hold, instead of writing a rounded value', () => {
    expect(() => numberToFloat16Bits(0.1)).toThrow();
    expect(() => numberToFloat16Bits(65505)).toThrow();
    for (const bits of [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0xfbff, 0x7c00, 0xfc00]) {
      expect(numberToFloat16Bits(float16BitsToNumber(bits))).toBe(bits);
    }
  });
});

describe('datasetArb', () => {
  it('produces the promised edge cases: empty and multi-batch fragments, nulls, NaN, -0, int64 extremes, astral and U+E000+ strings', () => {
    const seen = new Set<string>();
    for (const ds of fc.sample(datasetArb(), { numRuns: 60, seed: 42 })) {
      expect(ds.fragments.length).toBeGreaterThanOrEqual(12);
      expect(ds.columns.length).toBeGreaterThanOrEqual(1);
      expect(ds.columns.length).toBeLessThanOrEqual(4);
      for (const f of ds.fragments) {
        const n = fragmentRowCount(ds.columns, f.rows);
        if (n === 0) seen.add('empty');
        if (n > f.batchRows) seen.add('multibatch');
        seen.add(f.format);
        for (const c of ds.columns) {
          for (const v of f.rows[c.name]!) {
            if (v === null) seen.add('null');
            else if (typeof v === 'number' && Number.isNaN(v)) seen.add('nan');
            else if (Object.is(v, -0)) seen.add('-0');
            else if (v === -(2n ** 63n) && c.type === 'int64') seen.add('int64min');
            else if (v === 2n ** 64n - 1n) seen.add('uint64max');
            else if (typeof v === 'string' && /[\u{10000}-\u{10ffff}]/u.test(v)) seen.add('astral');
            else if (typeof v === 'string' && /[\ue000-\uffff]/.test(v)) seen.add('private');
          }
        }
      }
    }
    expect([...seen].sort()).toEqual(['-0', 'astral', 'empty', 'feather', 'file', 'int64min', 'multibatch', 'nan', 'null', 'private', 'stream', 'uint64max'].sort());
  });

  it('gives NaNs several bit patterns so code that keys floats by bits is caught', () => {
    const a = nanWithBits(0x7ff80000, 0);
    const b = nanWithBits(0xfff00000, 0xdeadbeef);
    const bits = (x: number) => Buffer.from(new Float64Array([x]).buffer).toString('hex');
    expect(Number.isNaN(a) && Number.isNaN(b)).toBe(true);
    expect(bits(a)).not.toBe(bits(b));
  });
});

// ---------------------------------------------------------------------------------------------
// oracle

const n = (text: string): Literal => ({ kind: 'number', text });
const s = (value: string): Literal => ({ kind: 'string', value });
const NULL: Literal = { kind: 'null' };
const TRUE: Literal = { kind: 'bool', value: true };
const FALSE: Literal = { kind: 'bool', value: false };
const cmp = (op: '=' | '!=' | '<' | '<=' | '>' | '>=', value: Literal, column = 'x'): Predicate => ({ kind: 'compare', column, op, value });
const inList = (values: Literal[], negated = false): Predicate => ({ kind: 'in', column: 'x', values, negated });
const between = (low: Literal, high: Literal, negated = false): Predicate => ({ kind: 'between', column: 'x', low, high, negated });
const not = (operand: Predicate): Predicate => ({ kind: 'not', operand });
const and = (left: Predicate, right: Predicate): Predicate => ({ kind: 'and', left, right });
const or = (left: Predicate, right: Predicate): Predicate => ({ kind: 'or', left, right });
const isNull = (negated = false): Predicate => ({ kind: 'isNull', column: 'x', negated });

function oneColumn(type: ColumnType, values: unknown[]): GeneratedDataset {
  return { columns: [{ name: 'x', type }], fragments: [{ name: 'frag_000.arrow', rows: { x: values }, batchRows: 10, format: 'file' }] };
}
const where = (ds: GeneratedDataset, p: Predicate) => evaluateOracle(ds, p)[0];

describe('oracle: floats follow PostgreSQL order', () => {
  const ds = oneColumn('float64', [-0, 0, NaN, Infinity, -Infinity, 1, null, nanWithBits(0xfff00000, 0xdeadbeef)]);

  it('treats -0 and +0 as equal, whichever the literal is', () => {
    expect(where(ds, cmp('=', n('0')))).toEqual([0, 1]);
    expect(where(ds, cmp('=', n('-0')))).toEqual([0, 1]);
    expect(where(ds, cmp('<', n('0')))).toEqual([4]);
  });

  it('puts every NaN payload above +Infinity and equal to the NaN literal', () => {
    expect(where(ds, cmp('>', n('Infinity')))).toEqual([2, 7]);
    expect(where(ds, cmp('=', n('NaN')))).toEqual([2, 7]);
    expect(where(ds, cmp('>=', n('NaN')))).toEqual([2, 7]);
    expect(where(ds, cmp('>', n('5')))).toEqual([2, 3, 7]);
  });

  it('makes x < NaN and x != NaN true for every non-NaN, non-null row', () => {
    expect(where(ds, cmp('<', n('NaN')))).toEqual([0, 1, 3, 4, 5]);
    expect(where(ds, cmp('!=', n('NaN')))).toEqual([0, 1, 3, 4, 5]);
  });

  it('does not treat NaN as NULL', () => {
    expect(where(ds, isNull())).toEqual([6]);
    expect(where(ds, isNull(true))).toEqual([0, 1, 2, 3, 4, 5, 7]);
  });

  it('widens float32/float16 values exactly and rounds the literal to the nearest double', () => {
    const f32 = oneColumn('float32', [Math.fround(0.1)]);
    expect(where(f32, cmp('=', n('0.1')))).toEqual([]);
    expect(where(f32, cmp('>', n('0.1')))).toEqual([0]);
    expect(where(f32, cmp('=', n('0.100000001490116119384765625')))).toEqual([0]);
    expect(where(oneColumn('float16', [65504, 0.0999755859375]), cmp('=', n('65504')))).toEqual([0]);
    expect(where(oneColumn('float64', [Infinity]), cmp('=', n('1e309')))).toEqual([0]);
  });
});

describe('oracle: integers compare exactly with the literal value', () => {
  it('keeps int64 extremes exact where doubles would round (x < 9223372036854775807.5)', () => {
    const ds = oneColumn('int64', [2n ** 63n - 1n, -(2n ** 63n), 0n, 2n ** 53n + 1n]);
    expect(where(ds, cmp('<', n('9223372036854775807.5')))).toEqual([0, 1, 2, 3]);
    expect(where(ds, cmp('>', n('9223372036854775806.5')))).toEqual([0]);
    expect(where(ds, cmp('=', n('9223372036854775807')))).toEqual([0]);
    // As doubles, 2^63-1 and 2^63 are the same number.
    expect(where(ds, cmp('=', n('9223372036854775808')))).toEqual([]);
    expect(where(ds, cmp('=', n('9007199254740993')))).toEqual([3]);
    expect(where(ds, cmp('=', n('9007199254740992')))).toEqual([]);
    expect(where(ds, cmp('<=', n('-9223372036854775808.5')))).toEqual([]);
    expect(where(ds, cmp('>=', n('-9223372036854775808')))).toEqual([0, 1, 2, 3]);
  });

  it('handles uint64 beyond 2^63, negative literals and exponent notation', () => {
    const ds = oneColumn('uint64', [2n ** 64n - 1n, 0n]);
    expect(where(ds, cmp('>', n('18446744073709551614')))).toEqual([0]);
    expect(where(ds, cmp('>', n('-1')))).toEqual([0, 1]);
    expect(where(ds, cmp('=', n('1.8446744073709551615e19')))).toEqual([0]);
    expect(where(ds, cmp('<', n('18446744073709551616')))).toEqual([0, 1]);
  });

  it('compares decimals between integers as rationals (2.5, 25e-1, 2.0, -0)', () => {
    const ds = oneColumn('int32', [2, 3, 0]);
    expect(where(ds, cmp('>', n('2.5')))).toEqual([1]);
    expect(where(ds, cmp('=', n('2.5')))).toEqual([]);
    expect(where(ds, cmp('!=', n('2.5')))).toEqual([0, 1, 2]);
    expect(where(ds, cmp('=', n('2.0')))).toEqual([0]);
    expect(where(ds, cmp('<', n('25e-1')))).toEqual([0, 2]);
    expect(where(ds, cmp('=', n('-0')))).toEqual([2]);
    expect(where(ds, cmp('=', n('3e0')))).toEqual([1]);
    expect(where(ds, between(n('2.5'), n('3')))).toEqual([1]);
    expect(where(ds, between(n('3'), n('2')))).toEqual([]);
    expect(where(ds, between(n('2.5'), n('3'), true))).toEqual([0, 2]);
  });

  it('puts the NaN literal above every integer and ±Infinity beyond all of them', () => {
    const ds = oneColumn('int8', [-128, 127, null]);
    expect(where(ds, cmp('<', n('NaN')))).toEqual([0, 1]);
    expect(where(ds, cmp('=', n('NaN')))).toEqual([]);
    expect(where(ds, cmp('!=', n('NaN')))).toEqual([0, 1]);
    expect(where(ds, cmp('>', n('Infinity')))).toEqual([]);
    expect(where(ds, cmp('>', n('-Infinity')))).toEqual([0, 1]);
  });
});

describe('oracle: dates and timestamps accept ISO literals in their own unit', () => {
  it('converts ISO strings to microseconds for timestamp_us_utc (with and without Z, date-only = midnight)', () => {
    const ds = oneColumn('timestamp_us_utc', [0n, 1_000n, 951_782_400_000_000n, -1n, null]);
    expect(where(ds, cmp('=', s('1970-01-01T00:00:00.001Z')))).toEqual([1]);
    expect(where(ds, cmp('=', s('1970-01-01T00:00:00.001000')))).toEqual([1]);
    expect(where(ds, cmp('=', s('2000-02-29')))).toEqual([2]);
    expect(where(ds, cmp('=', s('2000-02-29T00:00:00')))).toEqual([2]);
    expect(where(ds, cmp('<', s('1970-01-01')))).toEqual([3]);
    expect(where(ds, cmp('=', s('1969-12-31T23:59:59.999999Z')))).toEqual([3]);
    expect(where(ds, cmp('=', n('1000')))).toEqual([1]);
  });

  it('converts ISO strings to days for date32 and to milliseconds for date64/timestamp_ms', () => {
    expect(where(oneColumn('date32', [11_016, -1, -719_162]), cmp('=', s('2000-02-29')))).toEqual([0]);
    expect(where(oneColumn('date32', [11_016, -1, -719_162]), cmp('<', s('1970-01-01')))).toEqual([1, 2]);
    expect(where(oneColumn('date32', [11_016, -1, -719_162]), cmp('=', s('0001-01-01')))).toEqual([2]);
    expect(where(oneColumn('date64', [951_782_400_000n]), cmp('=', s('2000-02-29T00:00:00.000Z')))).toEqual([0]);
    expect(where(oneColumn('timestamp_ms', [-1n, 0n]), cmp('>', s('1969-12-31T23:59:59.999Z')))).toEqual([1]);
    expect(where(oneColumn('timestamp_ms', [253_402_300_799_999n]), cmp('=', s('9999-12-31T23:59:59.999')))).toEqual([0]);
  });

  it('keeps a time finer than the unit as a fraction: it equals nothing and orders between neighbours', () => {
    const ds = oneColumn('date32', [0, 1]);
    expect(where(ds, cmp('=', s('1970-01-01T12:00:00')))).toEqual([]);
    expect(where(ds, cmp('<', s('1970-01-01T12:00:00')))).toEqual([0]);
    expect(where(oneColumn('timestamp_ms', [0n, 1n]), cmp('>', s('1970-01-01T00:00:00.0005Z')))).toEqual([1]);
  });

  it('isoSpellings produces literals that the oracle maps back to the same stored value', () => {
    for (const [type, v] of [
      ['date32', 11_016n],
      ['date32', -719_162n],
      ['date64', 951_782_400_123n],
      ['timestamp_ms', -1n],
      ['timestamp_us_utc', -1n],
      ['timestamp_us_utc', 253_402_300_799_999_999n],
    ] as const) {
      const spellings = isoSpellings(type, v);
      expect(spellings.length).toBeGreaterThan(0);
      const ds = oneColumn(type, [type === 'date32' ? Number(v) : v, type === 'date32' ? Number(v) + 1 : v + 1n]);
      for (const sp of spellings) expect(where(ds, cmp('=', s(sp))), sp).toEqual([0]);
    }
    expect(isoSpellings('timestamp_us_utc', 2n ** 63n - 1n)).toEqual([]);
  });
});

describe('oracle: three-valued logic', () => {
  const ds = oneColumn('int32', [1, 2, null]);

  it('IN is TRUE on a match, else UNKNOWN when the list holds NULL, so NOT IN with a NULL matches nothing', () => {
    expect(where(ds, inList([n('1'), NULL]))).toEqual([0]);
    expect(where(ds, inList([n('1'), NULL], true))).toEqual([]);
    expect(where(ds, not(inList([n('1'), NULL])))).toEqual([]);
    expect(where(ds, inList([n('1')], true))).toEqual([1]);
    expect(where(ds, inList([NULL]))).toEqual([]);
    expect(where(ds, inList([NULL], true))).toEqual([]);
    expect(where(ds, inList([n('1'), n('2')]))).toEqual([0, 1]);
  });

  it('makes comparisons with NULL (value or literal) UNKNOWN, and UNKNOWN survives NOT', () => {
    expect(where(ds, cmp('=', NULL))).toEqual([]);
    expect(where(ds, not(cmp('=', NULL)))).toEqual([]);
    expect(where(ds, not(cmp('=', n('1'))))).toEqual([1]);
    expect(where(ds, between(n('0'), NULL))).toEqual([]);
    // x >= 2 AND x <= NULL: FALSE for 1, UNKNOWN for 2; NOT makes 1 TRUE only.
    expect(where(ds, between(n('2'), NULL, true))).toEqual([0]);
  });

  it('follows Kleene AND/OR: FALSE AND UNKNOWN is FALSE, TRUE OR UNKNOWN is TRUE', () => {
    expect(where(ds, not(and(cmp('=', n('5')), cmp('=', NULL))))).toEqual([0, 1]);
    expect(where(ds, or(cmp('=', n('1')), cmp('=', NULL)))).toEqual([0]);
    expect(where(ds, and(cmp('=', n('1')), cmp('=', NULL)))).toEqual([]);
    expect(where(ds, not(or(cmp('=', n('1')), cmp('=', NULL))))).toEqual([]);
  });

  it('never makes IS NULL / IS NOT NULL UNKNOWN', () => {
    expect(where(ds, isNull())).toEqual([2]);
    expect(where(ds, not(isNull()))).toEqual([0, 1]);
    expect(where(ds, or(cmp('=', n('1')), isNull()))).toEqual([0, 2]);
  });

  it('answers per fragment, in fragment order, with empty fragments giving []', () => {
    const multi: GeneratedDataset = {
      columns: [{ name: 'x', type: 'int32' }],
      fragments: [
        { name: 'frag_000.arrow', rows: { x: [1, 2] }, batchRows: 1, format: 'file' },
        { name: 'frag_001.arrow', rows: { x: [] }, batchRows: 1, format: 'stream' },
        { name: 'frag_002.arrow', rows: { x: [2, 2, 1] }, batchRows: 1, format: 'feather' },
      ],
    };
    expect(evaluateOracle(multi, cmp('=', n('2')))).toEqual([[1], [], [0, 1]]);
  });
});

describe('oracle: strings and binary compare by UTF-8 bytes', () => {
  const values = ['\u{1f600}', '\ue000', '\uffff', 'a', '', null];
  for (const type of ['utf8', 'large_utf8', 'dict_utf8'] as const) {
    it(`orders astral characters above U+E000–U+FFFF (${type}), unlike JS <`, () => {
      const ds = oneColumn(type, values);
      expect('\u{1f600}' < '\ue000').toBe(true); // the trap: UTF-16 order
      expect(where(ds, cmp('>', s('\uffff')))).toEqual([0]);
      expect(where(ds, cmp('<', s('\u{1f600}')))).toEqual([1, 2, 3, 4]);
      expect(where(ds, cmp('=', s('')))).toEqual([4]);
      expect(where(ds, between(s('\ue000'), s('\u{10000}')))).toEqual([1, 2]);
    });
  }

  it('compares binary bytes with the literal UTF-8 bytes (0xff above every string)', () => {
    const ds = oneColumn('binary', [Uint8Array.of(0xff), Uint8Array.of(0xc3, 0xa9), new Uint8Array(0), Uint8Array.of(0x61, 0x00)]);
    expect(where(ds, cmp('=', s('é')))).toEqual([1]);
    expect(where(ds, cmp('>', s('\u{10ffff}')))).toEqual([0]);
    expect(where(ds, cmp('=', s('')))).toEqual([2]);
    expect(where(ds, cmp('>', s('a')))).toEqual([0, 1, 3]);
  });

  it('orders booleans false < true', () => {
    const ds = oneColumn('bool', [false, true, null]);
    expect(where(ds, cmp('<', TRUE))).toEqual([0]);
    expect(where(ds, cmp('>=', FALSE))).toEqual([0, 1]);
    expect(where(ds, cmp('!=', TRUE))).toEqual([0]);
  });

  it('rejects ill-typed literals instead of guessing', () => {
    expect(() => where(oneColumn('int32', [1]), cmp('=', s('1')))).toThrow();
    expect(() => where(oneColumn('utf8', ['1']), cmp('=', n('1')))).toThrow();
    expect(() => where(oneColumn('float64', [1]), cmp('=', TRUE))).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// predicate generator + oracle consistency

const NORMALISED = /^(-?\d+(\.\d+)?(e[+-]?\d+)?|NaN|Infinity|-Infinity)$/;

function literals(p: Predicate): Literal[] {
  switch (p.kind) {
    case 'and':
    case 'or':
      return [...literals(p.left), ...literals(p.right)];
    case 'not':
      return literals(p.operand);
    case 'compare':
      return [p.value];
    case 'between':
      return [p.low, p.high];
    case 'in':
      return p.values;
    case 'isNull':
      return [];
  }
}

describe('predicateArb', () => {
  const small = datasetArb({ minFragments: 2, maxFragments: 4, maxRows: 20 });

  it('generates only well-typed predicates with normalised number text, and the oracle obeys Kleene identities on them', () => {
    fc.assert(
      fc.property(
        small.chain((ds) => fc.tuple(fc.constant(ds), predicateArb(ds), predicateArb(ds))),
        ([ds, a, b]) => {
          for (const l of [...literals(a), ...literals(b)]) if (l.kind === 'number') expect(l.text).toMatch(NORMALISED);
          const ra = evaluateOracle(ds, a);
          const rb = evaluateOracle(ds, b);
          const rNotA = evaluateOracle(ds, not(a));
          expect(evaluateOracle(ds, not(not(a)))).toEqual(ra);
          ra.forEach((rows, i) => {
            const na = new Set(rNotA[i]);
            expect(rows.some((r) => na.has(r))).toBe(false);
            const inB = new Set(rb[i]);
            expect(evaluateOracle(ds, and(a, b))[i]).toEqual(rows.filter((r) => inB.has(r)));
            expect(evaluateOracle(ds, or(a, b))[i]).toEqual([...new Set([...rows, ...rb[i]!])].sort((x, y) => x - y));
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('matches rows often enough to be useful: many predicates select some but not all rows', () => {
    let partial = 0;
    let total = 0;
    for (const [ds, p] of fc.sample(small.chain((ds) => fc.tuple(fc.constant(ds), predicateArb(ds))), { numRuns: 300, seed: 7 })) {
      const rows = evaluateOracle(ds, p).reduce((s, r) => s + r.length, 0);
      const all = ds.fragments.reduce((s, f) => s + fragmentRowCount(ds.columns, f.rows), 0);
      total++;
      if (rows > 0 && rows < all) partial++;
    }
    expect(partial / total).toBeGreaterThan(0.3);
  });

  it('covers every predicate form and the edge literals (NULL, NaN, ISO strings, astral strings)', () => {
    const seen = new Set<string>();
    const visit = (p: Predicate): void => {
      seen.add(p.kind);
      if (p.kind === 'and' || p.kind === 'or') (visit(p.left), visit(p.right));
      else if (p.kind === 'not') visit(p.operand);
      else if (p.kind === 'compare') seen.add(`op${p.op}`);
      else if (p.kind === 'in' && p.values.some((v) => v.kind === 'null')) seen.add('inWithNull');
    };
    const ds = fc.sample(datasetArb({ types: ['float64', 'timestamp_us_utc', 'utf8', 'uint64'] }), { numRuns: 1, seed: 3 })[0]!;
    const all: GeneratedDataset = {
      columns: [
        { name: 'f', type: 'float64' },
        { name: 't', type: 'timestamp_us_utc' },
        { name: 's', type: 'utf8' },
      ],
      fragments: [{ name: 'frag_000.arrow', rows: { f: [1.5, NaN], t: [0n, 1000n], s: ['a', '\u{1f600}'] }, batchRows: 1, format: 'file' }],
    };
    for (const p of fc.sample(predicateArb(all), { numRuns: 600, seed: 11 })) {
      visit(p);
      for (const l of literals(p)) {
        if (l.kind === 'null') seen.add('NULL');
        if (l.kind === 'number' && l.text === 'NaN') seen.add('NaN');
        if (l.kind === 'string' && /^\d{4}-\d\d-\d\d/.test(l.value)) seen.add('iso');
        if (l.kind === 'string' && /[\u{10000}-\u{10ffff}]/u.test(l.value)) seen.add('astral');
      }
    }
    for (const k of ['compare', 'between', 'in', 'isNull', 'and', 'or', 'not', 'op=', 'op!=', 'op<', 'op<=', 'op>', 'op>=', 'inWithNull', 'NULL', 'NaN', 'iso', 'astral']) {
      expect(seen.has(k), k).toBe(true);
    }
    // A generated dataset's columns all get predicates the oracle can evaluate.
    for (const p of fc.sample(predicateArb(ds), { numRuns: 100, seed: 5 })) expect(() => evaluateOracle(ds, p)).not.toThrow();
  });
});
