/**
 * Column projection of Arrow IPC files (`loadArrowFileColumns`), pinned against the
 * whole-file reader:
 * - over generated flat-typed files (nulls, NaN payloads, -0, 64-bit extremes, a leading
 *   U+FEFF, astral strings, empty files), the projected columns are byte-for-byte the
 *   whole-file decode's (validity bits, values, offsets → bytes), with the same rows, batch
 *   row counts, schema and fingerprint (`fingerprintBytes` of the whole file);
 * - what it refuses (`undefined`, so the caller reads the whole file): streams, Parquet,
 *   dictionary columns, compressed batches, a registered size the file no longer has (longer
 *   or shorter: the whole-file read that follows then fails the fingerprint check);
 * - read economy: one column of four is well under half the bytes, in at most
 *   2 + 2 × batches reads (locally and as ranged GETs on S3); a small file is one read;
 * - damage: truncations and an int32 sweep over the whole file end promptly in
 *   FragmentReadError naming the file, `undefined`, or data, and a damaged footer never keeps
 *   the original fingerprint;
 * - build level: a fragment replaced after registration by one of another layout fails the
 *   build with FragmentChangedError (the projection path's check, and the plan's size check)
 *   and commits nothing; answers over Arrow-file fragments equal answers over the same data
 *   as Parquet (read whole).
 */
import * as fs from 'node:fs';
import * as arrow from 'apache-arrow';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FragmentChangedError, FragmentReadError } from '../../lib/errors.js';
import { loadArrowFileColumns, type ProjectedFragment } from '../../lib/fragments/arrow-columns.js';
import { decodeFragment, fingerprintBytes, type LoadedFragment } from '../../lib/fragments/reader.js';
import { listVersions, loadLatestManifest } from '../../lib/manifest/manifest.js';
import { fragmentsOf } from '../support/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { S3Store } from '../../lib/store/s3.js';
import type { ObjectInfo, ObjectStore, ObjectWriter } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import type { IndexRequest } from '../../lib/workflow/types.js';
import { ALL_COLUMN_TYPES, datasetArb, describeDataset, fragmentBytes, writeDataset, type ColumnSpec, type ColumnType, type GeneratedDataset } from '../support/dataset.js';
import { predicateArb } from '../support/predicates.js';
import { useS3Server } from '../support/s3-env.js';
import { tempDir } from '../support/tmp.js';
import { Watchdog } from '../integrity/watchdog.js';

// A pass-through spy, so the build-level tests can tell the projection was used rather than
// the whole-file fallback (build parts run on this thread with concurrency 1).
vi.mock('../../lib/fragments/arrow-columns.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../lib/fragments/arrow-columns.js')>();
  return { ...original, loadArrowFileColumns: vi.fn(original.loadArrowFileColumns) };
});
const projectionSpy = vi.mocked(loadArrowFileColumns);

const FLAT_TYPES: readonly ColumnType[] = ALL_COLUMN_TYPES.filter((t) => t !== 'dict_utf8');

// ---------------------------------------------------------------------------------------------
// stores

/**
 * Objects in memory. Reads hand back copies; with `misalign`, views at an odd byte offset (as
 * pooled buffers can be); with `view`, views of the stored bytes themselves (no copying).
 */
class MemoryStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  constructor(private readonly mode: 'copy' | 'misalign' | 'view' = 'copy') {}
  describe(key: string): string {
    return `mem://bucket/${key}`;
  }
  async head(key: string): Promise<ObjectInfo | undefined> {
    const b = this.objects.get(key);
    return b ? { key, size: b.byteLength } : undefined;
  }
  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    const b = this.objects.get(key);
    if (!b) throw new Error(`no such key ${key}`);
    // As LocalStore: a range past the end is a short read.
    const part = range ? b.subarray(Math.min(range.start, b.byteLength), Math.min(Math.max(range.start, range.end), b.byteLength)) : b;
    if (this.mode === 'view') return part;
    if (this.mode === 'copy') return part.slice();
    const backing = new Uint8Array(part.byteLength + 3);
    backing.set(part, 3);
    return backing.subarray(3);
  }
  async put(key: string, body: Uint8Array): Promise<ObjectInfo> {
    this.objects.set(key, body.slice());
    return { key, size: body.byteLength };
  }
  async openWriter(): Promise<ObjectWriter> {
    throw new Error('not used');
  }
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [key, b] of [...this.objects].sort(([a], [c]) => (a < c ? -1 : 1))) if (key.startsWith(prefix)) yield { key, size: b.byteLength };
  }
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.objects.delete(k);
  }
}

/** Counts the reads (and bytes read) that go through to another store. */
class CountingStore implements ObjectStore {
  reads: { key: string; range?: { start: number; end: number }; bytes: number }[] = [];
  constructor(private readonly inner: ObjectStore) {}
  get bytesRead(): number {
    return this.reads.reduce((n, r) => n + r.bytes, 0);
  }
  describe(key: string): string {
    return this.inner.describe(key);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }
  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    const bytes = await this.inner.read(key, range);
    this.reads.push({ key, range, bytes: bytes.byteLength });
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
}

// ---------------------------------------------------------------------------------------------
// raw comparison of column data (no vector.get(): Arrow JS's string decoder drops a leading BOM)

function isVarBinary(t: arrow.DataType): boolean {
  const D = arrow.DataType;
  return D.isUtf8(t) || D.isLargeUtf8(t) || D.isBinary(t) || D.isLargeBinary(t);
}

function validBit(d: arrow.Data, i: number): number {
  const j = d.offset + i;
  return d.nullCount > 0 && d.nullBitmap && d.nullBitmap.length > 0 ? (d.nullBitmap[j >> 3]! >> (j & 7)) & 1 : 1;
}

/** The stored bytes of row `i` (a bool is its bit; null slots included: both sides read the same file). */
function rowBytes(d: arrow.Data, i: number): Uint8Array {
  const j = d.offset + i;
  if (isVarBinary(d.type)) {
    const o = d.valueOffsets as unknown as Int32Array | BigInt64Array;
    return (d.values as Uint8Array).subarray(Number(o[j]!), Number(o[j + 1]!));
  }
  if (arrow.DataType.isBool(d.type)) return Uint8Array.of(((d.values as Uint8Array)[j >> 3]! >> (j & 7)) & 1);
  const v = d.values as unknown as ArrayBufferView & { BYTES_PER_ELEMENT: number };
  const w = v.BYTES_PER_ELEMENT * d.stride;
  return new Uint8Array(v.buffer, v.byteOffset + j * w, w);
}

/** Differences between two columns' data, row by row (empty when identical). */
function columnDiff(got: arrow.Data, want: arrow.Data, what: string): string[] {
  const out: string[] = [];
  if (String(got.type) !== String(want.type)) return [`${what}: type ${got.type} != ${want.type}`];
  if (got.length !== want.length) return [`${what}: length ${got.length} != ${want.length}`];
  if (got.nullCount !== want.nullCount) out.push(`${what}: nullCount ${got.nullCount} != ${want.nullCount}`);
  for (let i = 0; i < want.length && out.length < 5; i++) {
    if (validBit(got, i) !== validBit(want, i)) out.push(`${what} row ${i}: validity ${validBit(got, i)} != ${validBit(want, i)}`);
    const a = rowBytes(got, i);
    const b = rowBytes(want, i);
    if (Buffer.compare(a, b) !== 0) out.push(`${what} row ${i}: bytes ${Buffer.from(a).toString('hex')} != ${Buffer.from(b).toString('hex')}`);
  }
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strings and binaries against the generator's own values: a leading U+FEFF must survive. */
function valueDiff(got: arrow.Data, type: ColumnType, values: readonly unknown[], firstRow: number, what: string): string[] {
  if (type !== 'utf8' && type !== 'large_utf8' && type !== 'binary') return [];
  const out: string[] = [];
  for (let i = 0; i < got.length && out.length < 5; i++) {
    const v = values[firstRow + i];
    if (v === null || v === undefined) {
      if (validBit(got, i) !== 0) out.push(`${what} row ${i}: null expected`);
      continue;
    }
    const bytes = rowBytes(got, i);
    const same = typeof v === 'string' ? strictUtf8.decode(bytes) === v : Buffer.compare(bytes, v as Uint8Array) === 0;
    if (validBit(got, i) !== 1 || !same) out.push(`${what} row ${i}: ${JSON.stringify(String(v))} expected, got bytes ${Buffer.from(bytes).toString('hex')}`);
  }
  return out;
}

/** Check a projection of `columns` against the whole-file decode of the same bytes. */
function expectProjectionMatches(got: ProjectedFragment | undefined, whole: LoadedFragment, bytes: Uint8Array, columns: readonly string[]): ProjectedFragment {
  expect(got, 'projection refused a flat Arrow file').toBeDefined();
  const p = got!;
  expect(p.size).toBe(bytes.byteLength);
  expect(p.rows).toBe(whole.rows);
  expect(p.fingerprint).toMatch(/^arrowfile:/);
  expect(p.fingerprint).toBe(fingerprintBytes(bytes));
  expect(p.fingerprint).toBe(whole.fingerprint);
  expect(p.schema.fields.map((f) => f.name)).toEqual(whole.schema.fields.map((f) => f.name));
  expect(p.schema.fields.map((f) => String(f.type))).toEqual(whole.schema.fields.map((f) => String(f.type)));
  expect(p.batches.map((b) => b.numRows)).toEqual(whole.batches.map((b) => b.numRows));
  // The wanted columns the file has, in file order, once each; nothing else.
  const expected = whole.schema.fields.map((f) => f.name).filter((n) => columns.includes(n));
  const diffs: string[] = [];
  p.batches.forEach((batch, k) => {
    expect(batch.schema.fields.map((f) => f.name)).toEqual(expected);
    for (const name of expected) {
      diffs.push(...columnDiff(batch.getChild(name)!.data[0]!, whole.batches[k]!.getChild(name)!.data[0]!, `column ${name}, batch ${k}`));
    }
  });
  expect(diffs).toEqual([]);
  return p;
}

async function outcome(run: () => Promise<ProjectedFragment | undefined>): Promise<{ kind: 'undefined' } | { kind: 'data'; value: ProjectedFragment } | { kind: 'error'; error: unknown }> {
  try {
    const value = await run();
    return value === undefined ? { kind: 'undefined' } : { kind: 'data', value };
  } catch (error) {
    return { kind: 'error', error };
  }
}

async function expectReadError(promise: Promise<unknown>, where: string, reason?: RegExp): Promise<void> {
  const err = await promise.then(
    (v) => v,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FragmentReadError);
  expect((err as Error).message).toContain(where);
  if (reason) expect((err as Error).message).toMatch(reason);
}

// ---------------------------------------------------------------------------------------------
// fixtures

const SMALL_COLS: ColumnSpec[] = [
  { name: 's', type: 'utf8' },
  { name: 'n', type: 'int64' },
  { name: 'x', type: 'float64' },
  { name: 'b', type: 'bool' },
];
function smallRows(count: number, salt = 0): Record<string, unknown[]> {
  return {
    s: Array.from({ length: count }, (_, i) => (i % 5 === 0 ? null : i % 7 === 1 ? '\ufeffa' : `v${(i * 13 + salt) % 11}\u{1f600}`)),
    n: Array.from({ length: count }, (_, i) => (i % 6 === 0 ? null : i % 4 === 0 ? -(2n ** 63n) : BigInt(i * 1000 + salt))),
    x: Array.from({ length: count }, (_, i) => (i % 9 === 0 ? null : i % 3 === 0 ? NaN : i % 8 === 0 ? -0 : i / 4 + salt)),
    b: Array.from({ length: count }, (_, i) => (i % 10 === 0 ? null : i % 2 === 0)),
  };
}

/**
 * A large Arrow file of four 8-bytes-a-row columns (int64, float64, timestamp, 4-byte
 * strings + int32 offsets), `batches` record batches; built from typed arrays directly.
 */
function bigArrowFile(rows: number, batches: number): Uint8Array {
  const fields = [
    new arrow.Field('i', new arrow.Int64(), true),
    new arrow.Field('f', new arrow.Float64(), true),
    new arrow.Field('t', new arrow.TimestampMillisecond(), true),
    new arrow.Field('s', new arrow.Utf8(), true),
  ];
  const schema = new arrow.Schema(fields);
  const per = Math.ceil(rows / batches);
  const out: arrow.RecordBatch[] = [];
  for (let start = 0; start < rows; start += per) {
    const n = Math.min(per, rows - start);
    const i64 = new BigInt64Array(n);
    const f64 = new Float64Array(n);
    const ts = new BigInt64Array(n);
    const chars = new Uint8Array(4 * n);
    const offsets = new Int32Array(n + 1);
    for (let r = 0; r < n; r++) {
      const g = start + r;
      i64[r] = BigInt(g) * 7919n - 2n ** 62n;
      f64[r] = g / 3;
      ts[r] = BigInt(g) * 1000n;
      const code = g % 10000;
      chars[4 * r] = 0x30 + Math.floor(code / 1000);
      chars[4 * r + 1] = 0x30 + (Math.floor(code / 100) % 10);
      chars[4 * r + 2] = 0x30 + (Math.floor(code / 10) % 10);
      chars[4 * r + 3] = 0x30 + (code % 10);
      offsets[r + 1] = 4 * (r + 1);
    }
    const children = [
      arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: i64 }),
      arrow.makeData({ type: new arrow.Float64(), length: n, nullCount: 0, data: f64 }),
      arrow.makeData({ type: new arrow.TimestampMillisecond(), length: n, nullCount: 0, data: ts }),
      arrow.makeData({ type: new arrow.Utf8(), length: n, nullCount: 0, data: chars, valueOffsets: offsets }),
    ] as arrow.Data[];
    out.push(new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(fields), length: n, nullCount: 0, children })));
  }
  return arrow.tableToIPC(new arrow.Table(schema, out), 'file');
}

const BIG_ROWS = 240_000;
const BIG_BATCHES = 3;
let bigBytes: Uint8Array;
let bigWhole: LoadedFragment;
beforeAll(() => {
  bigBytes = bigArrowFile(BIG_ROWS, BIG_BATCHES);
  bigWhole = decodeFragment('big.arrow', 'big.arrow', bigBytes);
});

beforeEach(() => {
  projectionSpy.mockClear();
});

// ---------------------------------------------------------------------------------------------

describe('projected columns equal the whole-file decode', () => {
  it('over generated flat-typed Arrow files, any subset of columns (plus names the file lacks)', async () => {
    const caseArb = datasetArb({ types: FLAT_TYPES, formats: ['file'], minFragments: 1, maxFragments: 3, maxRows: 60 }).chain((ds) =>
      fc.record({
        ds: fc.constant(ds),
        wanted: fc.shuffledSubarray(
          ds.columns.map((c) => c.name),
          { minLength: 1 },
        ),
        missing: fc.option(fc.constantFrom('nope', '', 'c0', 'c9_int8', 'C0_INT8'), { nil: undefined }),
        duplicate: fc.boolean(),
        misalign: fc.boolean(),
      }),
    );
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ ds, wanted, missing, duplicate, misalign }) => {
        runs++;
        const columns = [...wanted, ...(missing !== undefined ? [missing] : []), ...(duplicate ? [wanted[0]!] : [])];
        const store = new MemoryStore(misalign ? 'misalign' : 'copy');
        for (const frag of ds.fragments) {
          const bytes = fragmentBytes(ds.columns, frag.rows, { batchRows: frag.batchRows, format: 'file' });
          await store.put(`data/${frag.name}`, bytes);
          const whole = decodeFragment(frag.name, frag.name, bytes);
          const got = await loadArrowFileColumns(store, `data/${frag.name}`, bytes.byteLength, columns);
          const p = expectProjectionMatches(got, whole, bytes, columns);
          if (missing !== undefined) for (const b of p.batches) expect(b.schema.fields.map((f) => f.name)).not.toContain(missing);
          // And against the generator's values themselves, for strings and binaries.
          const diffs: string[] = [];
          let firstRow = 0;
          p.batches.forEach((batch, k) => {
            for (const c of ds.columns) {
              const child = batch.getChild(c.name);
              if (child) diffs.push(...valueDiff(child.data[0]!, c.type, frag.rows[c.name]!, firstRow, `column ${c.name}, batch ${k}`));
            }
            firstRow += batch.numRows;
          });
          expect(diffs).toEqual([]);
        }
      }),
      { numRuns: 50, reporter: (r) => void (r.failed && console.log(describeDataset(r.counterexample![0].ds))) },
    );
    expect(runs).toBeGreaterThanOrEqual(50);
  });
});

describe('files that are not projected', () => {
  const root = tempDir('ssi-proj-');
  const store = new LocalStore(root);
  const rows = smallRows(30);

  it('Arrow streams (named .arrows or .arrow) and Parquet files: undefined', async () => {
    const stream = fragmentBytes(SMALL_COLS, rows, { batchRows: 8, format: 'stream' });
    const parquet = fragmentBytes(SMALL_COLS, rows, { batchRows: 8, format: 'parquet' });
    for (const [key, bytes] of [
      ['s.arrows', stream],
      ['s.arrow', stream],
      ['p.parquet', parquet],
      ['p.arrow', parquet],
    ] as const) {
      await store.put(key, bytes);
      expect(await loadArrowFileColumns(store, key, bytes.byteLength, ['s', 'n']), key).toBeUndefined();
      // The whole-file reader takes them (the fallback), and fingerprints them by content.
      const whole = decodeFragment(key, key, bytes);
      expect(whole.rows).toBe(30);
      expect(whole.fingerprint).toMatch(/^sha256:/);
    }
  });

  it('an Arrow file with a dictionary column: undefined even when only flat columns are wanted', async () => {
    const cols: ColumnSpec[] = [...SMALL_COLS, { name: 'd', type: 'dict_utf8' }];
    const bytes = fragmentBytes(cols, { ...rows, d: rows.s!.map((s) => (s === null ? null : `d${String(s).length}`)) }, { batchRows: 8, format: 'file' });
    await store.put('dict.arrow', bytes);
    // Registered by footer, so a build tries projection first and must fall back.
    expect(fingerprintBytes(bytes)).toMatch(/^arrowfile:/);
    expect(await loadArrowFileColumns(store, 'dict.arrow', bytes.byteLength, ['d'])).toBeUndefined();
    expect(await loadArrowFileColumns(store, 'dict.arrow', bytes.byteLength, ['n'])).toBeUndefined();
    expect(decodeFragment('dict.arrow', 'dict.arrow', bytes).rows).toBe(30);
  });

  it('an Arrow file with compressed batches: undefined', async () => {
    // A stand-in ZSTD codec (magic + raw bytes): projection must refuse before decoding anything.
    const magic = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0, 0);
    arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, {
      encode: (d: Uint8Array) => {
        const out = new Uint8Array(magic.length + d.length);
        out.set(magic);
        out.set(d, magic.length);
        return out;
      },
      decode: () => {
        throw new Error('not used');
      },
    });
    try {
      const plain = fragmentBytes(SMALL_COLS, smallRows(100), { batchRows: 7, format: 'file' });
      const table = arrow.tableFromIPC(plain);
      const bytes = arrow.RecordBatchFileWriter.writeAll(table, { compressionType: arrow.CompressionType.ZSTD }).toUint8Array(true);
      expect(bytes.byteLength).toBeGreaterThan(0);
      await store.put('z.arrow', bytes);
      expect(await loadArrowFileColumns(store, 'z.arrow', bytes.byteLength, ['n'])).toBeUndefined();
    } finally {
      arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, null as never);
    }
  });

  it('a registered size the file no longer has, smaller or larger than it: undefined (the read comes up short, or finds no trailer)', async () => {
    const bytes = fragmentBytes(SMALL_COLS, rows, { batchRows: 8, format: 'file' });
    await store.put('sz.arrow', bytes);
    const where = store.describe('sz.arrow');
    const n = bytes.byteLength;
    // The bytes up to a smaller size do not end in the trailer: not an Arrow file at that size.
    for (const size of [n - 1, n - 6, n - 10, n - 64, 22, 21, 8, 0]) {
      expect(await loadArrowFileColumns(store, 'sz.arrow', size, ['s']), `size ${size}`).toBeUndefined();
    }
    // Shorter than its registered size: the store comes up short.
    for (const size of [n + 1, n + 100]) expect(await loadArrowFileColumns(store, 'sz.arrow', size, ['s']), `size ${size}`).toBeUndefined();
    expect(where).toContain('sz.arrow');
    expectProjectionMatches(await loadArrowFileColumns(store, 'sz.arrow', n, ['s']), decodeFragment('sz.arrow', 'sz.arrow', bytes), bytes, ['s']);
  });
});

describe('read economy', () => {
  const root = tempDir('ssi-proj-big-');
  const local = new LocalStore(root);

  it(`one column of four from a > 4 MiB file: < 40% of its bytes, ≤ 2 + 2 × batches reads; the same data as the whole file`, async () => {
    const size = bigBytes.byteLength;
    expect(size).toBeGreaterThan(4 * 1024 * 1024);
    expect(bigWhole.batches.length).toBe(BIG_BATCHES);
    await local.put('big.arrow', bigBytes);
    for (const column of ['i', 'f', 't', 's']) {
      const store = new CountingStore(local);
      const got = await loadArrowFileColumns(store, 'big.arrow', size, [column]);
      expectProjectionMatches(got, bigWhole, bigBytes, [column]);
      expect(store.reads.every((r) => r.range !== undefined), 'only ranged reads').toBe(true);
      expect(store.reads.length, `${column}: ${store.reads.length} reads`).toBeLessThanOrEqual(2 + 2 * BIG_BATCHES);
      expect(store.bytesRead / size, `${column}: ${store.bytesRead} of ${size} bytes`).toBeLessThan(0.4);
      if (column === 'i') console.log(`projecting 'i' of ${size} bytes, ${BIG_BATCHES} batches: ${store.reads.length} reads, ${store.bytesRead} bytes`);
    }
    // Two columns far apart (> 1 MiB of other columns between them in each batch) are two reads per batch, not one spanning read.
    const store = new CountingStore(local);
    expectProjectionMatches(await loadArrowFileColumns(store, 'big.arrow', size, ['s', 'i']), bigWhole, bigBytes, ['i', 's']);
    expect(store.reads.length).toBeLessThanOrEqual(2 + 3 * BIG_BATCHES);
    expect(store.bytesRead / size).toBeLessThan(0.6);
  });

  it('a > 4 MiB file at a wrong size, smaller or larger: undefined', async () => {
    await local.put('big2.arrow', bigBytes);
    const n = bigBytes.byteLength;
    expect(await loadArrowFileColumns(local, 'big2.arrow', n - 1, ['i'])).toBeUndefined();
    expect(await loadArrowFileColumns(local, 'big2.arrow', n - 4096, ['i'])).toBeUndefined();
    expect(await loadArrowFileColumns(local, 'big2.arrow', n + 100, ['i'])).toBeUndefined();
  });

  it('a ≤ 4 MiB file is read with exactly one read call', async () => {
    const bytes = fragmentBytes(SMALL_COLS, smallRows(2000), { batchRows: 300, format: 'file' });
    await local.put('small.arrow', bytes);
    const store = new CountingStore(local);
    const got = await loadArrowFileColumns(store, 'small.arrow', bytes.byteLength, ['x']);
    expectProjectionMatches(got, decodeFragment('small.arrow', 'small.arrow', bytes), bytes, ['x']);
    expect(got!.batches.length).toBe(7);
    expect(store.reads).toEqual([{ key: 'small.arrow', range: { start: 0, end: bytes.byteLength }, bytes: bytes.byteLength }]);
  });
});

describe('damaged files', () => {
  let watchdog: Watchdog;
  beforeAll(() => {
    watchdog = new Watchdog();
  });
  afterAll(async () => {
    await watchdog.stop();
  });

  const cols: ColumnSpec[] = SMALL_COLS;
  const good = fragmentBytes(cols, smallRows(24, 3), { batchRows: 7, format: 'file' });
  const names = cols.map((c) => c.name);

  it('truncated: undefined at its truncated size and at its registered size, and the whole-file reader refuses it', async () => {
    const store = new MemoryStore();
    const where = store.describe('t.arrow');
    for (let n = 0; n < good.byteLength; n++) {
      await store.put('t.arrow', good.subarray(0, n));
      watchdog.arm(20, `truncated to ${n} bytes`);
      try {
        expect(await loadArrowFileColumns(store, 't.arrow', n, names), `truncated to ${n}`).toBeUndefined();
        expect(await loadArrowFileColumns(store, 't.arrow', good.byteLength, names), `truncated to ${n}, read at its registered size`).toBeUndefined();
        // ... and the fallback refuses it too.
        if (n > 0) expect(() => decodeFragment('t.arrow', where, good.subarray(0, n))).toThrow(FragmentReadError);
      } finally {
        watchdog.disarm();
      }
    }
  });

  /**
   * Set the int32 at each of `positions` to 0x7fffffff and to -1 (in place, restored after) and
   * project: each outcome must be a FragmentReadError naming the file, undefined, or data, and
   * data read through a damaged footer must not keep the original fingerprint.
   */
  async function sweep(store: MemoryStore, key: string, positions: Iterable<number>, columnsAt: (p: number) => string[]) {
    const bytes = store.objects.get(key)!;
    const n = bytes.byteLength;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
    const footerStart = n - 10 - dv.getInt32(n - 10, true);
    const original = (await loadArrowFileColumns(store, key, n, columnsAt(0)))!.fingerprint;
    const where = store.describe(key);
    const tally = { undefined: 0, data: 0, error: 0, unchanged: 0 };
    const wrong: string[] = [];
    const started = Date.now();
    for (const p of positions) {
      const saved = dv.getInt32(p, true);
      for (const value of [0x7fffffff, -1]) {
        if (saved === value) {
          tally.unchanged++;
          continue;
        }
        dv.setInt32(p, value, true);
        const what = `${key}: int32 at byte ${p} set to ${value}`;
        watchdog.arm(20, what);
        const r = await outcome(() => loadArrowFileColumns(store, key, n, columnsAt(p)));
        watchdog.disarm();
        dv.setInt32(p, saved, true);
        tally[r.kind]++;
        if (r.kind === 'error') {
          if (!(r.error instanceof FragmentReadError) || !(r.error as Error).message.includes(where)) wrong.push(`${what}: ${String(r.error)}`);
        } else if (r.kind === 'data') {
          if (p + 4 > footerStart && r.value.fingerprint === original) wrong.push(`${what}: damaged footer kept the fingerprint`);
          if (r.value.rows !== r.value.batches.reduce((s, b) => s + b.numRows, 0)) wrong.push(`${what}: rows ${r.value.rows} do not add up`);
        }
      }
    }
    const elapsed = Date.now() - started;
    console.log(`int32 sweep of ${key} (${n} bytes, footer from ${footerStart}): ${JSON.stringify(tally)} in ${elapsed} ms`);
    return { tally, wrong, elapsed };
  }

  it('every int32 of a small file set to 0x7fffffff or -1: FragmentReadError naming the file, undefined, or data; promptly; a damaged footer changes the fingerprint', async () => {
    const store = new MemoryStore();
    await store.put('sweep.arrow', good);
    // Every byte position, not only aligned ones: block offsets and lengths are int64s.
    const positions = Array.from({ length: good.byteLength - 3 }, (_, p) => p);
    const { tally, wrong, elapsed } = await sweep(store, 'sweep.arrow', positions, (p) => (p % 2 ? names : [names[p % names.length]!]));
    expect(wrong.slice(0, 12), `${wrong.length} wrong outcomes`).toEqual([]);
    expect(tally.error).toBeGreaterThan(0);
    expect(tally.undefined).toBeGreaterThan(0);
    expect(tally.data).toBeGreaterThan(0);
    expect(elapsed).toBeLessThan(15_000);
  });

  it('the same over a > 4 MiB file (ranged reads): its footer, its first batch\'s metadata and 200 positions across it', async () => {
    const store = new MemoryStore('view');
    await store.put('big.arrow', bigBytes);
    const bytes = store.objects.get('big.arrow')!;
    const n = bytes.byteLength;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
    const footerStart = n - 10 - dv.getInt32(n - 10, true);
    const first = [...Footer.decode(bytes.subarray(footerStart, n - 10)).recordBatches()][0]!;
    const block0 = first.offset;
    const block0End = first.offset + first.metaDataLength;
    expect(dv.getInt32(block0, true)).toBe(-1);
    const positions = new Set<number>();
    for (let p = footerStart; p + 4 <= n; p++) positions.add(p);
    for (let p = block0; p < block0End; p += 4) positions.add(p);
    for (let k = 0; k < 200; k++) positions.add(4 * Math.floor((k * (n - 4)) / 200 / 4));
    const { tally, wrong, elapsed } = await sweep(store, 'big.arrow', [...positions].sort((a, b) => a - b), (p) => [['i'], ['s'], ['t', 'f']][p % 3]!);
    expect(wrong.slice(0, 12), `${wrong.length} wrong outcomes`).toEqual([]);
    expect(tally.error).toBeGreaterThan(0);
    expect(tally.data).toBeGreaterThan(0);
    expect(elapsed).toBeLessThan(15_000);
  });
});

describe('on S3 (s3rver behind a recording proxy)', () => {
  const s3 = useS3Server({ buckets: ['proj'] });

  it('one column of a > 4 MiB fragment: the same data as the local read, ranged GETs only, ≤ 2 + 2 × batches', async () => {
    const store = new S3Store({ bucket: 'proj', prefix: 'ds' });
    await store.put('data/big.arrow', bigBytes);
    const localStore = new LocalStore(tempDir('ssi-proj-s3-'));
    await localStore.put('data/big.arrow', bigBytes);
    s3.server.resetLog();
    const got = await loadArrowFileColumns(store, 'data/big.arrow', bigBytes.byteLength, ['f']);
    const requests = s3.server.requests.filter((r) => r.key.endsWith('data/big.arrow'));
    expectProjectionMatches(got, bigWhole, bigBytes, ['f']);
    const local = await loadArrowFileColumns(localStore, 'data/big.arrow', bigBytes.byteLength, ['f']);
    expect(local!.fingerprint).toBe(got!.fingerprint);
    expect(columnDiff(got!.batches[1]!.getChild('f')!.data[0]!, local!.batches[1]!.getChild('f')!.data[0]!, 'f')).toEqual([]);
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((r) => r.method === 'GET' && r.status === 206 && /^bytes=\d+-\d+$/.test(r.range ?? '')), JSON.stringify(requests)).toBe(true);
    expect(requests.length).toBeLessThanOrEqual(2 + 2 * BIG_BATCHES);
    const bytesOut = requests.reduce((s, r) => s + r.bytesOut, 0);
    expect(bytesOut / bigBytes.byteLength).toBeLessThan(0.4);
    expect(s3.server.requests.length).toBe(requests.length);
    console.log(`S3: projecting 'f': ${requests.length} GETs (${requests.map((r) => r.range).join(', ')}), ${bytesOut} of ${bigBytes.byteLength} bytes`);
  });
});

describe('in a build', () => {
  const COLS: ColumnSpec[] = [
    { name: 'k', type: 'int64' },
    { name: 's', type: 'utf8' },
    { name: 'x', type: 'float64' },
  ];
  const rowsOf = (count: number, salt: number) => ({
    k: Array.from({ length: count }, (_, i) => (i % 6 === 5 ? null : BigInt((i * 7 + salt) % 5))),
    s: Array.from({ length: count }, (_, i) => (i % 4 === 0 ? '\ufeffs' : `s${(i + salt) % 3}`)),
    x: Array.from({ length: count }, (_, i) => i / 2),
  });

  /** The rows of data/b.arrow plus `extraRows`, in one batch, padded with schema metadata to exactly `size` bytes. */
  function sameSizeOtherLayout(size: number, extraRows: number): Uint8Array {
    const table = arrow.tableFromIPC(fragmentBytes(COLS, rowsOf(21 + extraRows, 1), { batchRows: 1000, format: 'file' }));
    for (let pad = 0; pad < 4096; pad++) {
      const schema = new arrow.Schema(table.schema.fields, new Map([['pad', 'p'.repeat(pad)]]));
      const bytes = arrow.tableToIPC(new arrow.Table(schema, table.batches.map((b) => new arrow.RecordBatch(schema, b.data))), 'file');
      if (bytes.byteLength === size) return bytes;
    }
    throw new Error(`no padding gives ${size} bytes`);
  }

  it('a fragment replaced after registration by another layout: FragmentChangedError naming it, nothing committed', async () => {
    const root = tempDir('ssi-proj-build-');
    const store = new LocalStore(root);
    const original = fragmentBytes(COLS, rowsOf(21, 1), { batchRows: 5, format: 'file' });
    await store.put('data/a.arrow', fragmentBytes(COLS, rowsOf(30, 0), { batchRows: 8, format: 'file' }));
    await store.put('data/b.arrow', original);
    // A whole-second modification time, so that putting it back after a swap is exact.
    const registeredAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
    fs.utimesSync(store.describe('data/b.arrow'), registeredAt, registeredAt);
    await build({ dataset: root, concurrency: 1 });
    const registered = await fragmentsOf(store, await loadLatestManifest(store));
    expect(registered.map((f) => [f.path, f.rows])).toEqual([
      ['data/a.arrow', 30],
      ['data/b.arrow', 21],
    ]);
    expect(registered.every((f) => f.fingerprint.startsWith('arrowfile:'))).toBe(true);
    const versions = await listVersions(store);
    const where = store.describe('data/b.arrow');
    const failBuild = () => build({ dataset: root, concurrency: 1, indexes: [{ column: 'k', type: 'bitmap' }] }).then(() => undefined, (e: unknown) => e);

    // A replacement the plan cannot see (same size, and the registered modification time put
    // back, as when a file is swapped between plan and build-part): only build-part's check
    // of the footer, after projecting, can tell.
    const swap = async (bytes: Uint8Array) => {
      await store.put('data/b.arrow', bytes);
      fs.utimesSync(store.describe('data/b.arrow'), registeredAt, registeredAt);
    };
    // Same size, one more row in one batch: only the footer tells.
    const replacement = sameSizeOtherLayout(original.byteLength, 1);
    expect(replacement.byteLength).toBe(original.byteLength);
    await swap(replacement);
    projectionSpy.mockClear();
    let err = await failBuild();
    expect(err).toBeInstanceOf(FragmentChangedError);
    expect((err as Error).message).toContain(where);
    expect((err as Error).message).toMatch(/changed after it was registered/);
    const calls = projectionSpy.mock.calls.map((c, i) => ({ key: c[1], result: projectionSpy.mock.results[i] }));
    const forB = calls.find((c) => c.key === 'data/b.arrow');
    expect(forB, 'the build projected data/b.arrow').toBeDefined();
    expect((await (forB!.result!.value as Promise<ProjectedFragment | undefined>))?.rows, 'projection (not the fallback) read the replacement').toBe(22);
    expect(await listVersions(store)).toEqual(versions);

    // One more row in the original layout: a different size, caught by the plan.
    await store.put('data/b.arrow', fragmentBytes(COLS, rowsOf(22, 1), { batchRows: 5, format: 'file' }));
    err = await failBuild();
    expect(err).toBeInstanceOf(FragmentChangedError);
    expect((err as Error).message).toContain(where);
    expect(await listVersions(store)).toEqual(versions);

    // The original back (with its time): the same build succeeds, through the projection.
    await swap(original);
    projectionSpy.mockClear();
    const summary = await build({ dataset: root, concurrency: 1, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'bitmap' }] });
    expect(summary.version).toBe(versions[versions.length - 1]! + 1);
    expect(projectionSpy).toHaveBeenCalledTimes(2);
    for (const r of projectionSpy.mock.results) expect(await (r.value as Promise<unknown>)).toBeDefined();
    const hits = await query(root, "s = '\ufeffs'");
    expect(hits.rows).toBe(8 + 6);
  });

  it('answers over Arrow-file fragments (projected) equal answers over the same data as Parquet (read whole)', async () => {
    const caseArb = datasetArb({ formats: ['file'], minFragments: 2, maxFragments: 5, maxRows: 40 }).chain((ds) =>
      fc.record({
        ds: fc.constant(ds),
        indexed: fc.shuffledSubarray(
          ds.columns.map((c) => c.name),
          { minLength: 1 },
        ),
        rowsPerZone: fc.integer({ min: 1, max: 16 }),
        predicates: fc.array(predicateArb(ds), { minLength: 10, maxLength: 10 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ ds, indexed, rowsPerZone, predicates }) => {
        const asParquet: GeneratedDataset = {
          ...ds,
          fragments: ds.fragments.map((f) => ({ ...f, format: 'parquet', compression: 'snappy', dictionary: true, name: f.name.replace(/\.arrow$/, '.parquet') })),
        };
        const indexes: IndexRequest[] = indexed.flatMap((column) => [
          { column, type: 'bitmap' as const },
          { column, type: 'zonemap' as const, rowsPerZone },
        ]);
        const arrowRoot = tempDir('ssi-proj-eq-a-');
        const parquetRoot = tempDir('ssi-proj-eq-p-');
        await writeDataset(arrowRoot, ds);
        await writeDataset(parquetRoot, asParquet);
        projectionSpy.mockClear();
        await build({ dataset: arrowRoot, indexes, concurrency: 1 });
        const projected = await Promise.all(projectionSpy.mock.results.map((r) => r.value as Promise<ProjectedFragment | undefined>));
        expect(projected.length).toBe(ds.fragments.length);
        const hasDictionary = ds.columns.some((c) => c.type === 'dict_utf8');
        expect(projected.every((p) => (p === undefined) === hasDictionary)).toBe(true);
        projectionSpy.mockClear();
        await build({ dataset: parquetRoot, indexes, concurrency: 1 });
        expect(projectionSpy).not.toHaveBeenCalled();

        const fa = await fragmentsOf(new LocalStore(arrowRoot), await loadLatestManifest(new LocalStore(arrowRoot)));
        const fp = await fragmentsOf(new LocalStore(parquetRoot), await loadLatestManifest(new LocalStore(parquetRoot)));
        expect(fa.map((f) => f.rows)).toEqual(fp.map((f) => f.rows));
        const strip = (r: Awaited<ReturnType<typeof query>>) => ({
          exact: r.exact,
          rows: r.rows,
          fragments: r.fragments.map((f) => ({ id: f.id, ranges: f.ranges })),
          unindexed: r.unindexedFragments.map((f) => f.id),
          indexesUsed: r.indexesUsed,
        });
        for (const p of predicates) {
          for (const use of [undefined, ['zonemap' as const]]) {
            const a = await query(arrowRoot, p, { use });
            const b = await query(parquetRoot, p, { use });
            expect(strip(a), JSON.stringify(p, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))).toEqual(strip(b));
          }
        }
      }),
      { numRuns: 4 },
    );
  });
});

describe('a column length that disagrees with its batch (apache-arrow would pad or cut it silently)', () => {
  const int64At = (b: Uint8Array, p: number) => new DataView(b.buffer, b.byteOffset).getBigInt64(p, true);
  const table = new arrow.Table({
    a: arrow.vectorFromArray(Int32Array.from([1, 2, 3, 4, 5, 6, 7])),
    s: arrow.vectorFromArray(Array.from({ length: 7 }, () => 'abc'), new arrow.Utf8()),
  });

  /** Every 8-aligned int64 equal to 7 (the row count: batch length and node lengths) in `region`, set to 5 in turn. */
  function damagedCopies(bytes: Uint8Array, from: number, to: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let p = from; p + 8 <= to; p += 4) {
      if (int64At(bytes, p) !== 7n) continue;
      const copy = bytes.slice();
      new DataView(copy.buffer).setBigInt64(p, 5n, true);
      out.push(copy);
    }
    return out;
  }

  it('an Arrow file: both readers refuse it by name (whole file: FragmentReadError; projection: FragmentReadError)', async () => {
    const bytes = arrow.tableToIPC(table, 'file');
    const n = bytes.byteLength;
    const footerLength = new DataView(bytes.buffer, bytes.byteOffset).getInt32(n - 10, true);
    const block = Footer.decode(bytes.subarray(n - 10 - footerLength, n - 10)).getRecordBatch(0)!;
    const copies = damagedCopies(bytes, block.offset, block.offset + block.metaDataLength);
    // The batch's length and both columns' node lengths.
    expect(copies.length).toBe(3);
    const store = new MemoryStore();
    for (const copy of copies) {
      expect(() => decodeFragment('d.arrow', 'data/d.arrow', copy)).toThrow(/data\/d\.arrow.*rows in a batch of|data\/d\.arrow.*length/);
      await store.put('d.arrow', copy);
      await expect(loadArrowFileColumns(store, 'd.arrow', copy.byteLength, ['a', 's'])).rejects.toThrow(FragmentReadError);
    }
  });

  it('an Arrow stream: the whole-file reader refuses it by name', () => {
    const bytes = arrow.tableToIPC(table, 'stream');
    // Messages are framed as 0xFFFFFFFF, metadata length, metadata (then the body): the
    // schema message has no body, the record batch's metadata follows it.
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    const batchAt = 8 + dv.getInt32(4, true);
    const metadataFrom = batchAt + 8;
    const copies = damagedCopies(bytes, metadataFrom, metadataFrom + dv.getInt32(batchAt + 4, true));
    expect(copies.length).toBe(3);
    for (const copy of copies) expect(() => decodeFragment('d.arrows', 'data/d.arrows', copy)).toThrow(FragmentReadError);
  });
});
