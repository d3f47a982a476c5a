/**
 * What the workflow's task steps accept. The Lambda handlers run them with `s3Only`: a local
 * path in an execution input would name the function's own sandbox disk, which nothing else
 * sees, so it is refused by name before anything runs.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../lib/errors.js';
import { listAll } from '../../lib/store/store.js';
import { LocalStore } from '../../lib/store/local.js';
import { buildPartStep, mergeAndCommitStep, planStep } from '../../lib/workflow/steps.js';
import { build } from '../../lib/workflow/build.js';
import { query } from '../../lib/query/evaluate.js';
import { writeFragment } from '../support/dataset.js';
import { handler as buildPart } from '../../functions/build-part.js';
import { handler as merge } from '../../functions/merge.js';
import { handler as plan } from '../../functions/plan.js';
import { captureOutput, fakeContext } from '../functions/lambda.js';
import { expandRanges, tempDir } from '../support/tmp.js';

describe('step inputs', () => {
  it.each([
    ['plan', () => planStep({ dataset: '/tmp/somewhere' }, { s3Only: true })],
    ['build-part', () => buildPartStep({ dataset: 'file:///tmp/x', buildId: 'b1', groupId: 0 }, { s3Only: true })],
    ['merge', () => mergeAndCommitStep({ dataset: 'relative/dir', buildId: 'b1' }, { s3Only: true })],
  ])('the %s step refuses a dataset that is not an s3:// URI when run as a Lambda', async (step, run) => {
    await expect(run()).rejects.toBeInstanceOf(UsageError);
    await expect(run()).rejects.toThrow(new RegExp(`invalid ${step === 'plan' ? 'workflow' : step} input: dataset: ".*" is not an s3:// URI`));
  });

  it('each Lambda handler refuses such a dataset by name', async () => {
    const quiet = captureOutput();
    try {
      const events: [string, (e: unknown, c: never) => Promise<unknown>, unknown][] = [
        ['workflow', plan as never, { dataset: '/tmp/somewhere' }],
        ['build-part', buildPart as never, { dataset: '/tmp/somewhere', buildId: 'b1', groupId: 0 }],
        ['merge', merge as never, { dataset: '/tmp/somewhere', buildId: 'b1' }],
      ];
      for (const [step, handler, event] of events) {
        await expect(handler(event, fakeContext(step) as never), step).rejects.toThrow(new RegExp(`invalid ${step} input: dataset: "/tmp/somewhere" is not an s3:// URI`));
      }
    } finally {
      quiet.stop();
    }
  });
});

describe('index names that are not plain path segments', () => {
  it('a column named with a slash, dots or a newline keeps each index in one directory under _index/indexes/, and answers', async () => {
    const root = tempDir('ssi-odd-column-');
    const columns = ['a/b', '..', 'x\ny'].map((name) => ({ name, type: 'int32' as const }));
    const rows = Object.fromEntries(columns.map((c, k) => [c.name, Array.from({ length: 10 }, (_, i) => (i + k) % 3)]));
    await writeFragment(path.join(root, 'data', 'f.arrow'), columns, rows, { batchRows: 4, format: 'file' });
    await build({ dataset: root, indexes: columns.map((c) => ({ column: c.name, type: 'bitmap' as const })) });
    const dirs = new Set((await listAll(new LocalStore(root), '_index/indexes/')).map((o) => o.key.split('/')[2]));
    expect(dirs.size).toBe(3);
    for (const d of dirs) expect(d).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/);
    for (const c of columns) {
      const r = await query(root, `"${c.name.replace(/"/g, '""')}" = 1`);
      expect(r.indexesUsed).toEqual([`${c.name}_bitmap`]);
      expect(expandRanges(r.fragments[0]!.ranges)).toEqual(rows[c.name]!.flatMap((v, i) => (v === 1 ? [i] : [])));
    }
  });
});
