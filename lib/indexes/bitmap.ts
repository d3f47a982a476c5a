/**
 * Bitmap index: one row set per distinct value (index-format.md "Bitmap").
 *
 * Files of a version: `bitmap.arrow` (keys, bitmaps) and `bitmap_lookup.arrow`, the
 * key-to-batch table (first/last key and key count of every batch of bitmap.arrow), so a
 * point lookup reads the lookup table, the footer and one batch.
 */
import * as arrow from 'apache-arrow';
import { buildKeyData, comparatorFor, readKeyValues, type ColumnType, type KeyValue } from '../format/column-type.js';
import { IpcFileReader, IpcFileWriter, makeBatch } from '../format/ipc.js';
import { RoaringBitmap32, decodeEntry, encodeEntries, splitEntries, type RowSet, type RowSetEntry } from '../format/rowset.js';
import { IndexFileError, ValueTooLargeError } from '../errors.js';
import type { ObjectStore } from '../store/store.js';
import { BatchCursor, CursorHeap, HeldBytes } from './kway.js';
import { createSlotAssigner, NULL_SLOT, type SlotAssigner } from './scan.js';
import { META, type Condition, type Coverage, type IndexFile, type IndexKind, type IndexParams, type IndexSearcher, type MergeInput, type MergeOutput, type Trainer, type WriterTuning } from './kind.js';

export const BITMAP_FILE = 'bitmap.arrow';
export const LOOKUP_FILE = 'bitmap_lookup.arrow';

/** Hard limit from index-format.md: flush before a batch's bitmaps pass 32 MiB. */
const MAX_BATCH_BYTES = 32 * 1024 * 1024;
// A point lookup reads one batch: small batches keep that read (and merge memory, one batch per input) small.
const DEFAULT_BATCH_BYTES = 1024 * 1024;
const DEFAULT_BATCH_KEYS = 4096;
const MAX_ROWSET_BYTES = 0x7fffffff;

type Key = KeyValue | null;

/** Null sorts first, then the column's order. */
function keyComparator(ct: ColumnType): (a: Key, b: Key) => number {
  const cmp = comparatorFor(ct.kind);
  return (a, b) => (a === null ? (b === null ? 0 : -1) : b === null ? 1 : cmp(a, b));
}

export function bitmapSchema(ct: ColumnType, metadata: Map<string, string>): arrow.Schema {
  return new arrow.Schema([new arrow.Field('keys', ct.keyType, true), new arrow.Field('bitmaps', new arrow.Binary(), false)], metadata);
}

function lookupSchema(ct: ColumnType): arrow.Schema {
  return new arrow.Schema([
    new arrow.Field('first_key', ct.keyType, true),
    new arrow.Field('last_key', ct.keyType, true),
    new arrow.Field('key_count', new arrow.Uint32(), false),
  ]);
}

function binaryData(values: readonly Uint8Array[]): arrow.Data {
  let total = 0;
  for (const v of values) total += v.byteLength;
  const data = new Uint8Array(total);
  const valueOffsets = new Int32Array(values.length + 1);
  let pos = 0;
  values.forEach((v, i) => {
    data.set(v, pos);
    pos += v.byteLength;
    valueOffsets[i + 1] = pos;
  });
  return arrow.makeData({ type: new arrow.Binary(), length: values.length, nullCount: 0, data, valueOffsets });
}

/** Writes bitmap.arrow (and, for final files, its lookup table) batch by batch. */
class BitmapFileWriter {
  private keys: Key[] = [];
  private sets: Uint8Array[] = [];
  private bytes = 0;
  private readonly lookup: { first: Key; last: Key; count: number }[] = [];
  private lastKey: Key | undefined;
  private readonly cmp: (a: Key, b: Key) => number;
  private readonly batchBytes: number;
  private readonly batchKeys: number;
  /** Bytes currently buffered for the next batch. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  private constructor(
    private readonly out: IpcFileWriter,
    private readonly ct: ColumnType,
    tuning: WriterTuning = {},
  ) {
    this.cmp = keyComparator(ct);
    this.batchBytes = Math.min(tuning.batchBytes ?? DEFAULT_BATCH_BYTES, MAX_BATCH_BYTES);
    this.batchKeys = tuning.batchKeys ?? DEFAULT_BATCH_KEYS;
  }

  static async create(store: ObjectStore, key: string, ct: ColumnType, metadata: Map<string, string>, tuning?: WriterTuning) {
    return new BitmapFileWriter(await IpcFileWriter.create(store, key, bitmapSchema(ct, metadata)), ct, tuning);
  }

  async add(key: Key, rowSet: Uint8Array): Promise<void> {
    if (rowSet.byteLength > MAX_ROWSET_BYTES) {
      throw new ValueTooLargeError(`serialized bitmap for one key is ${rowSet.byteLength} bytes; the limit is 2 GiB - 1`);
    }
    if (this.lastKey !== undefined && this.cmp(this.lastKey, key) >= 0) {
      throw new IndexFileError('bitmap keys must be unique and strictly ascending');
    }
    this.lastKey = key;
    if (this.keys.length > 0 && this.bytes + rowSet.byteLength > MAX_BATCH_BYTES) await this.flush();
    this.keys.push(key);
    this.sets.push(rowSet);
    this.bytes += rowSet.byteLength;
    if (this.bytes >= this.batchBytes || this.keys.length >= this.batchKeys) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.keys.length === 0) return;
    this.lookup.push({ first: this.keys[0]!, last: this.keys[this.keys.length - 1]!, count: this.keys.length });
    const batch = makeBatch(this.out.schema, [buildKeyData(this.ct, this.keys), binaryData(this.sets)]);
    this.keys = [];
    this.sets = [];
    this.bytes = 0;
    await this.out.write(batch);
  }

  /** Close bitmap.arrow; with `lookupKey`, also write the key-to-batch table there. */
  async close(store: ObjectStore, lookupKey?: string): Promise<{ bitmap: number; lookup?: number }> {
    await this.flush();
    const info = await this.out.close();
    if (!lookupKey) return { bitmap: info.size };
    const schema = lookupSchema(this.ct);
    const w = await IpcFileWriter.create(store, lookupKey, schema);
    if (this.lookup.length > 0) {
      await w.write(
        makeBatch(schema, [
          buildKeyData(this.ct, this.lookup.map((l) => l.first)),
          buildKeyData(this.ct, this.lookup.map((l) => l.last)),
          arrow.makeData({ type: new arrow.Uint32(), length: this.lookup.length, nullCount: 0, data: Uint32Array.from(this.lookup, (l) => l.count) }),
        ]),
      );
    }
    const li = await w.close();
    return { bitmap: info.size, lookup: li.size };
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }
}

// ---------------------------------------------------------------------------------------------
// Training a part

class BitmapTrainer implements Trainer {
  private readonly slots: SlotAssigner;
  private codes = new Int32Array(0);
  private filled = 0;
  private fragmentId = -1;
  /** Serialized roaring bitmaps per slot, in ascending fragment order. */
  private readonly perSlot: RowSetEntry[][] = [];

  constructor(
    private readonly ct: ColumnType,
    private readonly tuning?: WriterTuning,
  ) {
    this.slots = createSlotAssigner(ct);
  }

  startFragment(fragmentId: number, rows: number): void {
    if (fragmentId <= this.fragmentId) throw new IndexFileError(`fragments must be trained in ascending id order (${fragmentId} after ${this.fragmentId})`);
    this.fragmentId = fragmentId;
    if (this.codes.length < rows) this.codes = new Int32Array(rows);
    this.filled = 0;
  }

  addBatch(data: arrow.Data): void {
    if (this.filled + data.length > this.codes.length) {
      const grown = new Int32Array(Math.max(this.codes.length * 2, this.filled + data.length));
      grown.set(this.codes.subarray(0, this.filled));
      this.codes = grown;
    }
    this.slots.assign(data, this.codes, this.filled);
    this.filled += data.length;
  }

  endFragment(): void {
    const n = this.filled;
    const codes = this.codes;
    const slotCount = this.slots.slotCount;
    // Counting sort of row offsets by slot: offsets stay ascending within each slot.
    const starts = new Int32Array(slotCount + 1);
    for (let i = 0; i < n; i++) starts[codes[i]! + 1]!++;
    for (let s = 0; s < slotCount; s++) starts[s + 1]! += starts[s]!;
    const order = new Uint32Array(n);
    const cursor = starts.slice(0, slotCount);
    for (let i = 0; i < n; i++) order[cursor[codes[i]!]!++] = i;
    for (let s = 0; s < slotCount; s++) {
      const a = starts[s]!;
      const b = starts[s + 1]!;
      if (a === b) continue;
      const bitmap = new RoaringBitmap32(order.subarray(a, b));
      bitmap.runOptimize();
      (this.perSlot[s] ??= []).push({ fragmentId: this.fragmentId, bytes: bitmap.serialize('portable') });
    }
  }

  async writePart(store: ObjectStore, key: string, metadata: Map<string, string>): Promise<number> {
    const cmp = comparatorFor(this.ct.kind);
    const slots: number[] = [];
    for (let s = 1; s < this.perSlot.length; s++) if (this.perSlot[s]) slots.push(s);
    const values = slots.map((s) => this.slots.value(s));
    const order = slots.map((_, i) => i).sort((x, y) => cmp(values[x]!, values[y]!));
    const w = await BitmapFileWriter.create(store, key, this.ct, metadata, this.tuning);
    try {
      if (this.perSlot[NULL_SLOT]) await w.add(null, encodeEntries(this.perSlot[NULL_SLOT]));
      for (const i of order) await w.add(values[i]!, encodeEntries(this.perSlot[slots[i]!]!));
      return (await w.close(store)).bitmap;
    } catch (err) {
      await w.abort();
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Merging parts (and the previous version) into a new version

interface BitmapRow {
  key: Key;
  set: Uint8Array;
}

function bitmapRows(ct: ColumnType, what: string, batch: arrow.RecordBatch): BitmapRow[] {
  const keysData = batch.getChildAt(0)?.data[0];
  const setsData = batch.getChildAt(1)?.data[0];
  if (!keysData || !setsData || !arrow.DataType.isBinary(setsData.type)) throw new IndexFileError(`${what}: not a bitmap index file`);
  const keys = readKeyValues(ct, keysData);
  const offsets = setsData.valueOffsets as Int32Array;
  const values = setsData.values as Uint8Array;
  return keys.map((key, i) => ({ key, set: values.subarray(offsets[setsData.offset + i]!, offsets[setsData.offset + i + 1]!) }));
}

function batchBytes(batch: arrow.RecordBatch): number {
  let n = 0;
  for (const child of batch.data.children) n += (child.values?.byteLength ?? 0) + (child.valueOffsets?.byteLength ?? 0);
  return n;
}

async function openChecked(store: ObjectStore, key: string, size: number | undefined, ct: ColumnType): Promise<IpcFileReader> {
  return checkBitmapSchema(store, await IpcFileReader.open(store, key, size), ct);
}

function checkBitmapSchema(store: ObjectStore, reader: IpcFileReader, ct: ColumnType): IpcFileReader {
  const key = reader.key;
  const field = reader.schema.fields[0];
  if (reader.schema.fields.length !== 2 || field?.name !== 'keys' || reader.schema.fields[1]?.name !== 'bitmaps') {
    throw new IndexFileError(`not a bitmap index file: ${store.describe(key)}`);
  }
  if (String(field.type) !== String(ct.keyType)) {
    throw new IndexFileError(`value type mismatch in ${store.describe(key)}: keys are ${String(field.type)}, expected ${String(ct.keyType)}`);
  }
  return reader;
}

async function mergeBitmaps(input: MergeInput): Promise<MergeOutput> {
  const { store, ct } = input;
  const held = new HeldBytes();
  const cmp = keyComparator(ct);
  const sources: { reader: IpcFileReader; isPart: boolean }[] = [];
  const prev = input.previous?.find((f) => f.name === BITMAP_FILE);
  if (prev) sources.push({ reader: await openChecked(store, prev.key, prev.size, ct), isPart: false });
  for (const p of input.parts) sources.push({ reader: checkBitmapSchema(store, p.reader, ct), isPart: true });

  const heap = new CursorHeap<BitmapRow>((a, b) => cmp(a.key, b.key));
  for (const [i, { reader }] of sources.entries()) {
    const what = store.describe(reader.key);
    const c = new BatchCursor(reader.batches(0)[Symbol.asyncIterator](), (b) => bitmapRows(ct, what, b), batchBytes, held);
    heap.push(await c.start(), i);
  }

  const outKey = `${input.outDir}/${BITMAP_FILE}`;
  const writer = await BitmapFileWriter.create(store, outKey, ct, new Map([[META.indexType, 'bitmap'], [META.column, input.column]]), input.tuning);
  const filter = input.keepPartFragment;
  try {
    const lastKey: (Key | undefined)[] = sources.map(() => undefined);
    while (heap.size > 0) {
      const group: { c: BatchCursor<arrow.RecordBatch, BitmapRow>; i: number }[] = [heap.pop() as never];
      const key = group[0]!.c.row!.key;
      while (heap.size > 0 && cmp(heap.peek()!.row!.key, key) === 0) group.push(heap.pop() as never);
      const entries: RowSetEntry[] = [];
      let passThrough: Uint8Array | undefined;
      for (const { c, i } of group) {
        if (lastKey[i] !== undefined && cmp(lastKey[i]!, key) >= 0) {
          throw new IndexFileError(`bitmap keys are not strictly ascending in ${store.describe(sources[i]!.reader.key)}`);
        }
        lastKey[i] = key;
        const set = c.row!.set;
        if (group.length === 1 && !sources[i]!.isPart) passThrough = set;
        else {
          for (const e of splitEntries(set, store.describe(sources[i]!.reader.key))) {
            if (sources[i]!.isPart && !filter(e.fragmentId)) continue;
            entries.push(e);
          }
        }
      }
      let out = passThrough;
      if (!out && entries.length > 0) {
        entries.sort((a, b) => a.fragmentId - b.fragmentId);
        for (let k = 1; k < entries.length; k++) {
          if (entries[k]!.fragmentId === entries[k - 1]!.fragmentId) {
            throw new IndexFileError(`fragment ${entries[k]!.fragmentId} appears in two inputs of the bitmap merge`);
          }
        }
        out = encodeEntries(entries);
      }
      if (out) await writer.add(key, out);
      held.observe(writer.bufferedBytes);
      for (const { c, i } of group) {
        await c.advance();
        heap.push(c, i);
      }
    }
    const sizes = await writer.close(store, `${input.outDir}/${LOOKUP_FILE}`);
    return {
      files: [
        { name: BITMAP_FILE, key: outKey, size: sizes.bitmap },
        { name: LOOKUP_FILE, key: `${input.outDir}/${LOOKUP_FILE}`, size: sizes.lookup! },
      ],
      peakHeldBytes: held.peak,
      maxInputBatchBytes: held.maxBatch,
    };
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Searching

class BitmapSearcher implements IndexSearcher {
  private readonly batchCache = new Map<number, BitmapRow[]>();
  private readonly cmp: (a: Key, b: Key) => number;

  constructor(
    private readonly ct: ColumnType,
    private readonly file: IpcFileReader,
    private readonly lookupReads: number,
    private readonly lookup: { first: Key; last: Key }[],
    private readonly fragmentRows: (id: number) => number | undefined,
    private readonly covered: readonly number[],
  ) {
    this.cmp = keyComparator(ct);
  }

  get reads(): number {
    return this.file.reads + this.lookupReads;
  }

  private async rows(batch: number): Promise<BitmapRow[]> {
    let rows = this.batchCache.get(batch);
    if (!rows) {
      rows = bitmapRows(this.ct, this.file.key, await this.file.readBatch(batch));
      this.batchCache.set(batch, rows);
    }
    return rows;
  }

  /** Row set of keys k with lo ≤ k ≤ hi (bounds inclusive unless told; undefined = open). */
  private async range(lo: { v: Key; incl: boolean } | undefined, hi: { v: Key; incl: boolean } | undefined): Promise<RowSet> {
    const out: RowSet = new Map();
    const inLo = (k: Key) => !lo || (lo.incl ? this.cmp(k, lo.v) >= 0 : this.cmp(k, lo.v) > 0);
    const inHi = (k: Key) => !hi || (hi.incl ? this.cmp(k, hi.v) <= 0 : this.cmp(k, hi.v) < 0);
    for (let b = 0; b < this.lookup.length; b++) {
      const { first, last } = this.lookup[b]!;
      if (!inLo(last) || !inHi(first)) continue;
      for (const row of await this.rows(b)) {
        if (row.key === null && (lo || hi)) continue;
        if (inLo(row.key) && inHi(row.key)) this.orInto(out, row.set);
      }
    }
    return out;
  }

  private orInto(out: RowSet, set: Uint8Array): void {
    for (const e of splitEntries(set, this.file.key)) {
      const bm = decodeEntry(e, this.fragmentRows);
      const have = out.get(e.fragmentId);
      if (have) have.orInPlace(bm);
      else out.set(e.fragmentId, bm);
    }
  }

  private async nulls(): Promise<RowSet> {
    const out: RowSet = new Map();
    if (this.lookup.length === 0 || this.lookup[0]!.first !== null) return out;
    const first = (await this.rows(0))[0]!;
    if (first.key === null) this.orInto(out, first.set);
    return out;
  }

  private full(): RowSet {
    const out: RowSet = new Map();
    for (const id of this.covered) {
      const rows = this.fragmentRows(id) ?? 0;
      if (rows > 0) out.set(id, RoaringBitmap32.fromRange(0, rows));
    }
    return out;
  }

  async search(cond: Condition): Promise<RowSet> {
    switch (cond.kind) {
      case 'none':
        return new Map();
      case 'isNull':
        return this.nulls();
      case 'notNull':
        return subtract(this.full(), await this.nulls());
      case 'cmp': {
        const v = cond.value;
        switch (cond.op) {
          case '=':
            return this.range({ v, incl: true }, { v, incl: true });
          case '<':
            return this.range(undefined, { v, incl: false });
          case '<=':
            return this.range(undefined, { v, incl: true });
          case '>':
            return this.range({ v, incl: false }, undefined);
          case '>=':
            return this.range({ v, incl: true }, undefined);
          case '!=': {
            // Every non-null row except those equal to v: three reads, not a full scan.
            const rest = subtract(this.full(), await this.nulls());
            return subtract(rest, await this.range({ v, incl: true }, { v, incl: true }));
          }
        }
      }
    }
  }
}

export function subtract(a: RowSet, b: RowSet): RowSet {
  for (const [id, bm] of b) {
    const have = a.get(id);
    if (have) have.andNotInPlace(bm);
  }
  return a;
}

async function openBitmap(
  store: ObjectStore,
  ct: ColumnType,
  files: IndexFile[],
  coverage: Coverage,
): Promise<IndexSearcher> {
  const bitmap = files.find((f) => f.name === BITMAP_FILE);
  const lookupFile = files.find((f) => f.name === LOOKUP_FILE);
  if (!bitmap || !lookupFile) throw new IndexFileError(`bitmap index version lacks ${BITMAP_FILE} or ${LOOKUP_FILE}`);
  // The lookup table is small: read it whole (one read) and decode it in memory. The bitmap
  // file's footer is fetched at the same time: on S3 that saves a round trip per query.
  const [lookupBytes, file] = await Promise.all([store.read(lookupFile.key), openChecked(store, bitmap.key, bitmap.size, ct)]);
  const lookup: { first: Key; last: Key }[] = [];
  try {
    const table = arrow.tableFromIPC(lookupBytes);
    for (const batch of table.batches) {
      const first = readKeyValues(ct, batch.getChildAt(0)!.data[0]!);
      const last = readKeyValues(ct, batch.getChildAt(1)!.data[0]!);
      first.forEach((f, i) => lookup.push({ first: f, last: last[i]! }));
    }
  } catch (err) {
    throw new IndexFileError(`corrupt bitmap lookup table ${store.describe(lookupFile.key)}`, { cause: err });
  }
  if (file.numBatches !== lookup.length) {
    throw new IndexFileError(`bitmap lookup table ${store.describe(lookupFile.key)} lists ${lookup.length} batches, file has ${file.numBatches}`);
  }
  return new BitmapSearcher(ct, file, 1, lookup, (id) => coverage.rows(id), coverage.fragmentIds);
}

export const bitmapIndex: IndexKind = {
  type: 'bitmap',
  exact: true,
  normalizeParams(): IndexParams {
    return {};
  },
  createTrainer(ct, _params, tuning) {
    return new BitmapTrainer(ct, tuning);
  },
  merge: mergeBitmaps,
  open: openBitmap,
};
