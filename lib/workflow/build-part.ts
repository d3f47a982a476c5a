/**
 * Step 2 of a build (one worker per fragment group): read each fragment of the group once and
 * feed every index that needs it, then write each index's part as a complete segment of its
 * own (`_index/indexes/<index dir>/<buildId>-g<groupId>/`: every file of the kind, with its
 * checksums), and record it in the build (`_index/builds/<buildId>/parts/…/<groupId>.json`).
 * The record is written last: a part without one is an unfinished attempt, which a retry
 * replaces. When the plan allows it (skipBadFragments), a fragment whose content turns out bad
 * is left out of every part and listed in the records, for the commit to record as failed.
 */
import { openDataset } from '../dataset.js';
import { AlreadyExistsError, ColumnTypeError, FragmentChangedError, FragmentReadError, IndexFileError, MissingColumnError, ValueTooLargeError } from '../errors.js';
import { describeColumnType } from '../format/column-type.js';
import { loadArrowFileColumns } from '../fragments/arrow-columns.js';
import { fingerprintAsRegistered } from '../fragments/footer.js';
import { columnIndex, decodeFragment, type LoadedFragment } from '../fragments/reader.js';
import { META, type Trainer, type WriterTuning } from '../indexes/kind.js';
import { indexKind } from '../indexes/registry.js';
import { listAll, type ObjectStore } from '../store/store.js';
import { readPlan } from './plan.js';
import { encodePartRecord, readPartRecord } from './part-record.js';
import { BuildPartInputSchema, partDir, partRecordKey, type BuildPartInput, type BuildPartOutput, type PartRecord, type PlannedFragment, type PlannedIndex } from './types.js';

/** A fragment is read ahead, while the one before it is indexed, only up to this size. */
const READ_AHEAD_MAX_BYTES = 64 * 1024 * 1024;

export async function buildPart(rawInput: BuildPartInput, tuning?: WriterTuning): Promise<BuildPartOutput> {
  const input = BuildPartInputSchema.parse(rawInput);
  const { store } = openDataset(input.dataset);
  const plan = await readPlan(store, input.buildId);
  const group = plan.groups.find((g) => g.groupId === input.groupId);
  if (!group) throw new IndexFileError(`build ${input.buildId} has no fragment group ${input.groupId}`);

  interface Job {
    index: PlannedIndex;
    wanted: Set<number>;
    trainer?: Trainer;
    trained: number[];
    valueType?: string;
    firstFrom?: string;
  }
  const jobs: Job[] = plan.indexes
    .filter((ix) => ix.groups.includes(group.groupId))
    .map((index) => ({ index, wanted: new Set(index.fragmentIds), trained: [], valueType: index.valueType, firstFrom: index.valueType ? `index ${index.name}` : undefined }));

  // A retry after every record was written has nothing left to do.
  const done = await Promise.all(jobs.map((j) => store.head(partRecordKey(plan.buildId, j.index.name, group.groupId))));
  if (done.every((d) => d !== undefined)) return { groupId: group.groupId, rows: 0, parts: 0 };

  // An Arrow file registered by its footer is read column by column: only what the indexes
  // need. Anything else (or a file that cannot be projected) is read whole.
  const load = async (planned: PlannedFragment, users: Job[]) =>
    (planned.fingerprint.startsWith('arrowfile:')
      ? await loadArrowFileColumns(store, planned.path, planned.size, users.map((j) => j.index.column))
      : undefined) ?? (await loadWhole(store, planned));
  const todo = [...group.fragments]
    .sort((a, b) => a.id - b.id)
    .map((planned) => ({ planned, users: jobs.filter((j) => j.wanted.has(planned.id)) }))
    .filter((t) => t.users.length > 0);

  let rows = 0;
  const failed: PartRecord['failed'] = [];
  // The next fragment is read while this one is indexed (one ahead, and only a fragment of
  // at most READ_AHEAD_MAX_BYTES: two fragments in memory at most), so reads hide behind the
  // CPU work.
  const start = (k: number) => {
    const t = todo[k];
    if (!t || t.planned.size > READ_AHEAD_MAX_BYTES) return undefined;
    const p = load(t.planned, t.users);
    // If the fragment before it fails, the read ahead's own failure (if any) is not the news.
    p.catch(() => undefined);
    return p;
  };
  let ahead = start(0);
  for (let k = 0; k < todo.length; k++) {
    const { planned, users } = todo[k]!;
    const where = store.describe(planned.path);
    const reading = ahead ?? load(planned, users);
    reading.catch(() => undefined);
    ahead = start(k + 1);
    try {
      const fragment = await reading;
      if (fragment.fingerprint !== planned.fingerprint) {
        throw new FragmentChangedError(`fragment ${where} (id ${planned.id}) changed after it was registered; fragments are immutable`);
      }
      // Same footer, other rows: registration counted the batch headers (or row groups),
      // the data decodes to something else. The file is bad, not changed.
      if (fragment.rows !== planned.rows) {
        throw new FragmentReadError(`corrupt fragment ${where} (id ${planned.id}): its data decodes to ${fragment.rows} rows, its footer and headers say ${planned.rows}`);
      }
      // Check every index's column before feeding any: a bad fragment is left out of all of them.
      const columns = users.map((job) => {
        const { column } = job.index;
        const col = columnIndex(fragment.schema, column, where);
        let ct;
        try {
          ct = describeColumnType(column, fragment.schema.fields[col]!.type);
        } catch (err) {
          throw new ColumnTypeError(`${(err as Error).message} (fragment ${where})`);
        }
        if (job.valueType !== undefined && ct.signature !== job.valueType) {
          throw new ColumnTypeError(`column '${column}' is ${ct.signature} in fragment ${where} but ${job.valueType} in ${job.firstFrom}`);
        }
        return ct;
      });
      rows += fragment.rows;
      users.forEach((job, u) => {
        const { column } = job.index;
        const ct = columns[u]!;
        job.valueType ??= ct.signature;
        job.firstFrom ??= `fragment ${where}`;
        job.trainer ??= indexKind(job.index.type).createTrainer(ct, job.index.params, tuning);
        try {
          job.trainer.startFragment(planned.id, fragment.rows);
          // By name: a projected fragment's batches hold only the columns asked for.
          for (const batch of fragment.batches) job.trainer.addBatch(batch.getChild(column)!.data[0]!);
          job.trainer.endFragment();
        } catch (err) {
          // A column too large for the kind (a bitmap over an id-like column): say which.
          if (err instanceof ValueTooLargeError) throw new ValueTooLargeError(`index ${job.index.name} on column '${column}', fragment group ${group.groupId} (up to ${where}): ${err.message}`, { cause: err });
          throw err;
        }
        job.trained.push(planned.id);
      });
    } catch (err) {
      // A changed file counts too: registration recorded a footer the bytes no longer match,
      // and nothing was indexed from it, so it fails like a file that cannot be read (the next
      // build registers the new file under a new id, as for any failed fragment).
      const bad = err instanceof FragmentReadError || err instanceof FragmentChangedError || err instanceof MissingColumnError || err instanceof ColumnTypeError;
      if (!(plan.skipBadFragments && bad)) throw err;
      failed.push({ id: planned.id, path: planned.path, reason: (err as Error).message });
    }
  }

  let parts = 0;
  for (const job of jobs) {
    const recordKey = partRecordKey(plan.buildId, job.index.name, group.groupId);
    const record: PartRecord = { groupId: group.groupId, files: [], fragmentIds: job.trained, rows: 0, failed };
    if (job.trainer && job.trained.length > 0) {
      const dir = partDir(plan.buildId, job.index.name, group.groupId);
      // What an earlier, unfinished attempt left (it has no record, so nothing refers to it).
      await store.deleteMany((await listAll(store, dir)).map((o) => o.key));
      const metadata = new Map<string, string>([
        [META.indexType, job.index.type],
        [META.column, job.index.column],
        [META.fragmentIds, job.trained.join(',')],
      ]);
      if (job.index.params.rowsPerZone !== undefined) metadata.set(META.rowsPerZone, String(job.index.params.rowsPerZone));
      record.files = await job.trainer.writeSegment(store, dir, metadata);
      record.rows = job.trained.reduce((n, id) => n + group.fragments.find((f) => f.id === id)!.rows, 0);
      parts++;
    }
    try {
      await store.put(recordKey, encodePartRecord(record), { createOnly: true });
    } catch (err) {
      // Another attempt finished first: its part is the one that counts, if it is the same.
      if (!(err instanceof AlreadyExistsError)) throw err;
      const prior = await readPartRecord(store, recordKey);
      if (prior.fragmentIds.join(',') !== record.fragmentIds.join(',')) throw new IndexFileError(`part record ${store.describe(recordKey)} covers fragments [${prior.fragmentIds}], this attempt [${record.fragmentIds}]`);
    }
  }
  return { groupId: group.groupId, rows, parts };
}

/**
 * A whole fragment, with its fingerprint computed the way its registration computed it: from
 * the footer and headers (`fingerprintOf`) for fragments registered by footer, from all the
 * bytes (`sha256:`) for fragments registered whole by an earlier version.
 *
 * @throws FragmentChangedError when the bytes are not the registered file's (checked before
 *   decoding, so a replaced file is reported as changed, not as corrupt)
 * @throws FragmentReadError when the file cannot be read or decoded
 */
async function loadWhole(store: ObjectStore, planned: PlannedFragment): Promise<LoadedFragment> {
  const where = store.describe(planned.path);
  let bytes: Uint8Array;
  try {
    bytes = await store.read(planned.path);
  } catch (err) {
    throw new FragmentReadError(`cannot read fragment ${where}: ${(err as Error).message}`, { cause: err });
  }
  const fingerprint = fingerprintAsRegistered(planned.fingerprint, planned.path, bytes);
  if (bytes.byteLength !== planned.size || fingerprint !== planned.fingerprint) {
    throw new FragmentChangedError(`fragment ${where} (id ${planned.id}) changed after it was registered; fragments are immutable`);
  }
  return { ...decodeFragment(planned.path, where, bytes), fingerprint };
}
