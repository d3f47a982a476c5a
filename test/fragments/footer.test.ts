/**
 * Registration reads (`readFragmentFooter`), pinned against the whole-file read
 * (`loadFragment` / `decodeFragment`):
 * - over generated fragments of every format and column type (empty ones, zero-batch files,
 *   dictionary columns, Parquet with and without the Arrow schema hint), the same rows and
 *   schema as the whole read, and `fingerprintOf` the whole bytes equals the fingerprint,
 *   whether the file is read whole, from a tail of a few bytes, or range by range;
 * - the format comes from the content, as the whole read decides it, even when the name and
 *   the last bytes suggest another;
 * - read budget: requests and bytes per fragment for Arrow files of 1, 8 and 30 MB with 1, 16
 *   and 128 batches, Parquet with many row groups, and streams, counted by a wrapper around
 *   the store;
 * - damage to footers, headers and magic, and truncation: a FragmentReadError naming the
 *   file, or the rows and schema the whole read reports, never another exception or a hang;
 * - on S3 (s3rver behind the recording proxy): the same answers, and the proxy's log agrees
 *   with the reported reads and bytes.
 */
import * as arrow from 'apache-arrow';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import fc from 'fast-check';
import { Table as WasmTable, writeParquet, WriterPropertiesBuilder, Compression } from 'parquet-wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FragmentReadError, NotFoundError, ScalarIndexError, StoreError } from '../../lib/errors.js';
import { describeColumnType } from '../../lib/format/column-type.js';
import { FOOTER_READ_DEFAULTS, fingerprintOf, readFragmentFooter, type FooterReadTuning, type FragmentFooter } from '../../lib/fragments/footer.js';
import { decodeParquet } from '../../lib/fragments/parquet.js';
import { decodeFragment, loadFragment, type LoadedFragment } from '../../lib/fragments/reader.js';
import { LocalStore } from '../../lib/store/local.js';
import { S3Store } from '../../lib/store/s3.js';
import type { ObjectInfo, ObjectStore, ObjectWriter } from '../../lib/store/store.js';
import { Watchdog } from '../integrity/watchdog.js';
import { ALL_COLUMN_TYPES, datasetArb, describeDataset, extension, fragmentBytes, type ColumnSpec, type FragmentFormat } from '../support/dataset.js';
import { useS3Server } from '../support/s3-env.js';
import { tempDir } from '../support/tmp.js';

const ALL_FORMATS: readonly FragmentFormat[] = ['file', 'stream', 'feather', 'parquet'];
const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------------------------------------
// stores

/** Objects in memory; reads hand back copies, a range past the end comes back short (as LocalStore). */
class MemoryStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  describe(key: string): string {
    return `mem://bucket/${key}`;
  }
  async head(key: string): Promise<ObjectInfo | undefined> {
    const b = this.objects.get(key);
    return b ? { key, size: b.byteLength } : undefined;
  }
  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    const b = this.objects.get(key);
    if (!b) throw new NotFoundError(this.describe(key));
    return range ? b.slice(Math.min(range.start, b.byteLength), Math.min(range.end, b.byteLength)) : b.slice();
  }
  async put(key: string, body: Uint8Array): Promise<ObjectInfo> {
    this.objects.set(key, body);
    return { key, size: body.byteLength };
  }
  async openWriter(): Promise<ObjectWriter> {
    throw new Error('not used');
  }
  async *list(): AsyncIterable<ObjectInfo> {}
  async deleteMany(): Promise<void> {}
}

/** Counts what goes through to another store: reads, ranges and bytes. */
class CountingStore implements ObjectStore {
  readonly reads: { key: string; start?: number; end?: number; bytes: number }[] = [];
  constructor(readonly inner: ObjectStore) {}
  describe(key: string): string {
    return this.inner.describe(key);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }
  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    const bytes = await this.inner.read(key, range);
    this.reads.push({ key, start: range?.start, end: range?.end, bytes: bytes.byteLength });
    return bytes;
  }
  put(key: string, body: Uint8Array): Promise<ObjectInfo> {
    return this.inner.put(key, body);
  }
  openWriter(key: string): Promise<ObjectWriter> {
    return this.inner.openWriter(key);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  deleteMany(keys: readonly string[]): Promise<void> {
    return this.inner.deleteMany(keys);
  }
  reset(): void {
    this.reads.length = 0;
  }
  get bytes(): number {
    return this.reads.reduce((n, r) => n + r.bytes, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// comparing with the whole-file read

/** A schema as the index sees it: names, types, nullability, signatures (null: not indexable), metadata. */
function schemaView(schema: arrow.Schema): unknown {
  return {
    fields: schema.fields.map((f) => {
      let signature: string | null = null;
      try {
        signature = describeColumnType(f.name, f.type).signature;
      } catch {
        // not indexable: the type string still has to agree
      }
      return { name: f.name, type: String(f.type), nullable: f.nullable, signature, metadata: [...f.metadata].sort() };
    }),
    metadata: [...schema.metadata].sort(),
  };
}

function expectSameAsWhole(footer: FragmentFooter, whole: Pick<LoadedFragment, 'rows' | 'schema'>, bytes: Uint8Array, key: string, what: string): void {
  expect(footer.rows, `rows of ${what}`).toBe(whole.rows);
  expect(schemaView(footer.schema), `schema of ${what}`).toEqual(schemaView(whole.schema));
  expect(footer.size, what).toBe(bytes.byteLength);
  expect(footer.fingerprint, `fingerprintOf ${what}`).toBe(fingerprintOf(key, bytes));
}

const keyOf = (name: string, format: FragmentFormat) => `data/${name}${extension(format)}`;

/** Tunings that force every path: whole, a tail of a few bytes, no coalescing, tiny stream reads. */
const TUNINGS: readonly Partial<FooterReadTuning>[] = [
  {},
  { wholeFileBytes: 0 },
  { wholeFileBytes: 0, tailBytes: 16, coalesceGap: 0, streamReadAhead: 8, streamHeaderProbe: 8 },
  { wholeFileBytes: 0, tailBytes: 100, coalesceGap: 1 << 30, streamReadAhead: 600, streamHeaderProbe: 64 },
  { wholeFileBytes: 0, tailBytes: 600, concurrency: 1, largeFileBytes: 0, largeFileShare: 0.5 },
];

// ---------------------------------------------------------------------------------------------

describe('readFragmentFooter against the whole-file read', () => {
  it('gives the same rows, schema (names, types, signatures) and a fingerprint fingerprintOf recomputes, for every format, column type and read path', async () => {
    await fc.assert(
      fc.asyncProperty(
        datasetArb({ minFragments: 1, maxFragments: 4, maxRows: 60, formats: ALL_FORMATS }),
        fc.constantFrom(...TUNINGS),
        async (ds, tuning) => {
          const store = new CountingStore(new MemoryStore());
          for (const f of ds.fragments) {
            const key = `data/${f.name}`;
            const bytes = fragmentBytes(ds.columns, f.rows, { batchRows: f.batchRows, format: f.format, compression: f.compression, dictionary: f.dictionary });
            await store.put(key, bytes);
            const what = `${f.name} (${JSON.stringify(tuning)}) of ${describeDataset(ds)}`;
            const whole = await loadFragment(store, key);
            store.reset();
            const footer = await readFragmentFooter(store, key, bytes.byteLength, tuning);
            expectSameAsWhole(footer, whole, bytes, key, what);
            expect(footer.rows, what).toBe(f.rows[ds.columns[0]!.name]!.length);
            expect(footer.fingerprint, what).toMatch(f.format === 'parquet' ? /^parquet:/ : f.format === 'stream' ? /^arrowstream:/ : /^arrowfile:/);
            // An Arrow file's fingerprint is the scheme registrations already use.
            if (f.format === 'file' || f.format === 'feather') expect(footer.fingerprint, what).toBe(whole.fingerprint);
            expect({ reads: footer.reads, bytesRead: footer.bytesRead }, what).toEqual({ reads: store.reads.length, bytesRead: store.bytes });
            expect(store.reads.every((r) => r.start !== undefined && r.end! <= bytes.byteLength && r.bytes === r.end! - r.start!)).toBe(true);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads Parquet schemas exactly as decodeParquet does, with and without the ARROW:schema hint, for every column type and more', async () => {
    // Every generated type, plus types with no Parquet twin (seconds, nanoseconds, unsigned
    // 16-bit, times, decimals, fixed-size binary, views, nested): the hint decides some, the
    // Parquet types others.
    const extra: [string, arrow.DataType][] = [
      ['u16', new arrow.Uint16()],
      ['i16', new arrow.Int16()],
      ['ts_s', new arrow.TimestampSecond()],
      ['ts_ns_tz', new arrow.TimestampNanosecond('Europe/Paris')],
      ['ts_ms_tz', new arrow.TimestampMillisecond('+01:00')],
      ['t32', new arrow.TimeMillisecond()],
      ['t64', new arrow.TimeMicrosecond()],
      ['t64ns', new arrow.TimeNanosecond()],
      ['dec', new arrow.Decimal(2, 9, 128)],
      ['fsb', new arrow.FixedSizeBinary(3)],
      ['lbin', new arrow.LargeBinary()],
      ['list', new arrow.List(new arrow.Field('item', new arrow.Int32(), true))],
      ['struct', new arrow.Struct([new arrow.Field('a', new arrow.Utf8(), true), new arrow.Field('b', new arrow.Float64(), false)])],
      ['dict16', new arrow.Dictionary(new arrow.Utf8(), new arrow.Int16())],
    ];
    const generated: ColumnSpec[] = ALL_COLUMN_TYPES.map((type) => ({ name: type, type }));
    const nulls = (n: number) => Object.fromEntries(generated.map((c) => [c.name, Array.from({ length: n }, () => null)]));
    const files: [string, Uint8Array][] = [
      ['generated', fragmentBytes(generated, nulls(3), { batchRows: 2, format: 'parquet' })],
      ['generated, no rows', fragmentBytes(generated, nulls(0), { batchRows: 1, format: 'parquet' })],
    ];
    const extraTable = new arrow.Table(
      new arrow.Schema([...extra.map(([name, type]) => new arrow.Field(name, type, name !== 'i16')), new arrow.Field('req', new arrow.Int32(), false)], new Map([['origin', 'test']])),
      [],
    );
    const extraBatch = new arrow.RecordBatch(
      extraTable.schema,
      arrow.makeData({
        type: new arrow.Struct(extraTable.schema.fields),
        length: 2,
        nullCount: 0,
        children: extraTable.schema.fields.map((f) => arrow.makeVector(arrow.vectorFromArray(f.name === 'i16' || f.name === 'req' ? [1, 2] : [null, null], f.type)).data[0]!),
      }),
    );
    files.push(['extra types', writeParquet(WasmTable.fromIPCStream(arrow.tableToIPC(new arrow.Table([extraBatch]), 'stream')))]);
    const utf8 = new TextEncoder();
    const store = new MemoryStore();
    let checked = 0;
    for (const [name, hinted] of files) {
      const at = Buffer.from(hinted).lastIndexOf('ARROW:schema');
      expect(at, name).toBeGreaterThan(0);
      // Renaming the key (same length, so the footer stays valid) hides the hint, as writers other than Arrow's leave it out.
      const unhinted = hinted.slice();
      unhinted.set(utf8.encode('XRROW:schema'), at);
      for (const [variant, bytes] of [
        ['with hint', hinted],
        ['without hint', unhinted],
      ] as const) {
        const key = `data/${name.replace(/\W+/g, '_')}_${variant.replace(/\W+/g, '_')}.parquet`;
        await store.put(key, bytes);
        const decoded = decodeParquet(key, bytes);
        const rows = decoded.batches.reduce((n, b) => n + b.numRows, 0);
        for (const tuning of [{}, { wholeFileBytes: 0, tailBytes: 64 }]) {
          const footer = await readFragmentFooter(store, key, bytes.byteLength, tuning);
          expectSameAsWhole(footer, { rows, schema: decoded.schema }, bytes, key, `${name}, ${variant}`);
          checked++;
        }
      }
    }
    expect(checked).toBe(12);
  });

  it('documents its blind spot: an Arrow file or stream rewritten with other values in the same layout keeps its fingerprint', async () => {
    const cols: ColumnSpec[] = [
      { name: 'a', type: 'int64' },
      { name: 'b', type: 'float64' },
    ];
    const rowsA = { a: [1n, 2n, 3n, 4n], b: [0.5, 1.5, 2.5, 3.5] };
    const rowsB = { a: [9n, 8n, 7n, 6n], b: [-1, -2, -3, -4] };
    for (const format of ['file', 'stream'] as const) {
      const one = fragmentBytes(cols, rowsA, { batchRows: 3, format });
      const other = fragmentBytes(cols, rowsB, { batchRows: 3, format });
      expect(Buffer.compare(one, other)).not.toBe(0);
      expect(fingerprintOf(`x${extension(format)}`, one)).toBe(fingerprintOf(`x${extension(format)}`, other));
    }
    // Parquet's footer holds column statistics: the same rewrite changes it.
    const p1 = fragmentBytes(cols, rowsA, { batchRows: 3, format: 'parquet' });
    const p2 = fragmentBytes(cols, rowsB, { batchRows: 3, format: 'parquet' });
    expect(fingerprintOf('x.parquet', p1)).not.toBe(fingerprintOf('x.parquet', p2));
  });
});

// ---------------------------------------------------------------------------------------------
// read budget

/** An Arrow table of about `bytes` bytes (an int64 and a float64 column) in `batches` batches. */
function bigTable(bytes: number, batches: number): arrow.Table {
  const rows = Math.floor(bytes / 16);
  const schema = new arrow.Schema([new arrow.Field('id', new arrow.Int64(), false), new arrow.Field('x', new arrow.Float64(), true)]);
  const out: arrow.RecordBatch[] = [];
  let seed = 12345;
  for (let b = 0; b < batches; b++) {
    const start = Math.floor((rows * b) / batches);
    const n = Math.floor((rows * (b + 1)) / batches) - start;
    const id = new BigInt64Array(n);
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      id[i] = BigInt(start + i);
      seed = (seed * 1103515245 + 12345) >>> 0;
      x[i] = seed / 7;
    }
    const children = [arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: id }), arrow.makeData({ type: new arrow.Float64(), length: n, nullCount: 0, data: x })];
    out.push(new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: n, nullCount: 0, children })));
  }
  return new arrow.Table(schema, out);
}

function bigParquet(table: arrow.Table, rowGroups: number): Uint8Array {
  const props = new WriterPropertiesBuilder()
    .setCompression(Compression.UNCOMPRESSED)
    .setDictionaryEnabled(false)
    .setMaxRowGroupSize(Math.ceil(table.numRows / rowGroups))
    .build();
  return writeParquet(WasmTable.fromIPCStream(arrow.tableToIPC(table, 'stream')), props);
}

describe('read budget', () => {
  const SIZES = [1 * MiB, 8 * MiB, 30 * MiB];
  const BATCHES = [1, 16, 128];
  const report: string[] = [];
  afterAll(() => console.log(`registration reads per fragment (default tuning):\n${report.join('\n')}`));

  async function measure(format: FragmentFormat, bytes: Uint8Array, rows: number, label: string): Promise<FragmentFooter> {
    const store = new CountingStore(new MemoryStore());
    const key = keyOf('big', format);
    await store.put(key, bytes);
    const footer = await readFragmentFooter(store, key, bytes.byteLength);
    expect(footer.rows, label).toBe(rows);
    expect(footer.schema.fields.map((f) => f.name), label).toEqual(['id', 'x']);
    expect(footer.fingerprint, label).toBe(fingerprintOf(key, bytes));
    expect({ reads: footer.reads, bytesRead: footer.bytesRead }, label).toEqual({ reads: store.reads.length, bytesRead: store.bytes });
    const share = footer.bytesRead / bytes.byteLength;
    report.push(`  ${label.padEnd(34)} ${String(bytes.byteLength).padStart(9)} B: ${String(footer.reads).padStart(3)} requests, ${String(footer.bytesRead).padStart(8)} B (${(100 * share).toFixed(2)}%)`);
    return footer;
  }

  it('an Arrow file: at most 3 requests when it has one batch or is small enough to coalesce, and at most 2% of a file of 8 MiB or more', async () => {
    for (const size of SIZES) {
      for (const batches of BATCHES) {
        const table = bigTable(size, batches);
        const bytes = arrow.tableToIPC(table, 'file');
        const label = `Arrow file ${size / MiB} MiB, ${batches} batches`;
        const f = await measure('file', bytes, table.numRows, label);
        if (batches === 1 || size < FOOTER_READ_DEFAULTS.largeFileBytes) expect(f.reads, label).toBeLessThanOrEqual(3);
        if (size >= FOOTER_READ_DEFAULTS.largeFileBytes) {
          expect(f.bytesRead / bytes.byteLength, label).toBeLessThanOrEqual(0.02);
          // Headers spread further apart than a coalesced read may span: one request each, in parallel.
          expect(f.reads, label).toBeLessThanOrEqual(batches + 2);
        }
      }
    }
  });

  it('a Parquet file with many row groups: at most 3 requests and 2% of a file of 8 MiB or more', async () => {
    for (const size of SIZES) {
      for (const groups of BATCHES) {
        const table = bigTable(size, 1);
        const bytes = bigParquet(table, groups);
        const label = `Parquet ${size / MiB} MiB, ${groups} row groups`;
        const f = await measure('parquet', bytes, table.numRows, label);
        expect(f.reads, label).toBeLessThanOrEqual(3);
        if (size >= FOOTER_READ_DEFAULTS.largeFileBytes) expect(f.bytesRead / bytes.byteLength, label).toBeLessThanOrEqual(0.02);
      }
    }
  });

  it('a stream: a request per header once bodies are large, a few headers per request while they are small', async () => {
    for (const size of SIZES) {
      for (const batches of BATCHES) {
        const table = bigTable(size, batches);
        const bytes = arrow.tableToIPC(table, 'stream');
        const label = `Arrow stream ${size / MiB} MiB, ${batches} batches`;
        const f = await measure('stream', bytes, table.numRows, label);
        // The schema and the first header come with the first read.
        expect(f.reads, label).toBeLessThanOrEqual(batches + 1);
        if (size >= FOOTER_READ_DEFAULTS.largeFileBytes) expect(f.bytesRead / bytes.byteLength, label).toBeLessThanOrEqual(0.02);
      }
    }
    // Many small messages: read ahead, not a request each.
    const table = bigTable(512 * KiB, 256);
    const f = await measure('stream', arrow.tableToIPC(table, 'stream'), table.numRows, 'Arrow stream 0.5 MiB, 256 batches');
    // Reads of 64 KiB, then as much again as already read: 64 KiB, 128 KiB, 256 KiB, the rest.
    expect(f.reads).toBeLessThanOrEqual(6);
  });
});

// ---------------------------------------------------------------------------------------------
// formats, edge cases, errors

/** An Arrow stream of one binary column holding `values` (one batch each), without its end-of-stream marker. */
function streamWithoutEos(values: Uint8Array[]): Uint8Array {
  const schema = new arrow.Schema([new arrow.Field('b', new arrow.Binary(), false)]);
  const batches = values.map((v) => {
    const data = arrow.makeData({ type: new arrow.Binary(), length: 1, nullCount: 0, data: v, valueOffsets: Int32Array.of(0, v.byteLength) });
    return new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: 1, nullCount: 0, children: [data] }));
  });
  const bytes = arrow.tableToIPC(new arrow.Table(schema, batches), 'stream');
  // The writer ends with the marker: 0xFFFFFFFF then a zero length.
  expect([...bytes.subarray(bytes.byteLength - 8)]).toEqual([255, 255, 255, 255, 0, 0, 0, 0]);
  return bytes.subarray(0, bytes.byteLength - 8);
}

const RANGED: Partial<FooterReadTuning> = { wholeFileBytes: 0, tailBytes: 32, streamReadAhead: 16, streamHeaderProbe: 8 };

async function footerAndWhole(bytes: Uint8Array, key: string, tuning: Partial<FooterReadTuning> = {}) {
  const store = new MemoryStore();
  await store.put(key, bytes);
  return { footer: await readFragmentFooter(store, key, bytes.byteLength, tuning), whole: await loadFragment(store, key), store };
}

describe('formats come from the content, as the whole-file read decides', () => {
  const cols: ColumnSpec[] = [
    { name: 'n', type: 'int32' },
    { name: 's', type: 'dict_utf8' },
  ];
  const rows = { n: [1, 2, null, 4, 5], s: ['a', null, 'b', 'a', '\u{1f600}'] };

  it('reads a stream named .arrow, a file named .arrows, and Parquet named .arrow or .feather', async () => {
    const cases: [FragmentFormat, string][] = [
      ['stream', 'data/s.arrow'],
      ['stream', 'data/s.feather'],
      ['file', 'data/f.arrows'],
      ['file', 'data/f.bin'],
      ['parquet', 'data/p.arrow'],
      ['parquet', 'data/p.feather'],
      ['stream', 'data/s.bin'],
    ];
    for (const [format, key] of cases) {
      const bytes = fragmentBytes(cols, rows, { batchRows: 2, format });
      for (const tuning of [{}, RANGED]) {
        const { footer, whole } = await footerAndWhole(bytes, key, tuning);
        expectSameAsWhole(footer, whole, bytes, key, `${format} as ${key}`);
        expect(footer.rows).toBe(5);
        expect(footer.fingerprint).toMatch(format === 'parquet' ? /^parquet:/ : format === 'stream' ? /^arrowstream:/ : /^arrowfile:/);
      }
    }
  });

  it('a stream whose last bytes look like an Arrow file or Parquet trailer is still read as the stream it is', async () => {
    const utf8 = new TextEncoder();
    for (const [ending, key] of [
      ['xxARROW1', 'data/looks-like-a-file.arrow'],
      ['xxxxPAR1', 'data/looks-like-parquet.arrow'],
      ['xxARROW1', 'data/looks-like-a-file.bin'],
    ] as const) {
      const bytes = streamWithoutEos([utf8.encode('first'), utf8.encode(ending)]);
      expect(Buffer.from(bytes.subarray(bytes.byteLength - 8)).toString()).toBe(ending);
      for (const tuning of [{}, RANGED]) {
        const { footer, whole } = await footerAndWhole(bytes, key, tuning);
        expectSameAsWhole(footer, whole, bytes, key, key);
        expect(footer.rows).toBe(2);
        expect(footer.fingerprint).toMatch(/^arrowstream:/);
      }
    }
  });

  it('refuses, as the whole read does, a .parquet name over Arrow bytes and Arrow magic without a trailer', async () => {
    const arrowFile = fragmentBytes(cols, rows, { batchRows: 2, format: 'file' });
    const cases: [string, Uint8Array, RegExp][] = [
      ['data/x.parquet', arrowFile, /not a Parquet file/],
      ['data/x.arrow', arrowFile.subarray(0, arrowFile.byteLength - 3), /missing Arrow file footer/],
      ['data/x.arrow', Uint8Array.of(1, 2, 3), /not an Arrow file/],
      ['data/x.arrows', Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), /no schema/],
    ];
    for (const [key, bytes, why] of cases) {
      for (const tuning of [{}, RANGED]) {
        const store = new MemoryStore();
        await store.put(key, bytes);
        await expect(loadFragment(store, key), key).rejects.toThrow(FragmentReadError);
        const err = await readFragmentFooter(store, key, bytes.byteLength, tuning).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, key).toBeInstanceOf(FragmentReadError);
        expect((err as Error).message, key).toMatch(why);
        expect((err as Error).message, key).toContain(store.describe(key));
        expect(fingerprintOf(key, bytes)).toMatch(/^sha256:/);
      }
    }
  });
});

describe('edge cases', () => {
  const cols: ColumnSpec[] = [
    { name: 'a', type: 'int64' },
    { name: 'd', type: 'dict_utf8' },
    { name: 't', type: 'timestamp_us_utc' },
  ];
  const empty = { a: [], d: [], t: [] };

  it('empty fragments: no batches at all, one zero-row batch, no row groups: zero rows and the full schema', async () => {
    for (const format of ALL_FORMATS) {
      for (const batchRows of [1, 2]) {
        const bytes = fragmentBytes(cols, empty, { batchRows, format });
        const key = keyOf('empty', format);
        for (const tuning of [{}, RANGED]) {
          const { footer, whole } = await footerAndWhole(bytes, key, tuning);
          expectSameAsWhole(footer, whole, bytes, key, `empty ${format}, batchRows ${batchRows}`);
          expect(footer.rows).toBe(0);
          expect(footer.schema.fields.map((f) => f.name)).toEqual(['a', 'd', 't']);
        }
      }
    }
  });

  it('legacy IPC framing (4-byte length prefixes, before Arrow 0.15) reads the same', async () => {
    // apache-arrow writes legacy framing only in streams.
    const table = arrow.tableFromIPC(fragmentBytes(cols, { a: [1n, 2n, 3n], d: ['x', 'y', null], t: [0n, null, 5n] }, { batchRows: 2, format: 'file' }));
    for (const [key, bytes] of [['data/legacy.arrows', arrow.RecordBatchStreamWriter.writeAll(table, { writeLegacyIpcFormat: true }).toUint8Array(true)]] as const) {
      // No continuation marker: the first message length comes first.
      expect(new DataView(bytes.buffer, bytes.byteOffset).getInt32(0, true)).toBeGreaterThan(0);
      for (const tuning of [{}, RANGED]) {
        const { footer, whole } = await footerAndWhole(bytes, key, tuning);
        expectSameAsWhole(footer, whole, bytes, key, key);
        expect(footer.rows).toBe(3);
      }
    }
  });

  it('compressed batches: counted from their headers, bodies never read', async () => {
    // A stand-in ZSTD codec (the frame magic, then the bytes as they are), so the whole read can decode too.
    const magic = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0, 0);
    arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, {
      encode: (d: Uint8Array) => {
        const out = new Uint8Array(magic.length + d.length);
        out.set(magic);
        out.set(d, magic.length);
        return out;
      },
      decode: (d: Uint8Array) => d.slice(magic.length),
    });
    try {
      const table = bigTable(2 * MiB, 4);
      for (const [key, bytes] of [
        ['data/z.arrow', arrow.RecordBatchFileWriter.writeAll(table, { compressionType: arrow.CompressionType.ZSTD }).toUint8Array(true)],
        ['data/z.arrows', arrow.RecordBatchStreamWriter.writeAll(table, { compressionType: arrow.CompressionType.ZSTD }).toUint8Array(true)],
      ] as const) {
        const { footer, whole } = await footerAndWhole(bytes, key, { coalesceGap: 0 });
        expectSameAsWhole(footer, whole, bytes, key, key);
        expect(footer.rows).toBe(table.numRows);
        expect(footer.bytesRead).toBeLessThan(bytes.byteLength / 10);
      }
    } finally {
      arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, null as never);
    }
  });

  it('a footer larger than the first read: one more request, for the rest of it', async () => {
    const wide: ColumnSpec[] = Array.from({ length: 1500 }, (_, i) => ({ name: `column_with_a_long_name_${i}`, type: 'int32' }));
    const rows = Object.fromEntries(wide.map((c, i) => [c.name, [i, null]]));
    for (const format of ['file', 'parquet'] as const) {
      const bytes = fragmentBytes(wide, rows, { batchRows: 2, format });
      const key = keyOf('wide', format);
      const store = new CountingStore(new MemoryStore());
      await store.put(key, bytes);
      const footer = await readFragmentFooter(store, key, bytes.byteLength);
      const whole = await loadFragment(store, key);
      expectSameAsWhole(footer, whole, bytes, key, `wide ${format}`);
      // file: tail, rest of the footer, head and the one header; Parquet: head and tail at once, the rest of the footer.
      const footerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(bytes.byteLength - (format === 'file' ? 10 : 8), true);
      expect(footerLength).toBeGreaterThan(FOOTER_READ_DEFAULTS.tailBytes);
      expect(footer.reads, format).toBe(3);
    }
  });

  it('duplicate column names: a FragmentReadError naming the file and the name', async () => {
    const fields = [new arrow.Field('a', new arrow.Int32()), new arrow.Field('b', new arrow.Utf8()), new arrow.Field('a', new arrow.Float64())];
    const schema = new arrow.Schema(fields);
    const children = [arrow.vectorFromArray([1, 2], new arrow.Int32()), arrow.vectorFromArray(['x', 'y'], new arrow.Utf8()), arrow.vectorFromArray([0.5, 1], new arrow.Float64())].map((v) => v.data[0]!);
    const table = new arrow.Table([new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(fields), length: 2, nullCount: 0, children }))]);
    const files: [string, Uint8Array][] = [
      ['data/dup.arrow', arrow.tableToIPC(table, 'file')],
      ['data/dup.arrows', arrow.tableToIPC(table, 'stream')],
    ];
    // parquet-wasm takes only a readable stream; apache-arrow writes one only when the two columns share a type.
    const same = new arrow.Schema([fields[0]!, fields[1]!, new arrow.Field('a', new arrow.Int32())]);
    const sameBatch = new arrow.RecordBatch(same, arrow.makeData({ type: new arrow.Struct(same.fields), length: 2, nullCount: 0, children: [children[0]!, children[1]!, children[0]!] }));
    files.push(['data/dup.parquet', writeParquet(WasmTable.fromIPCStream(arrow.tableToIPC(new arrow.Table([sameBatch]), 'stream')))]);
    for (const [key, bytes] of files) {
      for (const tuning of [{}, RANGED]) {
        const store = new MemoryStore();
        await store.put(key, bytes);
        const err = await readFragmentFooter(store, key, bytes.byteLength, tuning).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, key).toBeInstanceOf(FragmentReadError);
        expect((err as Error).message).toContain(store.describe(key));
        expect((err as Error).message).toContain("2 columns named 'a'");
      }
    }
  });
});

describe('errors', () => {
  const cols: ColumnSpec[] = [{ name: 'n', type: 'int32' }];
  const bytes = fragmentBytes(cols, { n: Array.from({ length: 5000 }, (_, i) => i) }, { batchRows: 1000, format: 'file' });

  it('errors from the store propagate as they are', async () => {
    const local = new LocalStore(tempDir('ssi-footer-'));
    await expect(readFragmentFooter(local, 'data/missing.arrow', 1000)).rejects.toBeInstanceOf(NotFoundError);
    const failure = new StoreError('the network went away');
    const failing = new MemoryStore();
    failing.read = async () => {
      throw failure;
    };
    await expect(readFragmentFooter(failing, 'data/a.arrow', bytes.byteLength)).rejects.toBe(failure);
    // Also once the first reads have succeeded.
    const flaky = new MemoryStore();
    await flaky.put('data/a.arrow', bytes);
    const read = flaky.read.bind(flaky);
    let n = 0;
    flaky.read = async (key, range) => {
      if (n++ === 1) throw failure;
      return read(key, range);
    };
    await expect(readFragmentFooter(flaky, 'data/a.arrow', bytes.byteLength, { wholeFileBytes: 0, tailBytes: 1000 })).rejects.toBe(failure);
    expect(n).toBe(2);
  });

  it('a file that is not the size it was listed at: a FragmentReadError naming it', async () => {
    const store = new MemoryStore();
    await store.put('data/a.arrow', bytes);
    const where = store.describe('data/a.arrow');
    const n = bytes.byteLength;
    for (const size of [n + 1, n + 100_000, n - 1, n - 10, 22, 8, 0]) {
      for (const tuning of [{}, RANGED]) {
        const err = await readFragmentFooter(store, 'data/a.arrow', size, tuning).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, `size ${size}`).toBeInstanceOf(FragmentReadError);
        expect((err as Error).message, `size ${size}`).toContain(where);
      }
    }
    for (const size of [-1, 1.5, NaN]) await expect(readFragmentFooter(store, 'data/a.arrow', size)).rejects.toThrow(FragmentReadError);
  });

  it('fingerprintOf never throws: bytes no registration could come from get a sha256: fingerprint', () => {
    for (const [key, b] of [
      ['x.arrow', new Uint8Array(0)],
      ['x.arrow', bytes.subarray(0, 100)],
      ['x.parquet', bytes],
      ['x.arrows', Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) & 255)],
    ] as const) {
      expect(fingerprintOf(key, b), key).toMatch(/^sha256:[0-9a-f]{32}$/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// damage

describe('damage to footers, headers and magic', () => {
  const RUNS = Number(process.env.FUZZ_RUNS ?? 100) * 4;
  const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  let watchdog: Watchdog;
  beforeAll(() => {
    watchdog = new Watchdog();
    console.log(`footer damage fuzzing: FUZZ_SEED=${SEED} runs ${RUNS}`);
  });
  afterAll(() => watchdog.stop());

  /** Where a fragment keeps its metadata: magic, footer and trailer, each message's prefix and metadata. */
  function metadataRegions(bytes: Uint8Array, format: FragmentFormat): [number, number][] {
    const n = bytes.byteLength;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
    if (format === 'parquet') return [[0, 4], [n - 8 - dv.getUint32(n - 8, true), n]];
    if (format === 'file' || format === 'feather') {
      const footerStart = n - 10 - dv.getInt32(n - 10, true);
      const footer = Footer.decode(bytes.subarray(footerStart, n - 10));
      const blocks = [...footer.dictionaryBatches(), ...footer.recordBatches()];
      return [[0, 8], [footerStart, n], ...blocks.map((b): [number, number] => [b.offset, b.offset + b.metaDataLength])];
    }
    const out: [number, number][] = [];
    for (let pos = 0; pos + 8 <= n; ) {
      const length = dv.getInt32(pos + 4, true);
      out.push([pos, pos + 8 + length]);
      if (length === 0) break;
      const header = new DataView(bytes.buffer, bytes.byteOffset + pos + 8, length);
      // Message.bodyLength: the root table's field 3 (an int64), found through its vtable.
      const root = header.getInt32(0, true);
      const vt = root - header.getInt32(root, true);
      const at = header.getInt16(vt, true) > 10 ? header.getInt16(vt + 10, true) : 0;
      const body = at ? Number(header.getBigInt64(root + at, true)) : 0;
      pos += 8 + length + body;
    }
    return out;
  }

  type Damage = { kind: 'flip'; flips: { region: number; at: number; xor: number }[] } | { kind: 'truncate'; at: number; listedWhole: boolean };
  const fraction = fc.noBias(fc.integer({ min: 0, max: 2 ** 31 - 1 })).map((x) => x / 2 ** 31);
  const damageArb: fc.Arbitrary<Damage> = fc.oneof(
    {
      weight: 5,
      arbitrary: fc
        .array(fc.record({ region: fraction, at: fraction, xor: fc.oneof(fc.constantFrom(1, 2, 4, 8, 16, 32, 64, 128), fc.integer({ min: 1, max: 255 })) }), { minLength: 1, maxLength: 3 })
        .map((flips): Damage => ({ kind: 'flip', flips })),
    },
    { weight: 1, arbitrary: fc.record({ at: fraction, listedWhole: fc.boolean() }).map(({ at, listedWhole }): Damage => ({ kind: 'truncate', at, listedWhole })) },
  );

  function damage(bytes: Uint8Array, regions: [number, number][], d: Damage): { bad: Uint8Array; listed: number; what: string } {
    if (d.kind === 'truncate') {
      const at = Math.floor(d.at * bytes.byteLength);
      return { bad: bytes.slice(0, at), listed: d.listedWhole ? bytes.byteLength : at, what: `truncated to ${at} of ${bytes.byteLength} bytes${d.listedWhole ? ', listed whole' : ''}` };
    }
    const bad = bytes.slice();
    const at = d.flips.map((f) => {
      const [lo, hi] = regions[Math.floor(f.region * regions.length)]!;
      const i = lo + Math.floor(f.at * (hi - lo));
      bad[i]! ^= f.xor;
      return `[${i}]^0x${f.xor.toString(16)}`;
    });
    return { bad, listed: bad.byteLength, what: `flipped ${at.join(' ')} of ${bytes.byteLength} bytes` };
  }

  const tally = new Map<string, number>();
  afterAll(() => console.log(`footer damage: ${[...tally].map(([k, v]) => `${k} ${v}`).join(', ')}`));
  const count = (outcome: string) => tally.set(outcome, (tally.get(outcome) ?? 0) + 1);

  it('ends promptly in a FragmentReadError naming the file, or in the rows and schema the whole read reports', async () => {
    await fc.assert(
      fc.asyncProperty(
        datasetArb({ minFragments: 1, maxFragments: 1, maxRows: 40, formats: ALL_FORMATS }),
        damageArb,
        fc.constantFrom<Partial<FooterReadTuning>>({}, RANGED, { wholeFileBytes: 0, tailBytes: 100 }),
        async (ds, d, tuning) => {
          const f = ds.fragments[0]!;
          const good = fragmentBytes(ds.columns, f.rows, { batchRows: f.batchRows, format: f.format, compression: f.compression, dictionary: f.dictionary });
          const { bad, listed, what } = damage(good, metadataRegions(good, f.format), d);
          const key = `data/${f.name}`;
          const store = new MemoryStore();
          await store.put(key, bad);
          const where = store.describe(key);
          const description = `${f.name} ${what} (${JSON.stringify(tuning)}); dataset ${describeDataset(ds)}`;
          watchdog.arm(60, `FUZZ_SEED=${SEED} ${description}`);
          let footer: FragmentFooter | undefined;
          let error: unknown;
          try {
            footer = await readFragmentFooter(store, key, listed, tuning);
          } catch (err) {
            error = err;
          } finally {
            watchdog.disarm();
          }
          if (error !== undefined) {
            const e = error as Error;
            expect(e, `${e?.name}: ${e?.message}\n${e?.stack}\n${description}`).toBeInstanceOf(FragmentReadError);
            expect(e.message, description).toContain(where);
            expect(e.message, description).not.toMatch(/\n/);
            count('refused');
            return;
          }
          expect(listed, description).toBe(bad.byteLength);
          expect(footer!.fingerprint, description).toBe(fingerprintOf(key, bad));
          let whole: LoadedFragment;
          try {
            whole = decodeFragment(key, where, bad);
          } catch (err) {
            // Damage the whole read refuses when it checks column contents (buffer offsets, a
            // dictionary's values): build-part's check, which registration leaves to it.
            expect(err, description).toBeInstanceOf(FragmentReadError);
            if (process.env.FUZZ_DEBUG) console.log(`accepted, refused by the whole read (${(err as Error).message}): ${description}`);
            count(Buffer.compare(good, bad) === 0 ? 'unchanged' : 'accepted, refused when its contents are read');
            return;
          }
          expectSameAsWhole(footer!, whole, bad, key, description);
          count(Buffer.compare(good, bad) === 0 ? 'unchanged' : 'accepted, same as the whole read');
        },
      ),
      { numRuns: RUNS, seed: SEED, timeout: 30_000 },
    );
    expect(tally.get('refused')).toBeGreaterThan(0);
  }, 600_000);
});

// ---------------------------------------------------------------------------------------------
// S3

describe('on S3 (s3rver behind the recording proxy)', () => {
  const s3 = useS3Server({ buckets: ['footer'] });

  it('gives what the whole read gives, in ranged GETs the proxy counts as the footer reports them', async () => {
    const store = new S3Store({ bucket: 'footer', prefix: 'ds' });
    const cols: ColumnSpec[] = [
      { name: 'k', type: 'int64' },
      { name: 's', type: 'dict_utf8' },
      { name: 'x', type: 'float16' },
    ];
    const rows = { k: [1n, null, -(2n ** 63n)], s: ['a', '\ufeffb', null], x: [NaN, -0, null] };
    const files: [string, Uint8Array][] = [
      ...ALL_FORMATS.map((format): [string, Uint8Array] => [keyOf('small', format), fragmentBytes(cols, rows, { batchRows: 2, format })]),
      ...ALL_FORMATS.map((format): [string, Uint8Array] => [keyOf('empty', format), fragmentBytes(cols, { k: [], s: [], x: [] }, { batchRows: 1, format })]),
      ['data/big.arrow', arrow.tableToIPC(bigTable(12 * MiB, 6), 'file')],
      ['data/big.arrows', arrow.tableToIPC(bigTable(12 * MiB, 6), 'stream')],
      ['data/big.parquet', bigParquet(bigTable(12 * MiB, 1), 6)],
    ];
    for (const [key, bytes] of files) await store.put(key, bytes);
    for (const [key, bytes] of files) {
      const whole = await loadFragment(store, key);
      s3.server.resetLog();
      const footer = await readFragmentFooter(store, key, bytes.byteLength);
      expectSameAsWhole(footer, whole, bytes, key, `s3 ${key}`);
      const requests = s3.server.requests;
      expect(requests.every((r) => r.method === 'GET' && r.key === `ds/${key}` && r.status === 206 && /^bytes=\d+-\d+$/.test(r.range ?? '')), JSON.stringify(requests)).toBe(true);
      expect(requests.length, key).toBe(footer.reads);
      expect(requests.reduce((n, r) => n + r.bytesOut, 0), key).toBe(footer.bytesRead);
      if (key.startsWith('data/big.')) {
        expect(footer.bytesRead / bytes.byteLength, key).toBeLessThanOrEqual(0.02);
        if (!key.endsWith('.arrows')) expect(footer.reads, key).toBeLessThanOrEqual(key.endsWith('.arrow') ? 7 : 3);
      }
      console.log(`S3 ${key}: ${footer.reads} GETs, ${footer.bytesRead} of ${bytes.byteLength} bytes`);
    }
  });

  it('S3 errors propagate as the store reports them: NotFoundError, StoreError', async () => {
    const store = new S3Store({ bucket: 'footer', prefix: 'ds' });
    await expect(readFragmentFooter(store, 'data/absent.arrow', 5000)).rejects.toBeInstanceOf(NotFoundError);
    const bytes = fragmentBytes([{ name: 'n', type: 'int32' }], { n: [1, 2, 3] }, { batchRows: 1, format: 'file' });
    await store.put('data/denied.arrow', bytes);
    s3.server.inject({ times: 10, status: 403, code: 'AccessDenied', match: (r) => r.key.endsWith('denied.arrow') });
    const err = await readFragmentFooter(store, 'data/denied.arrow', bytes.byteLength).then(
      () => undefined,
      (e: unknown) => e,
    );
    s3.server.clearFaults();
    expect(err).toBeInstanceOf(StoreError);
    expect(err).not.toBeInstanceOf(FragmentReadError);
    expect((err as ScalarIndexError).message).toContain('denied.arrow');
  });
});
