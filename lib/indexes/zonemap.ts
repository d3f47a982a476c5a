/**
 * Zone map index: per zone of `rows_per_zone` rows of one fragment, min, max (NaN and null
 * excluded), null count and NaN count (index-format.md "Zone map"). Answers are AtMost.
 */
import * as arrow from 'apache-arrow';
import { buildKeyData, comparatorFor, readKeyValues, type ColumnType, type KeyValue } from '../format/column-type.js';
import { explainFailure, IpcFileReader, IpcFileWriter, makeBatch, type OpenOptions, type WrittenFile } from '../format/ipc.js';
import { RoaringBitmap32, type RowSet } from '../format/rowset.js';
import { IndexFileError, IndexParamsError } from '../errors.js';
import type { ObjectStore } from '../store/store.js';
import { BatchCursor, CursorHeap, HeldBytes } from './kway.js';
import { segmentStats } from './scan.js';
import { META, type Condition, type Coverage, type IndexFile, type IndexKind, type IndexParams, type IndexSearcher, type MergeInput, type MergeOutput, type Trainer, type WriterTuning } from './kind.js';

export const ZONEMAP_FILE = 'zonemap.arrow';
export const DEFAULT_ROWS_PER_ZONE = 8192;
const DEFAULT_BATCH_ZONES = 65536;

export interface Zone {
  fragmentId: number;
  start: number;
  length: number;
  nulls: number;
  nans: number;
  min: KeyValue | null;
  max: KeyValue | null;
}

export function zonemapSchema(ct: ColumnType, metadata: Map<string, string>): arrow.Schema {
  return new arrow.Schema(
    [
      new arrow.Field('min', ct.keyType, true),
      new arrow.Field('max', ct.keyType, true),
      new arrow.Field('null_count', new arrow.Uint32(), false),
      new arrow.Field('nan_count', new arrow.Uint32(), false),
      new arrow.Field('fragment_id', new arrow.Uint64(), false),
      new arrow.Field('zone_start', new arrow.Uint64(), false),
      new arrow.Field('zone_length', new arrow.Uint64(), false),
    ],
    metadata,
  );
}

const u32 = (values: number[]) => arrow.makeData({ type: new arrow.Uint32(), length: values.length, nullCount: 0, data: Uint32Array.from(values) });
const u64 = (values: number[]) =>
  arrow.makeData({ type: new arrow.Uint64(), length: values.length, nullCount: 0, data: BigUint64Array.from(values, (v) => BigInt(v)) });

/** Buffers zones and writes them in batches; every batch carries the schema metadata. */
class ZoneFileWriter {
  private zones: Zone[] = [];
  private last: Zone | undefined;
  private readonly batchZones: number;

  private constructor(
    private readonly out: IpcFileWriter,
    private readonly ct: ColumnType,
    tuning: WriterTuning = {},
  ) {
    this.batchZones = tuning.batchKeys ?? DEFAULT_BATCH_ZONES;
  }

  static async create(store: ObjectStore, key: string, ct: ColumnType, metadata: Map<string, string>, tuning?: WriterTuning) {
    return new ZoneFileWriter(await IpcFileWriter.create(store, key, zonemapSchema(ct, metadata)), ct, tuning);
  }

  async add(z: Zone): Promise<void> {
    if (this.last && (z.fragmentId < this.last.fragmentId || (z.fragmentId === this.last.fragmentId && z.start <= this.last.start))) {
      throw new IndexFileError(`zones out of order: fragment ${z.fragmentId} zone ${z.start} after fragment ${this.last.fragmentId} zone ${this.last.start}`);
    }
    this.last = z;
    this.zones.push(z);
    if (this.zones.length >= this.batchZones) await this.flush();
  }

  private async flush(): Promise<void> {
    const z = this.zones;
    if (z.length === 0) return;
    this.zones = [];
    await this.out.write(
      makeBatch(this.out.schema, [
        buildKeyData(this.ct, z.map((x) => x.min)),
        buildKeyData(this.ct, z.map((x) => x.max)),
        u32(z.map((x) => x.nulls)),
        u32(z.map((x) => x.nans)),
        u64(z.map((x) => x.fragmentId)),
        u64(z.map((x) => x.start)),
        u64(z.map((x) => x.length)),
      ]),
    );
  }

  async close(): Promise<WrittenFile> {
    await this.flush();
    return this.out.close();
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }
}

// ---------------------------------------------------------------------------------------------
// Training a part

class ZoneTrainer implements Trainer {
  private readonly zones: Zone[] = [];
  private zone: Zone | undefined;
  private fragmentId = -1;
  private offset = 0;
  private readonly cmp: (a: KeyValue, b: KeyValue) => number;

  constructor(
    private readonly ct: ColumnType,
    private readonly rowsPerZone: number,
    private readonly tuning?: WriterTuning,
  ) {
    this.cmp = comparatorFor(ct.kind);
  }

  startFragment(fragmentId: number, _rows: number): void {
    if (fragmentId <= this.fragmentId) throw new IndexFileError(`fragments must be trained in ascending id order (${fragmentId} after ${this.fragmentId})`);
    this.fragmentId = fragmentId;
    this.offset = 0;
    this.zone = undefined;
  }

  addBatch(data: arrow.Data): void {
    let i = 0;
    while (i < data.length) {
      const z = (this.zone ??= { fragmentId: this.fragmentId, start: this.offset, length: 0, nulls: 0, nans: 0, min: null, max: null });
      // A zone may span record batches: fold each batch segment into it.
      const take = Math.min(this.rowsPerZone - z.length, data.length - i);
      const s = segmentStats(this.ct, data, i, i + take);
      z.length += take;
      z.nulls += s.nulls;
      z.nans += s.nans;
      if (s.min !== null && (z.min === null || this.cmp(s.min, z.min) < 0)) z.min = s.min;
      if (s.max !== null && (z.max === null || this.cmp(s.max, z.max) > 0)) z.max = s.max;
      i += take;
      this.offset += take;
      if (z.length === this.rowsPerZone) {
        this.zones.push(z);
        this.zone = undefined;
      }
    }
  }

  endFragment(): void {
    if (this.zone && this.zone.length > 0) this.zones.push(this.zone);
    this.zone = undefined;
  }

  async writeSegment(store: ObjectStore, dir: string, metadata: Map<string, string>): Promise<IndexFile[]> {
    const key = `${dir}${ZONEMAP_FILE}`;
    const w = await ZoneFileWriter.create(store, key, this.ct, metadata, this.tuning);
    try {
      for (const z of this.zones) await w.add(z);
      const written = await w.close();
      return [{ name: ZONEMAP_FILE, key, size: written.size, crc32c: written.crc32c }];
    } catch (err) {
      await w.abort();
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading zone files

function zonesOf(ct: ColumnType, what: string, batch: arrow.RecordBatch): Zone[] {
  try {
    return readZones(ct, what, batch);
  } catch (err) {
    if (err instanceof IndexFileError) throw err;
    throw new IndexFileError(`${what}: unreadable zone map batch: ${(err as Error)?.message ?? err}`, { cause: err });
  }
}

function readZones(ct: ColumnType, what: string, batch: arrow.RecordBatch): Zone[] {
  const col = (i: number) => {
    const d = batch.getChildAt(i)?.data[0];
    if (!d) throw new IndexFileError(`${what}: not a zone map file`);
    return d;
  };
  const mins = readKeyValues(ct, col(0));
  const maxs = readKeyValues(ct, col(1));
  const nulls = col(2).values as Uint32Array;
  const nans = col(3).values as Uint32Array;
  const frag = col(4).values as BigUint64Array;
  const start = col(5).values as BigUint64Array;
  const len = col(6).values as BigUint64Array;
  const o = [2, 3, 4, 5, 6].map((i) => col(i).offset);
  const zones = mins.map((min, i) => ({
    min,
    max: maxs[i]!,
    nulls: nulls[o[0]! + i]!,
    nans: nans[o[1]! + i]!,
    fragmentId: Number(frag[o[2]! + i]!),
    start: Number(start[o[3]! + i]!),
    length: Number(len[o[4]! + i]!),
  }));
  for (const z of zones) {
    // Row offsets are u32 (index-format.md "Row addresses"); anything else is damage.
    if (!(z.fragmentId <= 0xffffffff && z.start + z.length <= 2 ** 32 && z.nulls <= z.length && z.nans <= z.length && (z.min === null) === (z.max === null))) {
      throw new IndexFileError(`${what}: impossible zone (fragment ${z.fragmentId}, start ${z.start}, length ${z.length}, ${z.nulls} nulls, ${z.nans} NaNs)`);
    }
  }
  return zones;
}

/** Open a zone file, checking its schema and (when given) its rows_per_zone. */
async function openZoneFile(store: ObjectStore, key: string, options: OpenOptions, ct: ColumnType, rowsPerZone?: number): Promise<IpcFileReader> {
  return checkZoneSchema(store, await IpcFileReader.open(store, key, options), ct, rowsPerZone);
}

function checkZoneSchema(store: ObjectStore, reader: IpcFileReader, ct: ColumnType, rowsPerZone?: number): IpcFileReader {
  const where = store.describe(reader.key);
  const names = reader.schema.fields.map((f) => f.name).join(',');
  if (names !== 'min,max,null_count,nan_count,fragment_id,zone_start,zone_length') throw new IndexFileError(`not a zone map file: ${where}`);
  if (String(reader.schema.fields[0]!.type) !== String(ct.keyType)) {
    throw new IndexFileError(`value type mismatch in ${where}: ${String(reader.schema.fields[0]!.type)}, expected ${String(ct.keyType)}`);
  }
  const rpz = reader.metadata.get(META.rowsPerZone);
  if (rpz === undefined || !/^[1-9][0-9]*$/.test(rpz)) throw new IndexFileError(`missing or invalid rows_per_zone metadata in ${where}: ${rpz ?? '(none)'}`);
  if (rowsPerZone !== undefined && rpz !== String(rowsPerZone)) {
    throw new IndexFileError(`rows_per_zone mismatch in ${where}: file has ${rpz}, index has ${rowsPerZone}`);
  }
  return reader;
}

async function mergeZones(input: MergeInput): Promise<MergeOutput> {
  const { store, ct } = input;
  const rowsPerZone = input.params.rowsPerZone!;
  const held = new HeldBytes();
  let w: ZoneFileWriter | undefined;
  // Every input is verified against its checksum as it streams through (to its end, before
  // anything is published); on any failure, a damaged input is what gets reported.
  try {
    for (const src of input.inputs) checkZoneSchema(store, src.reader, ct, rowsPerZone);
    const order = (a: Zone, b: Zone) => a.fragmentId - b.fragmentId || a.start - b.start;
    const heap = new CursorHeap<Zone>(order);
    for (const [i, src] of input.inputs.entries()) {
      const reader = src.reader;
      const what = store.describe(reader.key);
      const keep = src.keep;
      const c = new BatchCursor(
        reader.batches(0)[Symbol.asyncIterator](),
        (b: arrow.RecordBatch) => (keep ? zonesOf(ct, what, b).filter((z) => keep(z.fragmentId)) : zonesOf(ct, what, b)),
        (b) => b.data.children.reduce((n, ch) => n + (ch.values?.byteLength ?? 0) + (ch.valueOffsets?.byteLength ?? 0), 0),
        held,
      );
      heap.push(await c.start(), i);
    }
    const outKey = `${input.outDir}${ZONEMAP_FILE}`;
    // The metadata is set on the schema here, not taken from a batch: Lance PR #6840 lost
    // rows_per_zone exactly that way.
    const metadata = new Map([
      [META.indexType, 'zonemap'],
      [META.column, input.column],
      [META.rowsPerZone, String(rowsPerZone)],
    ]);
    w = await ZoneFileWriter.create(store, outKey, ct, metadata, input.tuning);
    const owner = new Map<number, number>();
    while (heap.size > 0) {
      const { c, i } = heap.pop()!;
      const z = c.row!;
      const o = owner.get(z.fragmentId);
      if (o !== undefined && o !== i) throw new IndexFileError(`fragment ${z.fragmentId} appears in two inputs of the zone map merge`);
      owner.set(z.fragmentId, i);
      await w.add(z);
      await c.advance();
      heap.push(c, i);
    }
    const written = await w.close();
    return { files: [{ name: ZONEMAP_FILE, key: outKey, size: written.size, crc32c: written.crc32c }], peakHeldBytes: held.peak, maxInputBatchBytes: held.maxBatch };
  } catch (err) {
    await w?.abort().catch(() => undefined);
    throw await explainFailure(err, input.inputs.map((s) => s.reader));
  }
}

// ---------------------------------------------------------------------------------------------
// Searching

/** Whether a zone may hold a row satisfying `cond` (index-format.md "Which zones a query keeps"). */
export function zoneMayMatch(z: Zone, cond: Condition, cmp: (a: KeyValue, b: KeyValue) => number): boolean {
  switch (cond.kind) {
    case 'none':
      return false;
    case 'isNull':
      return z.nulls > 0;
    case 'notNull':
      return z.length > z.nulls;
    case 'cmp': {
      const v = cond.value;
      const vIsNaN = typeof v === 'number' && v !== v;
      const { min, max } = z;
      const hasNaN = z.nans > 0;
      switch (cond.op) {
        case '=':
          return vIsNaN ? hasNaN : min !== null && cmp(min, v) <= 0 && cmp(v, max!) <= 0;
        case '!=':
          // Rows differ from v unless every non-null value equals v.
          if (vIsNaN) return min !== null;
          return hasNaN || (min !== null && !(cmp(min, v) === 0 && cmp(max!, v) === 0));
        case '<':
          return vIsNaN ? min !== null : min !== null && cmp(min, v) < 0;
        case '<=':
          return vIsNaN ? min !== null || hasNaN : min !== null && cmp(min, v) <= 0;
        case '>':
          return vIsNaN ? false : hasNaN || (max !== null && cmp(max, v) > 0);
        case '>=':
          return vIsNaN ? hasNaN : hasNaN || (max !== null && cmp(max, v) >= 0);
      }
    }
    case 'in': {
      // Values are sorted in the column's order, so a NaN among them is the last one.
      const { values, negated } = cond;
      const last = values[values.length - 1]!;
      const listHasNaN = typeof last === 'number' && last !== last;
      const { min, max } = z;
      if (!negated) {
        if (listHasNaN && z.nans > 0) return true;
        if (min === null) return false;
        const i = lowerBound(values, min, cmp);
        return i < values.length && !(listHasNaN && i === values.length - 1) && cmp(values[i]!, max!) <= 0;
      }
      // Some non-null row differs from every value: a NaN the list lacks, two distinct
      // values, or one value the list lacks.
      if (z.nans > 0 && !listHasNaN) return true;
      if (min === null) return false;
      if (cmp(min, max!) !== 0) return true;
      const i = lowerBound(values, min, cmp);
      return !(i < values.length && cmp(values[i]!, min) === 0);
    }
  }
}

/** First index of `values` (sorted by `cmp`) not below `v`. */
function lowerBound(values: readonly KeyValue[], v: KeyValue, cmp: (a: KeyValue, b: KeyValue) => number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cmp(values[mid]!, v) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class ZoneSearcher implements IndexSearcher {
  private readonly cmp: (a: KeyValue, b: KeyValue) => number;
  constructor(
    ct: ColumnType,
    private readonly zones: Zone[],
    readonly reads: number,
  ) {
    this.cmp = comparatorFor(ct.kind);
  }

  async search(cond: Condition): Promise<RowSet> {
    const out: RowSet = new Map();
    for (const z of this.zones) {
      if (!zoneMayMatch(z, cond, this.cmp)) continue;
      let bm = out.get(z.fragmentId);
      if (!bm) out.set(z.fragmentId, (bm = new RoaringBitmap32()));
      bm.addRange(z.start, z.start + z.length);
    }
    return out;
  }
}

export const zonemapIndex: IndexKind = {
  type: 'zonemap',
  exact: false,
  mainFile: ZONEMAP_FILE,
  fileNames: [ZONEMAP_FILE],
  normalizeParams(params: IndexParams): IndexParams {
    const rpz = params.rowsPerZone ?? DEFAULT_ROWS_PER_ZONE;
    if (!Number.isInteger(rpz) || rpz <= 0 || rpz > 0xffffffff) {
      throw new IndexParamsError(`rows_per_zone must be a whole number from 1 to 4294967295, got ${rpz}`);
    }
    return { rowsPerZone: rpz };
  },
  createTrainer(ct, params, tuning) {
    return new ZoneTrainer(ct, params.rowsPerZone!, tuning);
  },
  merge: mergeZones,
  async open(store: ObjectStore, ct: ColumnType, files: IndexFile[], coverage: Coverage): Promise<IndexSearcher> {
    const f = files.find((x) => x.name === ZONEMAP_FILE);
    if (!f) throw new IndexFileError(`zone map index version lacks ${ZONEMAP_FILE}`);
    // Every zone is read before any is used, so a recorded checksum is verified (whole file)
    // before the searcher answers anything.
    const file = await openZoneFile(store, f.key, f, ct);
    const zones: Zone[] = [];
    const covered = new Set(coverage.fragmentIds);
    const where = store.describe(f.key);
    try {
      for await (const b of file.batches()) for (const z of zonesOf(ct, where, b)) if (covered.has(z.fragmentId)) zones.push(z);
    } catch (err) {
      throw await explainFailure(err, [file]);
    }
    return new ZoneSearcher(ct, zones, file.reads);
  },
};
