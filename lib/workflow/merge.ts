/**
 * Step 3 of a build: check the parts against the plan, and make each index's new segment from
 * them. A build that had one group for an index commits that part as the segment as it is (it
 * is already a complete, checksummed segment: no copy, no second pass); several parts are
 * streamed into one new segment by the kind's k-way merge. Nothing already committed is read
 * or rewritten: an append costs what it adds. Nothing is committed here either.
 *
 * Every part is verified against its record (size and CRC32C of each file) as it streams
 * through, and a part is taken only if it covers exactly the fragments the plan gave its
 * group, less the ones it recorded as bad.
 */
import { randomBytes } from 'node:crypto';
import { openDataset } from '../dataset.js';
import { ColumnTypeError, IndexFileError } from '../errors.js';
import { describeColumnType } from '../format/column-type.js';
import { explainFailure, IpcFileReader } from '../format/ipc.js';
import { META, type WriterTuning } from '../indexes/kind.js';
import { indexKind } from '../indexes/registry.js';
import { listAll, type ObjectStore } from '../store/store.js';
import { readPlan } from './plan.js';
import { readPartRecord } from './part-record.js';
import { indexFilesPrefix, MergeInputSchema, PART_RECORD_NAME, partRecordsPrefix, type MergeOutput, type MergeStepInput, type NewSegment, type PartRecord, type Plan, type PlannedIndex } from './types.js';

export async function merge(rawInput: MergeStepInput, tuning?: WriterTuning): Promise<MergeOutput> {
  const input = MergeInputSchema.parse(rawInput);
  const { store } = openDataset(input.dataset);
  const plan = await readPlan(store, input.buildId);
  const segments: NewSegment[] = [];
  const failed = new Map<number, { id: number; path: string; reason: string }>();
  for (const planned of plan.indexes) {
    const records = await checkParts(store, plan, planned);
    for (const r of records) for (const f of r.failed) failed.set(f.id, f);
    const parts = records.filter((r) => r.files.length > 0);
    if (parts.length === 0) continue; // every fragment it planned turned out bad
    const kind = indexKind(planned.type);
    const fragmentIds = parts.flatMap((p) => p.fragmentIds).sort((a, b) => a - b);
    const rows = parts.reduce((n, p) => n + p.rows, 0);
    const base = { name: planned.name, column: planned.column, type: planned.type, params: planned.params, fragmentIds, rows };
    if (parts.length === 1) {
      const only = parts[0]!;
      const valueType = await partsValueType(store, [await openPart(store, kind.mainFile, only)], planned);
      segments.push({ ...base, valueType, files: only.files, partDirs: [], peakHeldBytes: 0 });
      continue;
    }
    const readers = await Promise.all(parts.map((p) => openPart(store, kind.mainFile, p)));
    const valueType = await partsValueType(store, readers, planned);
    const outDir = `${indexFilesPrefix(planned.name)}${plan.buildId}-m-${randomBytes(4).toString('hex')}/`;
    const out = await kind.merge({
      store,
      ct: describeColumnType(planned.column, readers[0]!.schema.fields[0]!.type),
      params: planned.params,
      column: planned.column,
      inputs: readers.map((reader) => ({ reader })),
      outDir,
      tuning,
    });
    const partDirs = parts.map((p) => p.files[0]!.key.slice(0, p.files[0]!.key.lastIndexOf('/') + 1));
    segments.push({ ...base, valueType, files: out.files, partDirs, peakHeldBytes: out.peakHeldBytes });
  }
  return { dataset: input.dataset, buildId: input.buildId, segments, failed: [...failed.values()].sort((a, b) => a.id - b.id) };
}

/** A part's main file, opened with the size and checksum its record gives. */
async function openPart(store: ObjectStore, mainFile: string, record: PartRecord): Promise<IpcFileReader> {
  const f = record.files.find((x) => x.name === mainFile);
  if (!f) throw new IndexFileError(`the part of group ${record.groupId} has no ${mainFile}`);
  return IpcFileReader.open(store, f.key, { size: f.size, crc32c: f.crc32c });
}

/**
 * The records present must be exactly the groups the plan lists for the index, each covering
 * exactly the planned fragments of its group less the ones it found bad (so no fragment is in
 * two parts), and each part's metadata must agree with its record and the plan.
 */
async function checkParts(store: ObjectStore, plan: Plan, planned: PlannedIndex): Promise<PartRecord[]> {
  const prefix = partRecordsPrefix(plan.buildId, planned.name);
  const found = new Map<number, string>();
  for (const o of await listAll(store, prefix)) {
    const name = o.key.slice(prefix.length);
    const m = PART_RECORD_NAME.exec(name);
    if (!m) throw new IndexFileError(`unexpected file among the part records of ${planned.name}: ${store.describe(o.key)}`);
    found.set(Number(m[1]), o.key);
  }
  const missing = planned.groups.filter((g) => !found.has(g));
  if (missing.length > 0) throw new IndexFileError(`index ${planned.name}: parts missing for group(s) ${missing.join(', ')} of build ${plan.buildId}`);
  const extra = [...found.keys()].filter((g) => !planned.groups.includes(g));
  if (extra.length > 0) throw new IndexFileError(`index ${planned.name}: unexpected parts for group(s) ${extra.join(', ')} not in the plan of build ${plan.buildId}`);
  const wanted = new Set(planned.fragmentIds);
  const records: PartRecord[] = [];
  for (const groupId of [...found.keys()].sort((a, b) => a - b)) {
    const key = found.get(groupId)!;
    const record = await readPartRecord(store, key);
    const group = plan.groups.find((g) => g.groupId === groupId)!;
    const bad = new Set(record.failed.map((f) => f.id));
    for (const f of record.failed) {
      if (!group.fragments.some((g) => g.id === f.id)) throw new IndexFileError(`part record ${store.describe(key)} lists fragment ${f.id} as bad, which is not in its group`);
    }
    const ids = group.fragments.filter((f) => wanted.has(f.id) && !bad.has(f.id)).map((f) => f.id).join(',');
    if (record.groupId !== groupId || record.fragmentIds.join(',') !== ids) {
      throw new IndexFileError(`part record ${store.describe(key)} covers fragments [${record.fragmentIds}], the plan says [${ids}]`);
    }
    const names = record.files.map((f) => f.name).sort();
    const expected = [...indexKind(planned.type).fileNames].sort();
    if (record.files.length > 0 && names.join('\n') !== expected.join('\n')) {
      throw new IndexFileError(`part record ${store.describe(key)} lists files ${JSON.stringify(names)}, a ${planned.type} part has ${JSON.stringify(expected)}`);
    }
    records.push(record);
  }
  // The parts' own metadata must agree (read from footers; verified as the merge streams them).
  const kind = indexKind(planned.type);
  const readers: IpcFileReader[] = [];
  try {
    for (const r of records.filter((x) => x.files.length > 0)) {
      const reader = await openPart(store, kind.mainFile, r);
      readers.push(reader);
      if (reader.metadata.get(META.fragmentIds) !== r.fragmentIds.join(',')) {
        throw new IndexFileError(`part ${reader.where} covers fragments [${reader.metadata.get(META.fragmentIds)}], its record says [${r.fragmentIds}]`);
      }
      if (planned.params.rowsPerZone !== undefined && reader.metadata.get(META.rowsPerZone) !== String(planned.params.rowsPerZone)) {
        throw new IndexFileError(`part ${reader.where} has rows_per_zone ${reader.metadata.get(META.rowsPerZone)}, the index has ${planned.params.rowsPerZone}`);
      }
    }
  } catch (err) {
    // A part's footer is read before its bytes are verified: if one is damaged, say so.
    throw await explainFailure(err, readers);
  }
  return records;
}

/** All parts must hold one value type, the index's own when it already exists. */
async function partsValueType(store: ObjectStore, parts: IpcFileReader[], planned: PlannedIndex): Promise<string> {
  let sig = planned.valueType;
  try {
    for (const p of parts) {
      const s = describeColumnType('keys', p.schema.fields[0]!.type).signature;
      if (sig !== undefined && s !== sig) throw new ColumnTypeError(`index ${planned.name}: part ${store.describe(p.key)} holds ${s} values, expected ${sig}`);
      sig ??= s;
    }
  } catch (err) {
    throw await explainFailure(err, parts);
  }
  return sig!;
}
