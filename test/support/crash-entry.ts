/**
 * Runs one build in a child process and kills it with a real SIGKILL at a chosen point, for
 * crash tests. Usage: `node --import tsx crash-entry.ts <dataset> <point> [column:type ...]`
 *
 * Points:
 * - `after-parts:<n>`: after n build-part steps finished (their part files are written);
 * - `before-commit`: after the merge wrote the new index files, before the manifest commit;
 * - `before-cleanup`: after the commit, when the build's part files are about to be deleted.
 */
import { DeferredS3Store } from '../../lib/store/deferred-s3.js';
import { LocalStore } from '../../lib/store/local.js';
import { build } from '../../lib/workflow/build.js';
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
