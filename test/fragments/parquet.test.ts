/**
 * Parquet fragments are first-class: decoded through parquet-wasm they give exactly the Arrow
 * types and bits the same data has as an Arrow IPC fragment, they index and query like Arrow
 * fragments (mixed in one dataset), bad ones are refused with one line naming the object and
 * nothing committed, and their footers can be read with a couple of ranged reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { parquetMetadata, toJson, type FileMetaData } from 'hyparquet';
import { Table as WasmTable, writeParquet, WriterPropertiesBuilder } from 'parquet-wasm/node';
import { describe, expect, it } from 'vitest';
import { ColumnTypeError, FragmentReadError, MissingColumnError, type ScalarIndexError } from '../../lib/errors.js';
import { describeColumnType } from '../../lib/format/column-type.js';
import { decodeParquet, readParquetFooter } from '../../lib/fragments/parquet.js';
import { decodeFragment, isFragmentKey, type LoadedFragment } from '../../lib/fragments/reader.js';
import { listVersions } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { parsePredicate } from '../../lib/query/parser.js';
import { printPredicate } from '../../lib/query/print.js';
import { LocalStore } from '../../lib/store/local.js';
import { build } from '../../lib/workflow/build.js';
import type { IndexRequest } from '../../lib/workflow/types.js';
import {
  ALL_COLUMN_TYPES,
  ARROW_FORMATS,
  arrowType,
  columnValueArb,
  datasetArb,
  describeDataset,
  extension,
  fragmentBytes,
  intRange,
  isBigIntType,
  nanWithBits,
  PARQUET_COMPRESSIONS,
  typeFamily,
  writeDataset,
  writeFragment,
  type ColumnSpec,
  type ColumnType,
  type FragmentFormat,
  type GeneratedDataset,
} from '../support/dataset.js';
import { cells, expectedCell, hex } from '../support/cells.js';
import { evaluateOracle } from '../support/oracle.js';
import { predicateArb } from '../support/predicates.js';
import { runCli } from '../support/run-cli.js';
import { expandRanges, tempDir } from '../support/tmp.js';

// ---------------------------------------------------------------------------------------------
// Cells as exact bits (test/support/cells.ts)

const utf8 = new TextEncoder();

function columnCells(f: LoadedFragment, column: string): (string | null)[] {
  const i = f.schema.fields.findIndex((x) => x.name === column);
  return f.batches.flatMap((b) => cells(b.getChildAt(i)!.data[0]!));
}

// ---------------------------------------------------------------------------------------------
// fixtures

/** Values that break readers: extremes, NaN payloads, ±0, ±Infinity, astral and long strings. */
function edgeValues(type: ColumnType): unknown[] {
  switch (typeFamily(type)) {
    case 'int': {
      const [min, max] = intRange(type);
      return [min, max, 0n, min + 1n, max - 1n].map((b) => (isBigIntType(type) ? b : Number(b)));
    }
    case 'float':
      if (type === 'float16') return [NaN, -0, 0, Infinity, -Infinity, 65504, -65504, 2 ** -24];
      return [
        nanWithBits(0xfff00000, 0xdeadbeef),
        nanWithBits(0x7ff00000, 1),
        NaN,
        -0,
        0,
        Infinity,
        -Infinity,
        type === 'float32' ? 3.4028234663852886e38 : Number.MAX_VALUE,
        type === 'float32' ? 1.401298464324817e-45 : Number.MIN_VALUE,
      ];
    case 'string':
      return ['', '\u0000', 'é', '\uffff', '\ue000', '\u{10ffff}', '\u{1f600}x', 'long '.repeat(100)];
    case 'binary':
      return [new Uint8Array(), Uint8Array.of(0), Uint8Array.of(0xff, 0xfe), new Uint8Array(1000).fill(7)];
    case 'bool':
      return [true, false];
  }
}

const EDGE_ROWS = 150;
const EDGE_COLUMNS: ColumnSpec[] = ALL_COLUMN_TYPES.map((type) => ({ name: `c_${type}`, type }));

/** Every type's edge values, then random ones, with nulls; the same row count in every column. */
const EDGE_DATA: Record<string, unknown[]> = Object.fromEntries(
  EDGE_COLUMNS.map(({ name, type }) => {
    const edges = [...edgeValues(type), null];
    return [name, [...edges, ...fc.sample(columnValueArb(type), { numRuns: EDGE_ROWS - edges.length, seed: 11 })]];
  }),
);

const metadataOf = (bytes: Uint8Array): FileMetaData => parquetMetadata(bytes.slice().buffer);

/** Run `f`, which must throw; return what it threw. */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

// ---------------------------------------------------------------------------------------------

describe('Parquet fragments decode exactly like the same data in an Arrow IPC fragment', () => {
  const arrowFragment = decodeFragment('data/edges.arrow', 'data/edges.arrow', fragmentBytes(EDGE_COLUMNS, EDGE_DATA, { batchRows: 16, format: 'file' }));

  const layouts = PARQUET_COMPRESSIONS.flatMap((compression) => [
    { compression, dictionary: true, pages: 'dictionary pages' },
    { compression, dictionary: false, pages: 'several plain pages per row group' },
  ]);

  it.each(layouts)('all 19 types, edge values and nulls come back bit-exact: $compression, many row groups, $pages', ({ compression, dictionary }) => {
    const bytes = fragmentBytes(EDGE_COLUMNS, EDGE_DATA, { batchRows: 16, format: 'parquet', compression, dictionary });
    const md = metadataOf(bytes);
    // The layout under test: several row groups, this codec, dictionary or several plain pages.
    expect(md.row_groups.length).toBe(Math.ceil(EDGE_ROWS / 16));
    const chunks = md.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data!));
    expect(new Set(chunks.map((c) => c.codec))).toEqual(new Set([compression.toUpperCase()]));
    const pageTypes = (c: (typeof chunks)[number]) => c.encoding_stats!.flatMap((s) => Array<string>(s.count).fill(s.page_type));
    if (dictionary) expect(chunks.filter((c) => pageTypes(c).includes('DICTIONARY_PAGE')).length).toBeGreaterThan(chunks.length / 2);
    else {
      expect(chunks.some((c) => pageTypes(c).includes('DICTIONARY_PAGE'))).toBe(false);
      // Narrow columns (bool, int8…) fit 16 rows in one 64-byte page; wide ones do not.
      expect(chunks.filter((c) => pageTypes(c).length > 1).length).toBeGreaterThan(chunks.length / 3);
    }

    const parquet = decodeFragment('data/edges.parquet', 'data/edges.parquet', bytes);
    expect(parquet.rows).toBe(EDGE_ROWS);
    expect(parquet.size).toBe(bytes.byteLength);
    expect(parquet.schema.fields.map((f) => `${f.name}: ${f.type}`)).toEqual(arrowFragment.schema.fields.map((f) => `${f.name}: ${f.type}`));
    for (const { name, type } of EDGE_COLUMNS) {
      const expected = EDGE_DATA[name]!.map((v) => expectedCell(type, v));
      expect(columnCells(arrowFragment, name), `${name} from Arrow`).toEqual(expected);
      expect(columnCells(parquet, name), `${name} from Parquet`).toEqual(expected);
    }
  });

  it('index signatures match the Arrow fragment, so Parquet and Arrow fragments can share one index', () => {
    const parquet = decodeFragment('e.parquet', 'e.parquet', fragmentBytes(EDGE_COLUMNS, EDGE_DATA, { batchRows: 64, format: 'parquet' }));
    const signatures = (f: LoadedFragment) => f.schema.fields.map((x) => describeColumnType(x.name, x.type).signature);
    expect(signatures(parquet)).toEqual(signatures(arrowFragment));
    expect(signatures(parquet)).toContain('Timestamp(ms,)');
    expect(signatures(parquet)).toContain('Timestamp(us,UTC)');
  });

  it('plain pages, dictionary pages that fall back to plain mid-column, and a new dictionary per batch all read back exactly', () => {
    const columns: ColumnSpec[] = [
      { name: 'd', type: 'dict_utf8' },
      { name: 's', type: 'utf8' },
      { name: 'x', type: 'float64' },
    ];
    const n = 300;
    const rows = {
      d: Array.from({ length: n }, (_, i) => (i % 11 === 0 ? null : `k${Math.floor(i / 40)}-${i % 3}`)),
      s: Array.from({ length: n }, (_, i) => (i % 7 === 0 ? null : `v${(i * 37) % 101}`)),
      x: Array.from({ length: n }, (_, i) => (i % 5 === 0 ? nanWithBits(0x7ff00000, i + 1) : i % 3 === 0 ? -0 : i / 8)),
    };
    const ipc = fragmentBytes(columns, rows, { batchRows: n, format: 'stream' });
    const plain = fragmentBytes(columns, rows, { batchRows: 100, format: 'parquet', dictionary: false });
    // A dictionary page limit this small makes arrow-rs give up on the dictionary mid-chunk.
    const fallback = writeParquet(WasmTable.fromIPCStream(ipc), new WriterPropertiesBuilder().setDictionaryPageSizeLimit(32).setWriteBatchSize(8).setDataPageSizeLimit(1).build());
    const stats = (bytes: Uint8Array) => metadataOf(bytes).row_groups[0]!.columns[0]!.meta_data!.encoding_stats!;
    expect(stats(plain).map((s) => s.page_type)).not.toContain('DICTIONARY_PAGE');
    expect(stats(fallback).map((s) => `${s.page_type}/${s.encoding}`)).toEqual(expect.arrayContaining(['DICTIONARY_PAGE/PLAIN', 'DATA_PAGE/RLE_DICTIONARY', 'DATA_PAGE/PLAIN']));

    const reference = decodeFragment('r.arrows', 'r.arrows', ipc);
    for (const [label, bytes, batchRows] of [
      ['plain', plain, undefined],
      ['fallback', fallback, undefined],
      ['fallback, 7-row batches', fallback, 7],
      ['dictionary, 7-row batches', fragmentBytes(columns, rows, { batchRows: 50, format: 'parquet' }), 7],
    ] as const) {
      const decoded = decodeParquet(label, bytes, batchRows);
      const f = { ...reference, schema: decoded.schema, batches: decoded.batches };
      if (batchRows) expect(decoded.batches.length, label).toBe(Math.ceil(n / batchRows));
      expect(String(decoded.schema.fields[0]!.type), label).toBe(String(arrowType('dict_utf8')));
      for (const c of columns) expect(columnCells(f, c.name), `${label}: ${c.name}`).toEqual(columnCells(reference, c.name));
    }
  });

  it('timestamps keep unit and zone (none, UTC, named, offset; s to ns), and times and 16-bit ints round-trip too', () => {
    const big = BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 1_700_000_000n]);
    // A copy per column: apache-arrow 21 writes a corrupt IPC body when two columns share one array.
    const vector = (type: arrow.DataType, data: BigInt64Array | Int32Array | Int16Array | Uint16Array) =>
      arrow.makeVector(arrow.makeData({ type, length: 5, nullCount: 0, data: data.slice() } as never));
    const table = new arrow.Table({
      ts_s: vector(new arrow.TimestampSecond(), big),
      ts_ms: vector(new arrow.TimestampMillisecond(), big),
      ts_us_utc: vector(new arrow.TimestampMicrosecond('UTC'), big),
      ts_s_paris: vector(new arrow.TimestampSecond('Europe/Paris'), big),
      ts_ms_offset: vector(new arrow.TimestampMillisecond('+05:30'), big),
      ts_ns_ny: vector(new arrow.TimestampNanosecond('America/New_York'), big),
      t32_s: vector(new arrow.TimeSecond(), Int32Array.from([0, 86_399, 1, 2, 3])),
      t32_ms: vector(new arrow.TimeMillisecond(), Int32Array.from([0, 86_399_999, 1, 2, 3])),
      t64_us: vector(new arrow.TimeMicrosecond(), BigInt64Array.from([0n, 86_399_999_999n, 1n, 2n, 3n])),
      t64_ns: vector(new arrow.TimeNanosecond(), BigInt64Array.from([0n, 86_399_999_999_999n, 1n, 2n, 3n])),
      i16: vector(new arrow.Int16(), Int16Array.from([-32768, 32767, 0, 1, 2])),
      u16: vector(new arrow.Uint16(), Uint16Array.from([0, 65535, 1, 2, 3])),
    });
    const ipc = arrow.tableToIPC(table, 'stream');
    const reference = decodeFragment('t.arrows', 't.arrows', ipc);
    const parquet = decodeFragment('t.parquet', 't.parquet', writeParquet(WasmTable.fromIPCStream(ipc)));
    expect(parquet.schema.fields.map((f) => `${f.name}: ${f.type}`)).toEqual(reference.schema.fields.map((f) => `${f.name}: ${f.type}`));
    for (const f of reference.schema.fields) expect(columnCells(parquet, f.name), f.name).toEqual(columnCells(reference, f.name));
  });

  it('empty fragments (no row groups at all) decode with their schema and zero rows', () => {
    for (const batchRows of [1, 2]) {
      const bytes = fragmentBytes(EDGE_COLUMNS, Object.fromEntries(EDGE_COLUMNS.map((c) => [c.name, []])), { batchRows, format: 'parquet' });
      expect(metadataOf(bytes).row_groups).toEqual([]);
      const f = decodeFragment('data/empty.parquet', 'data/empty.parquet', bytes);
      expect(f.rows).toBe(0);
      expect(f.schema.fields.map((x) => `${x.name}: ${x.type}`)).toEqual(arrowFragment.schema.fields.map((x) => `${x.name}: ${x.type}`));
    }
  });

  it('strings come back as plain Utf8 even when the file asks for Utf8View, which nothing here could index', () => {
    const strings = ['a', 'a string longer than twelve bytes', '', 'é'];
    const views = new Uint8Array(16 * strings.length);
    const view = new DataView(views.buffer);
    const long: number[] = [];
    strings.forEach((s, i) => {
      const b = utf8.encode(s);
      view.setInt32(i * 16, b.length, true);
      if (b.length <= 12) views.set(b, i * 16 + 4);
      else {
        views.set(b.subarray(0, 4), i * 16 + 4);
        view.setInt32(i * 16 + 12, long.length, true); // buffer 0, at this offset
        long.push(...b);
      }
    });
    const data = arrow.makeData({ type: new arrow.Utf8View(), length: strings.length, nullCount: 0, views, variadicBuffers: [Uint8Array.from(long)] } as never);
    const ipc = arrow.tableToIPC(new arrow.Table({ s: arrow.makeVector(data) }), 'stream');
    const f = decodeFragment('v.parquet', 'v.parquet', writeParquet(WasmTable.fromIPCStream(ipc)));
    expect(String(f.schema.fields[0]!.type)).toBe('Utf8');
    expect(columnCells(f, 's')).toEqual(strings.map((s) => hex(utf8.encode(s))));
  });

  it('without an Arrow schema in the file, Parquet logical types decide: LargeUtf8 and dictionaries read as Utf8, Date64 as Int64', () => {
    const columns: ColumnSpec[] = ALL_COLUMN_TYPES.map((type) => ({ name: type, type }));
    const bytes = fragmentBytes(columns, Object.fromEntries(columns.map((c) => [c.name, [null]])), { batchRows: 1, format: 'parquet' });
    // Renaming the key (same length, so the footer stays valid) hides the hint as other writers would.
    const at = Buffer.from(bytes).lastIndexOf('ARROW:schema');
    expect(at).toBeGreaterThan(0);
    const unhinted = bytes.slice();
    unhinted.set(utf8.encode('XRROW:schema'), at);
    const f = decodeFragment('u.parquet', 'u.parquet', unhinted);
    const changed = f.schema.fields.filter((x) => String(x.type) !== String(arrowType(x.name as ColumnType))).map((x) => `${x.name}: ${x.type}`);
    expect(changed).toEqual(['large_utf8: Utf8', 'dict_utf8: Utf8', 'date64: Int64']);
  });
});

describe('decodeFragment on generated Parquet fragments', () => {
  it('returns exactly the generated rows, bit for bit, for every type, codec, encoding and row-group size', () => {
    fc.assert(
      fc.property(datasetArb({ formats: ['parquet'], minFragments: 1, maxFragments: 3 }), (ds) => {
        for (const frag of ds.fragments) {
          const bytes = fragmentBytes(ds.columns, frag.rows, { batchRows: frag.batchRows, format: frag.format, compression: frag.compression, dictionary: frag.dictionary });
          const f = decodeFragment(`data/${frag.name}`, frag.name, bytes);
          const where = `${frag.name} in ${describeDataset(ds)}`;
          expect(f.rows, where).toBe(frag.rows[ds.columns[0]!.name]!.length);
          for (const c of ds.columns) {
            expect(String(f.schema.fields.find((x) => x.name === c.name)!.type), where).toBe(String(arrowType(c.type)));
            expect(columnCells(f, c.name), `${c.name} of ${where}`).toEqual(frag.rows[c.name]!.map((v) => expectedCell(c.type, v)));
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('takes the format from the content and the name: Parquet named .arrow reads as Parquet, .parquet files must be Parquet', () => {
    expect(isFragmentKey('data/x.parquet')).toBe(true);
    expect(isFragmentKey('data/X.PARQUET')).toBe(true);
    const cols: ColumnSpec[] = [{ name: 'x', type: 'int32' }];
    const parquet = fragmentBytes(cols, { x: [1, null, 3] }, { batchRows: 2, format: 'parquet' });
    expect(columnCells(decodeFragment('data/odd.arrow', 'data/odd.arrow', parquet), 'x')).toEqual(['01000000', null, '03000000']);
    const arrowBytes = fragmentBytes(cols, { x: [1] }, { batchRows: 1, format: 'file' });
    const err = thrown(() => decodeFragment('data/arrow-inside.parquet', '/ds/data/arrow-inside.parquet', arrowBytes));
    expect(err).toBeInstanceOf(FragmentReadError);
    expect(err.message).toBe('corrupt or truncated fragment /ds/data/arrow-inside.parquet: not a Parquet file (no PAR1 magic at the start)');
  });
});

// ---------------------------------------------------------------------------------------------

/** Fragment ids follow path order, which is `ds.fragments` order; answers per fragment. */
function answerByFragment(ds: GeneratedDataset, r: Awaited<ReturnType<typeof query>>): number[][] {
  const out: number[][] = ds.fragments.map(() => []);
  for (const f of r.fragments) out[f.id] = expandRanges(f.ranges);
  return out;
}

async function checkAgainstOracle(root: string, ds: GeneratedDataset, text: string): Promise<void> {
  const expected = evaluateOracle(ds, parsePredicate(text));
  const bitmap = await query(root, text, { use: ['bitmap'] });
  expect(bitmap.exact, text).toBe(true);
  expect(bitmap.unindexedFragments).toEqual([]);
  expect(answerByFragment(ds, bitmap), text).toEqual(expected);
  const zones = await query(root, text, { use: ['zonemap'] });
  expect(zones.unindexedFragments).toEqual([]);
  const got = answerByFragment(ds, zones);
  expected.forEach((rows, f) => {
    const kept = new Set(got[f]);
    for (const r of rows) expect(kept.has(r), `${text}: zone map dropped fragment ${f} row ${r}`).toBe(true);
  });
}

/** `ds` with fragment `i` written as `format` (generated values are never mutated in place). */
function withFormat(ds: GeneratedDataset, i: number, format: FragmentFormat): GeneratedDataset {
  const fragments = ds.fragments.map((f, k) => {
    if (k !== i) return f;
    const { compression, ...rest } = f;
    return { ...rest, format, name: f.name.replace(/\.[a-z]+$/, extension(format)), ...(format === 'parquet' ? { compression: compression ?? 'zstd' } : {}) };
  });
  return { ...ds, fragments };
}

describe('build and query over mixed Arrow and Parquet fragments', () => {
  it('bitmap answers equal the oracle and zone-map answers contain it, on a hand-made mixed dataset', async () => {
    const columns: ColumnSpec[] = [
      { name: 'k', type: 'int64' },
      { name: 's', type: 'dict_utf8' },
    ];
    const formats: [FragmentFormat, 'snappy' | 'zstd' | 'uncompressed' | undefined][] = [
      ['parquet', 'snappy'],
      ['file', undefined],
      ['parquet', 'zstd'],
      ['stream', undefined],
      ['parquet', 'uncompressed'],
      ['feather', undefined],
    ];
    const ds: GeneratedDataset = {
      columns,
      fragments: formats.map(([format, compression], f) => {
        const n = 20 + 7 * f;
        return {
          name: `frag_${f}${extension(format)}`,
          format,
          compression,
          batchRows: 6,
          rows: {
            k: Array.from({ length: n }, (_, i) => (i % 9 === 4 ? null : i === 0 ? -(2n ** 63n) : BigInt(((i * 5 + f) % 13) - 6))),
            s: Array.from({ length: n }, (_, i) => (i % 8 === 3 ? null : ['a', 'b', '\u{1f600}', 'é'][(i + f) % 4]!)),
          },
        };
      }),
    };
    const root = tempDir('ssi-parquet-');
    // The sink form of writeDataset, into the store the dataset is read from.
    const paths = await writeDataset(new LocalStore(root), ds);
    expect(paths.filter((p) => p.endsWith('.parquet'))).toHaveLength(3);
    const out = await build({
      dataset: root,
      indexes: [
        { column: 's', type: 'bitmap' },
        { column: 'k', type: 'bitmap' },
        { column: 'k', type: 'zonemap', rowsPerZone: 4 },
        { column: 's', type: 'zonemap', rowsPerZone: 5 },
      ],
      groupRows: 40,
    });
    expect(out.fragmentsAdded).toBe(6);
    for (const text of ["s = 'b'", "s IN ('a', '\u{1f600}') OR s IS NULL", 'k > 3', 'k BETWEEN -2 AND 2 AND NOT (s = \'é\')', 'k = -9223372036854775808', 'k IS NULL AND s IS NOT NULL']) {
      await checkAgainstOracle(root, ds, text);
    }
    const r = await query(root, "s = 'a'");
    expect(r.fragments.map((f) => f.path)).toEqual(expect.arrayContaining(['data/frag_0.parquet', 'data/frag_1.arrow']));
  });

  it('random mixed datasets, built in two increments, answer like the oracle', async () => {
    const arb = datasetArb({ formats: [...ARROW_FORMATS, 'parquet'], minFragments: 4, maxFragments: 6, maxRows: 30 }).chain((drawn) => {
      // At least one fragment of each kind, whatever the draw.
      const ds = withFormat(withFormat(drawn, 0, 'parquet'), 1, 'file');
      return fc.record({ ds: fc.constant(ds), predicates: fc.array(predicateArb(ds), { minLength: 4, maxLength: 4 }), split: fc.integer({ min: 1, max: ds.fragments.length }) });
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ ds, predicates, split }) => {
        const root = tempDir('ssi-parquet-');
        const indexes: IndexRequest[] = ds.columns.flatMap((c) => [
          { column: c.name, type: 'bitmap' as const },
          { column: c.name, type: 'zonemap' as const, rowsPerZone: 3 },
        ]);
        await writeDataset(root, { ...ds, fragments: ds.fragments.slice(0, split) });
        await build({ dataset: root, indexes, groupRows: 25 });
        await writeDataset(root, { ...ds, fragments: ds.fragments.slice(split) });
        await build({ dataset: root, groupRows: 25 });
        for (const p of predicates) await checkAgainstOracle(root, ds, printPredicate(p));
      }),
      { numRuns: 6 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

const X: ColumnSpec[] = [{ name: 'x', type: 'int32' }];

async function goodDataset(): Promise<string> {
  const root = tempDir('ssi-parquet-err-');
  await writeFragment(path.join(root, 'data', 'a.arrow'), X, { x: [1, 2, null, 4] }, { batchRows: 2, format: 'file' });
  await writeFragment(path.join(root, 'data', 'b.parquet'), X, { x: [5, 1, 7] }, { batchRows: 2, format: 'parquet' });
  return root;
}

/** The build fails with `type` and a one-line `message`, on the CLI too, and commits nothing. */
async function expectRefused(root: string, indexes: IndexRequest[], type: new (...args: never[]) => ScalarIndexError, message: RegExp): Promise<void> {
  const store = new LocalStore(root);
  const before = await listVersions(store);
  const err = await build({ dataset: root, indexes }).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err).toBeInstanceOf(type);
  expect(err!.message).toMatch(message);
  expect(err!.message).not.toContain('\n');
  const cli = await runCli(['build', root, ...indexes.flatMap((ix) => ['--index', `${ix.column}:${ix.type}`]), '--quiet']);
  expect(cli.code).toBe(1);
  expect(cli.stderr).toMatch(message);
  expect(cli.stderr.trim().split('\n')).toHaveLength(1);
  expect(await listVersions(store)).toEqual(before);
}

/** Replace the codec of every column chunk, located by checking each candidate byte with hyparquet. */
function withCodecLzo(bytes: Uint8Array): Uint8Array {
  // In the thrift footer the codec is ColumnMetaData field 4, an i32 right after field 3:
  // header byte 0x15, then the zigzag varint (SNAPPY 1 → 0x02, LZO 3 → 0x06).
  const footerStart = bytes.length - 8 - new DataView(bytes.buffer, bytes.byteOffset).getUint32(bytes.length - 8, true);
  const want = JSON.stringify(toJson(metadataOf(bytes))).replaceAll('"SNAPPY"', '"LZO"');
  const out = bytes.slice();
  for (let i = footerStart; i < bytes.length - 9; i++) {
    if (bytes[i] !== 0x15 || bytes[i + 1] !== 0x02) continue;
    const candidate = out.slice();
    candidate[i + 1] = 0x06;
    try {
      if (JSON.stringify(toJson(metadataOf(candidate))).replaceAll('"SNAPPY"', '"LZO"') === want) out[i + 1] = 0x06;
    } catch {
      // not a codec field: the footer no longer parses
    }
  }
  expect(metadataOf(out).row_groups.flatMap((g) => g.columns.map((c) => c.meta_data!.codec))).toEqual(['LZO', 'LZO']);
  return out;
}

describe('bad Parquet input is refused with one line naming the object, and nothing is committed', () => {
  it('a truncated Parquet file', async () => {
    const root = await goodDataset();
    await build({ dataset: root, indexes: [{ column: 'x', type: 'bitmap' }] });
    const bytes = fragmentBytes(X, { x: Array.from({ length: 500 }, (_, i) => i) }, { batchRows: 100, format: 'parquet' });
    fs.writeFileSync(path.join(root, 'data', 'cut.parquet'), bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectRefused(root, [{ column: 'x', type: 'bitmap' }], FragmentReadError, /corrupt or truncated fragment \S*\/data\/cut\.parquet: missing Parquet footer/);
  });

  it('a file named .parquet that is not Parquet', async () => {
    const root = await goodDataset();
    fs.writeFileSync(path.join(root, 'data', 'text.parquet'), 'name,value\nx,1\n');
    await expectRefused(root, [{ column: 'x', type: 'zonemap' }], FragmentReadError, /corrupt or truncated fragment \S*\/data\/text\.parquet: not a Parquet file/);
  });

  it('a Parquet file without the indexed column names the file and the column', async () => {
    const root = await goodDataset();
    await writeFragment(path.join(root, 'data', 'c-other.parquet'), [{ name: 'y', type: 'int32' }], { y: [1] }, { batchRows: 1, format: 'parquet' });
    await expectRefused(root, [{ column: 'x', type: 'bitmap' }], MissingColumnError, /column 'x' not found in fragment \S*\/data\/c-other\.parquet \(columns: y\)/);
  });

  it('a Parquet file whose column type differs from the other fragments names both types and the file', async () => {
    const root = await goodDataset();
    await writeFragment(path.join(root, 'data', 'z-strings.parquet'), [{ name: 'x', type: 'utf8' }], { x: ['a'] }, { batchRows: 1, format: 'parquet' });
    await expectRefused(root, [{ column: 'x', type: 'zonemap' }], ColumnTypeError, /column 'x' is Utf8 in fragment \S*\/data\/z-strings\.parquet but Int32 in fragment/);
  });

  it('a Parquet file with a corrupt page or an unsupported codec gives parquet-wasm reason, and later reads still work', async () => {
    const bytes = fragmentBytes(X, { x: Array.from({ length: 50 }, (_, i) => i) }, { batchRows: 25, format: 'parquet', compression: 'snappy' });
    const pageAt = Number(metadataOf(bytes).row_groups[1]!.columns[0]!.meta_data!.data_page_offset);
    const corrupt = bytes.slice().fill(0xff, pageAt, pageAt + 16);
    const failures = [
      [corrupt, /^corrupt or truncated fragment s3:\/\/b\/data\/x\.parquet: Parquet .*error/],
      [withCodecLzo(bytes), /^corrupt or truncated fragment s3:\/\/b\/data\/x\.parquet: .*codec type LZO is not supported/],
      [new Uint8Array([0x50, 0x41, 0x52, 0x31]), /^corrupt or truncated fragment s3:\/\/b\/data\/x\.parquet: missing Parquet footer/],
    ] as const;
    for (const [bad, message] of failures) {
      const err = thrown(() => decodeFragment('data/x.parquet', 's3://b/data/x.parquet', bad));
      expect(err).toBeInstanceOf(FragmentReadError);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('\n');
      expect(decodeFragment('data/ok.parquet', 'ok', bytes).rows).toBe(50);
    }
    // The decoder is also refused and recovered through a real build.
    const root = await goodDataset();
    fs.writeFileSync(path.join(root, 'data', 'lzo.parquet'), withCodecLzo(bytes));
    await expectRefused(root, [{ column: 'x', type: 'bitmap' }], FragmentReadError, /\/data\/lzo\.parquet: .*LZO/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('readParquetFooter', () => {
  /** A ranged reader over `bytes` that records every read. */
  function rangedReader(bytes: Uint8Array) {
    const reads: [number, number][] = [];
    const read = async (start: number, end: number) => {
      expect(0 <= start && start <= end && end <= bytes.length, `read [${start}, ${end}) of ${bytes.length}`).toBe(true);
      reads.push([start, end]);
      return bytes.subarray(start, end); // a view into a larger buffer, as network reads often are
    };
    return { read, reads, bytesRead: () => reads.reduce((n, [s, e]) => n + e - s, 0) };
  }

  it('gives the row count and column names of a multi-megabyte file from one read of its tail', async () => {
    const n = 120_000;
    const cols: ColumnSpec[] = [
      { name: 'id', type: 'int64' },
      { name: 'name', type: 'utf8' },
      { name: 'score', type: 'float64' },
    ];
    const rows = {
      id: Array.from({ length: n }, (_, i) => BigInt(i) * 7919n),
      name: Array.from({ length: n }, (_, i) => `n${i}`),
      score: Array.from({ length: n }, (_, i) => i / 3),
    };
    const bytes = fragmentBytes(cols, rows, { batchRows: 50_000, pageBytes: 1 << 20, format: 'parquet', compression: 'uncompressed' });
    expect(bytes.length).toBeGreaterThan(2 * 2 ** 20);
    const r = rangedReader(bytes);
    expect(await readParquetFooter(r.read, bytes.length, 'data/big.parquet')).toEqual({ rows: n, columns: ['id', 'name', 'score'] });
    expect(r.reads).toEqual([[bytes.length - 64 * 1024, bytes.length]]);
  });

  it('takes exactly two reads when the footer is larger than the first read', async () => {
    const cols: ColumnSpec[] = Array.from({ length: 300 }, (_, i) => ({ name: `col_${i}`, type: 'int32' }));
    const rows = Object.fromEntries(cols.map((c, i) => [c.name, Array.from({ length: 12 }, (_, r) => r * i)]));
    const bytes = fragmentBytes(cols, rows, { batchRows: 4, format: 'parquet' });
    const footerBytes = new DataView(bytes.buffer, bytes.byteOffset).getUint32(bytes.length - 8, true);
    expect(footerBytes).toBeGreaterThan(64 * 1024);
    const r = rangedReader(bytes);
    const footer = await readParquetFooter(r.read, bytes.length);
    expect(footer.rows).toBe(12);
    expect(footer.columns).toEqual(cols.map((c) => c.name));
    expect(r.reads).toHaveLength(2);
    expect(r.bytesRead()).toBeLessThan(footerBytes + 64 * 1024 + 8);
  });

  it('reads a small or empty file in one read, and agrees with the full decode', async () => {
    for (const n of [0, 3]) {
      const bytes = fragmentBytes(EDGE_COLUMNS, Object.fromEntries(EDGE_COLUMNS.map((c) => [c.name, EDGE_DATA[c.name]!.slice(0, n)])), { batchRows: 2, format: 'parquet' });
      const r = rangedReader(bytes);
      const footer = await readParquetFooter(r.read, bytes.length);
      const full = decodeFragment('f.parquet', 'f.parquet', bytes);
      expect(footer).toEqual({ rows: full.rows, columns: full.schema.fields.map((f) => f.name) });
      expect(footer.rows).toBe(n);
      expect(r.reads).toEqual([[0, bytes.length]]);
    }
  });

  it('refuses what is not a Parquet footer with a one-line error naming the file, and passes read errors through', async () => {
    const notParquet = utf8.encode('x'.repeat(100));
    await expect(readParquetFooter(rangedReader(notParquet).read, notParquet.length, 's3://b/data/t.parquet')).rejects.toThrow(
      /^corrupt or truncated fragment s3:\/\/b\/data\/t\.parquet: parquet file invalid/,
    );
    const tiny = Uint8Array.of(0x50, 0x41, 0x52, 0x31);
    await expect(readParquetFooter(rangedReader(tiny).read, tiny.length, 'tiny.parquet')).rejects.toBeInstanceOf(FragmentReadError);
    const bytes = fragmentBytes(X, { x: [1] }, { batchRows: 1, format: 'parquet' });
    const cut = bytes.subarray(0, bytes.length - 20);
    await expect(readParquetFooter(rangedReader(cut).read, cut.length, 'cut.parquet')).rejects.toThrow(/^corrupt or truncated fragment cut\.parquet: /);
    const gone = new Error('connection reset');
    await expect(readParquetFooter(() => Promise.reject(gone), 1000, 'x.parquet')).rejects.toBe(gone);
  });
});
