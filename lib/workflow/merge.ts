/**
 * Step 3 of a build: check the part files against the plan, then stream them (with the
 * index's current version, when there is one) into a new version's files under a fresh
 * directory. Nothing is committed here.
 *
 * Every input is verified against its recorded CRC32C as it streams through (parts against
 * the `<part>.crc32c` records build-part wrote, the current version against the manifest),
 * and the new files' checksums, computed as they are written, go into the merge output for
 * the commit to record.
 */
import { randomBytes } from 'node:crypto';
import { openDataset } from '../dataset.js';
import { ColumnTypeError, IndexFileError } from '../errors.js';
import { describeColumnType } from '../format/column-type.js';
import { explainFailure, IpcFileReader } from '../format/ipc.js';
import { META, type WriterTuning } from '../indexes/kind.js';
import { indexKind } from '../indexes/registry.js';
import { loadLatestManifest } from '../manifest/manifest.js';
import { listAll, type ObjectStore } from '../store/store.js';
import { readPlan } from './plan.js';
import { readPartChecksum } from './part-checksum.js';
import { indexFilesPrefix, MergeInputSchema, PART_CHECKSUM_SUFFIX, PART_NAME, partsPrefix, type MergedIndex, type MergeOutput, type MergeStepInput, type Plan, type PlannedIndex } from './types.js';

export async function merge(rawInput: MergeStepInput, tuning?: WriterTuning): Promise<MergeOutput> {
  const input = MergeInputSchema.parse(rawInput);
  const { store } = openDataset(input.dataset);
  const plan = await readPlan(store, input.buildId);
  const manifest = await loadLatestManifest(store);
  const merged: MergedIndex[] = [];
  for (const planned of plan.indexes) {
    const base = manifest.indexes.find((e) => e.name === planned.name);
    const covered = new Set(base?.fragmentIds ?? []);
    const adding = planned.fragmentIds.filter((id) => !covered.has(id));
    // A concurrent build may already have covered everything this one brings.
    if (base && adding.length === 0) continue;
    const parts = await checkParts(store, plan, planned);
    // Every planned index has at least one group, and checkParts requires all of them.
    const first = parts[0];
    if (!first) throw new IndexFileError(`index ${planned.name}: the plan of build ${plan.buildId} lists no parts`);
    const valueType = await partsValueType(store, parts, base?.valueType ?? planned.valueType, planned.name);
    const ct = describeColumnType(planned.column, first.reader.schema.fields[0]!.type);
    const kind = indexKind(planned.type);
    const outDir = `${indexFilesPrefix(planned.name)}${newVersionDir()}`;
    const out = await kind.merge({
      store,
      ct,
      params: planned.params,
      column: planned.column,
      parts,
      previous: base?.files,
      keepPartFragment: (id) => !covered.has(id),
      // Rows of fragments removed since the base was written leave the index here.
      keepPreviousFragment: base?.staleFragmentIds?.length ? (id) => covered.has(id) : undefined,
      outDir,
      tuning,
    });
    merged.push({
      name: planned.name,
      column: planned.column,
      type: planned.type,
      params: planned.params,
      valueType,
      baseFiles: (base?.files ?? []).map((f) => f.key),
      files: out.files,
      fragmentIds: [...new Set([...covered, ...adding])].sort((a, b) => a - b),
      peakHeldBytes: out.peakHeldBytes,
    });
  }
  return { dataset: input.dataset, buildId: input.buildId, merged };
}

interface PartFile {
  groupId: number;
  reader: IpcFileReader;
}

/**
 * The parts present must be exactly the groups the plan lists for the index, each covering
 * exactly the planned fragments of its group (so no fragment is in two parts).
 */
async function checkParts(store: ObjectStore, plan: Plan, planned: PlannedIndex): Promise<PartFile[]> {
  const prefix = partsPrefix(plan.buildId, planned.name);
  const found = new Map<number, { key: string; size: number }>();
  for (const o of await listAll(store, prefix)) {
    const name = o.key.slice(prefix.length);
    if (name.endsWith(PART_CHECKSUM_SUFFIX) && PART_NAME.test(name.slice(0, -PART_CHECKSUM_SUFFIX.length))) continue;
    const m = PART_NAME.exec(name);
    if (!m || m[2] !== planned.type) throw new IndexFileError(`unexpected file among the parts of ${planned.name}: ${store.describe(o.key)}`);
    found.set(Number(m[1]), { key: o.key, size: o.size });
  }
  const expected = new Set(planned.groups);
  const missing = planned.groups.filter((g) => !found.has(g));
  if (missing.length > 0) throw new IndexFileError(`index ${planned.name}: part files missing for group(s) ${missing.join(', ')} of build ${plan.buildId}`);
  const extra = [...found.keys()].filter((g) => !expected.has(g));
  if (extra.length > 0) throw new IndexFileError(`index ${planned.name}: unexpected part files for group(s) ${extra.join(', ')} not in the plan of build ${plan.buildId}`);
  const wanted = new Set(planned.fragmentIds);
  const parts: PartFile[] = [];
  try {
    for (const groupId of [...found.keys()].sort((a, b) => a - b)) {
      const { key, size } = found.get(groupId)!;
      // Verified against the checksum build-part recorded: at open for a small part, else
      // as the merge streams it through, before anything is published.
      const recorded = await readPartChecksum(store, key);
      if (recorded.size !== size) {
        throw new IndexFileError(`part ${store.describe(key)} is ${size} bytes, but was written as ${recorded.size} bytes (truncated or replaced)`);
      }
      const reader = await IpcFileReader.open(store, key, { size, crc32c: recorded.crc32c });
      parts.push({ groupId, reader });
      const group = plan.groups.find((g) => g.groupId === groupId)!;
      const ids = group.fragments.filter((f) => wanted.has(f.id)).map((f) => f.id).join(',');
      if (reader.metadata.get(META.fragmentIds) !== ids) {
        throw new IndexFileError(`part ${store.describe(key)} covers fragments [${reader.metadata.get(META.fragmentIds)}], the plan says [${ids}]`);
      }
      if (planned.params.rowsPerZone !== undefined && reader.metadata.get(META.rowsPerZone) !== String(planned.params.rowsPerZone)) {
        throw new IndexFileError(`part ${store.describe(key)} has rows_per_zone ${reader.metadata.get(META.rowsPerZone)}, the index has ${planned.params.rowsPerZone}`);
      }
    }
  } catch (err) {
    // A part's footer is read before its bytes are verified: if one is damaged, say so.
    throw await explainFailure(err, parts.map((p) => p.reader));
  }
  return parts;
}

/** All parts must hold one value type, the index's own when it already exists. */
async function partsValueType(store: ObjectStore, parts: PartFile[], expected: string | undefined, name: string): Promise<string> {
  let sig = expected;
  try {
    for (const p of parts) {
      const s = describeColumnType('keys', p.reader.schema.fields[0]!.type).signature;
      if (sig !== undefined && s !== sig) throw new ColumnTypeError(`index ${name}: part ${store.describe(p.reader.key)} holds ${s} values, expected ${sig}`);
      sig ??= s;
    }
  } catch (err) {
    throw await explainFailure(err, parts.map((p) => p.reader));
  }
  return sig!;
}

function newVersionDir(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}
