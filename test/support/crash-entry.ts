/**
 * Runs one build in a child process and kills it with a real SIGKILL at a chosen point, for
 * crash tests. Usage: `node --import tsx crash-entry.ts <dataset> <point> [column:type ...]`
 *
 * Points:
 * - `after-parts:<n>`: after n build-part steps finished (their part files are written);
 * - `before-commit`: after the merge wrote the new index files, before the manifest commit;
 * - `before-cleanup`: after the commit, when the build's part files are about to be deleted;
 * - `part-before-record`: a build part wrote its segment files, not yet the record naming them;
 * - `register-before-head`: registration wrote its fragment table chunk, not yet the manifest;
 * - `compact:mid-merge`: a full compaction (no build) finished its first output file, not the rest;
 * - `compact:before-commit`: a full compaction wrote a whole merged segment, before its commit.
 */
import { DeferredS3Store } from '../../lib/store/deferred-s3.js';
import { LocalStore } from '../../lib/store/local.js';
import type { ObjectWriter, WriteOptions } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import { merge } from '../../lib/workflow/merge.js';
import { buildPartStep, MergeStepInputSchema } from '../../lib/workflow/steps.js';
import type { IndexRequest } from '../../lib/workflow/types.js';

const [dataset, point, ...specs] = process.argv.slice(2);
if (!dataset || !point) throw new Error('usage: crash-entry.ts <dataset> <point> [column:type ...]');
const die = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
};

const indexes = specs.map((s) => {
  const [column, type] = s.split(':');
  return { column, type } as IndexRequest;
});

let parts = 0;
const [name, arg] = point.split(':');

/** Kill the process when a write of a key `matches` begins (`at: 'open'`) or completes (`at: 'close'`). */
function dieOnWrite(matches: (key: string) => boolean, at: 'open' | 'close'): void {
  for (const cls of [LocalStore, DeferredS3Store]) {
    const openWriter = cls.prototype.openWriter;
    cls.prototype.openWriter = async function (this: LocalStore, key: string, options?: WriteOptions) {
      if (!matches(key)) return openWriter.call(this, key, options);
      if (at === 'open') die();
      const w = await openWriter.call(this, key, options);
      return { ...w, write: (c: Uint8Array) => w.write(c), abort: () => w.abort(), close: async () => (await w.close(), die()) } as ObjectWriter;
    } as typeof openWriter;
    const put = cls.prototype.put;
    cls.prototype.put = async function (this: LocalStore, key: string, body: Uint8Array, options?: WriteOptions) {
      if (!matches(key)) return put.call(this, key, body, options);
      if (at === 'open') die();
      await put.call(this, key, body, options);
      return die();
    } as typeof put;
  }
}

if (name === 'compact') {
  if (arg === 'mid-merge') dieOnWrite((k) => /^_index\/indexes\/[^/]+\/c-/.test(k), 'close');
  else if (arg === 'before-commit') dieOnWrite((k) => k.startsWith('_index/versions/'), 'open');
  else throw new Error(`unknown compaction crash point ${arg}`);
  await compactDataset(dataset, { full: true });
  process.stdout.write('finished without crashing\n');
  process.exit(0);
}
if (name === 'part-before-record') dieOnWrite((k) => /^_index\/builds\/[^/]+\/parts\//.test(k), 'open');
if (name === 'register-before-head') {
  let chunkWritten = false;
  dieOnWrite((k) => {
    if (k.startsWith('_index/fragments/')) chunkWritten = true;
    return chunkWritten && k.startsWith('_index/versions/');
  }, 'open');
}
if (name === 'before-cleanup') {
  // commit() deletes the build prefix right after the manifest commit succeeded.
  for (const cls of [LocalStore, DeferredS3Store]) {
    const original = cls.prototype.deleteMany;
    cls.prototype.deleteMany = async function (this: LocalStore, keys: readonly string[]) {
      if (keys.some((k) => k.startsWith('_index/builds/'))) die();
      return original.call(this, keys);
    } as typeof original;
  }
}

await build({
  dataset,
  indexes: indexes.length ? indexes : undefined,
  groupRows: 30,
  concurrency: 1,
  overrideStep: {
    ...(name === 'after-parts' && {
      BuildPart: async (input: unknown) => {
        const out = await buildPartStep(input);
        if (++parts === Number(arg)) die();
        return out;
      },
    }),
    ...(name === 'before-commit' && {
      MergeAndCommit: async (input: unknown) => {
        await merge(MergeStepInputSchema.parse(input));
        return die();
      },
    }),
  },
});
process.stdout.write('finished without crashing\n');
