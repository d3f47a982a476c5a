/**
 * Step 2 of a build (one worker per fragment group): read each fragment of the group once and
 * feed every index that needs it, then write one part file per index, create-only, each with
 * its checksum record (`<part>.crc32c`) for the merge to verify it against.
 */
import { openDataset } from '../dataset.js';
import { AlreadyExistsError, ColumnTypeError, FragmentChangedError, IndexFileError, ValueTooLargeError } from '../errors.js';
import { describeColumnType } from '../format/column-type.js';
import { IpcFileReader } from '../format/ipc.js';
import { loadArrowFileColumns } from '../fragments/arrow-columns.js';
import { columnIndex, loadFragment } from '../fragments/reader.js';
import { META, type Trainer, type WriterTuning } from '../indexes/kind.js';
import { indexKind } from '../indexes/registry.js';
import { readPlan } from './plan.js';
import { recordPartChecksum } from './part-checksum.js';
import { BuildPartInputSchema, partKey, type BuildPartInput, type BuildPartOutput, type PlannedFragment, type PlannedIndex } from './types.js';

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
    valueType?: string;
    firstFrom?: string;
  }
  const jobs: Job[] = plan.indexes
    .filter((ix) => ix.groups.includes(group.groupId))
    .map((index) => ({ index, wanted: new Set(index.fragmentIds), valueType: index.valueType, firstFrom: index.valueType ? `index ${index.name}` : undefined }));

  // An Arrow file registered by its footer is read column by column: only what the indexes
  // need. Anything else (or a file that cannot be projected) is read whole.
  const load = async (planned: PlannedFragment, users: Job[]) =>
    (planned.fingerprint.startsWith('arrowfile:')
      ? await loadArrowFileColumns(store, planned.path, planned.size, users.map((j) => j.index.column))
      : undefined) ?? (await loadFragment(store, planned.path));
  const todo = [...group.fragments]
    .sort((a, b) => a.id - b.id)
    .map((planned) => ({ planned, users: jobs.filter((j) => j.wanted.has(planned.id)) }))
    .filter((t) => t.users.length > 0);

  let rows = 0;
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
    const fragment = await (ahead ?? load(planned, users));
    ahead = start(k + 1);
    if (fragment.fingerprint !== planned.fingerprint || fragment.rows !== planned.rows) {
      throw new FragmentChangedError(`fragment ${where} (id ${planned.id}) changed after it was registered; fragments are immutable`);
    }
    rows += fragment.rows;
    for (const job of users) {
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
    }
  }

  let parts = 0;
  for (const job of jobs) {
    if (!job.trainer) continue;
    const ids = group.fragments.filter((f) => job.wanted.has(f.id)).map((f) => f.id);
    const key = partKey(plan.buildId, job.index.name, group.groupId, job.index.type);
    const metadata = new Map<string, string>([
      [META.indexType, job.index.type],
      [META.column, job.index.column],
      [META.fragmentIds, ids.join(',')],
    ]);
    if (job.index.params.rowsPerZone !== undefined) metadata.set(META.rowsPerZone, String(job.index.params.rowsPerZone));
    try {
      await job.trainer.writePart(store, key, metadata, { beforePublish: (f) => recordPartChecksum(store, key, f) });
    } catch (err) {
      // A retried worker finds its own part: accept it only if it covers the same fragments.
      if (!(err instanceof AlreadyExistsError)) throw err;
      const existing = await IpcFileReader.open(store, key);
      if (existing.metadata.get(META.fragmentIds) !== ids.join(',')) throw err;
    }
    parts++;
  }
  return { groupId: group.groupId, rows, parts };
}
