/**
 * The local engine runs the shared ASL definition: the only rewrite is ItemReader → a local
 * ReadItems task; Retry and Catch behave as written; a failing part leaves the previous
 * version answering and a rerun converges; large builds use worker threads.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../lib/errors.js';
import { listVersions } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { S3Store } from '../../lib/store/s3.js';
import { listAll } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import { localizeDefinition, READ_ITEMS_SUFFIX, runLocalWorkflow, sharedDefinition } from '../../lib/workflow/local-engine.js';
import { buildPartStep, planStep } from '../../lib/workflow/steps.js';
import { writeSampleDataset } from '../../scripts/sample-data.js';
import { fragmentBytes, writeFragment, type ColumnSpec } from '../support/dataset.js';
import { useS3Server } from '../support/s3-env.js';
import { tempDir } from '../support/tmp.js';

type States = Record<string, Record<string, unknown>>;

const COLS: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 's', type: 'utf8' },
];
const rowsOf = (f: number, n = 30) => ({ k: Array.from({ length: n }, (_, i) => (i * 7 + f) % 11), s: Array.from({ length: n }, (_, i) => (i % 5 === 0 ? null : `v${(i + f) % 4}`)) });

async function dataset(fragments: number, start = 0, root = tempDir('ssi-engine-')): Promise<string> {
  for (let f = start; f < start + fragments; f++) {
    await writeFragment(path.join(root, 'data', `f${String(f).padStart(3, '0')}.arrow`), COLS, rowsOf(f), { batchRows: 8, format: 'file' });
  }
  return root;
}

describe('localizeDefinition', () => {
  it('gives aws-local-stepfunctions a definition that passes its full validation (the engine skips it at run time)', async () => {
    const { StateMachine } = await import('aws-local-stepfunctions');
    const { substitute, localFunctionArns } = await import('../../lib/workflow/local-engine.js');
    const def = localizeDefinition(substitute(sharedDefinition(), localFunctionArns()));
    expect(() => new StateMachine(def as never, { validationOptions: { checkPaths: true, checkArn: true } })).not.toThrow();
    const broken = structuredClone(def) as { States: States };
    broken.States.HasWork!.Default = 'NoSuchState';
    expect(() => new StateMachine(broken as never, { validationOptions: { checkPaths: true, checkArn: true } })).toThrow();
  });

  it('changes only the Distributed Map: ItemReader becomes a ReadItems task in front of it', () => {
    const shared = sharedDefinition() as { StartAt: string; States: States };
    const local = localizeDefinition(shared) as { StartAt: string; States: States };
    const reader = local.States[`BuildParts${READ_ITEMS_SUFFIX}`]!;
    expect(reader).toMatchObject({ Type: 'Task', Next: 'BuildParts', ResultPath: '$.localItems' });
    expect(reader.Catch).toEqual(shared.States.BuildParts!.Catch);
    expect(local.States.BuildParts!.ItemReader).toBeUndefined();
    expect(local.States.BuildParts!.ItemsPath).toBe('$.localItems');
    // Everything else is identical once the inserted task and the two Map fields are undone.
    const undone = structuredClone(local);
    delete undone.States[`BuildParts${READ_ITEMS_SUFFIX}`];
    delete undone.States.BuildParts!.ItemsPath;
    undone.States.BuildParts!.ItemReader = shared.States.BuildParts!.ItemReader;
    undone.States.BuildParts!.ResultWriter = shared.States.BuildParts!.ResultWriter;
    (undone.States.HasWork!.Choices as { Next: string }[])[0]!.Next = 'BuildParts';
    expect(undone).toEqual(shared);
  });
});

describe('runLocalWorkflow', () => {
  it('commits a new version, then finds nothing to do', async () => {
    const root = await dataset(3);
    const first = await runLocalWorkflow({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }], groupRows: 40 });
    expect(first.kind).toBe('committed');
    expect(first.plan.groupCount).toBe(3);
    const again = await runLocalWorkflow({ dataset: root });
    expect(again.kind).toBe('nothing-to-do');
    expect(await listVersions(new LocalStore(root))).toEqual([1, 2]);
  });

  it('a part that throws fails the build with its named error; the previous version still answers; a rerun converges', async () => {
    const root = await dataset(2);
    await build({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'zonemap', rowsPerZone: 4 }] });
    const before = await query(root, 'k = 3');
    await dataset(3, 2, root);
    let calls = 0;
    const failing = build({
      dataset: root,
      groupRows: 30,
      overrideStep: {
        BuildPart: async (input) => {
          if (++calls === 2) throw Object.assign(new Error('injected part failure'), { name: 'InjectedFault' });
          return buildPartStep(input);
        },
      },
    });
    await expect(failing).rejects.toThrow('injected part failure');
    // Registration of the new fragments may be committed by the plan step; the indexes are not.
    const afterFailure = await query(root, 'k = 3');
    expect(afterFailure.fragments).toEqual(before.fragments);
    expect(afterFailure.unindexedFragments.map((f) => f.path)).toEqual(['data/f002.arrow', 'data/f003.arrow', 'data/f004.arrow']);

    const rerun = await build({ dataset: root });
    expect(rerun.indexes.every((i) => i.fragmentsCovered === 5)).toBe(true);
    const fresh = await dataset(5);
    await build({ dataset: fresh, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'zonemap', rowsPerZone: 4 }] });
    for (const where of ['k = 3', "s = 'v1'", 's IS NULL']) {
      const a = await query(root, where);
      const b = await query(fresh, where);
      expect({ rows: a.rows, fragments: a.fragments, unindexed: a.unindexedFragments }, where).toEqual({ rows: b.rows, fragments: b.fragments, unindexed: b.unindexedFragments });
    }
  });

  it('retries a transient StoreError in a part, as the definition says', async () => {
    const root = await dataset(2);
    let failures = 0;
    const r = await build({
      dataset: root,
      indexes: [{ column: 'k', type: 'bitmap' }],
      overrideStep: {
        BuildPart: async (input) => {
          if (failures++ < 2) throw new StoreError('S3 error while reading s3://b/p/data/x.arrow: SlowDown (HTTP 503)');
          return buildPartStep(input);
        },
      },
    });
    expect(failures).toBe(3);
    expect(r.indexes[0]!.fragmentsCovered).toBe(2);
  });

  it('a non-retryable error is not retried', async () => {
    const root = await dataset(1);
    let calls = 0;
    await expect(
      build({
        dataset: root,
        indexes: [{ column: 'k', type: 'bitmap' }],
        overrideStep: {
          BuildPart: async () => {
            calls++;
            throw Object.assign(new Error('corrupt'), { name: 'FragmentReadError' });
          },
        },
      }),
    ).rejects.toThrow('corrupt');
    expect(calls).toBe(1);
  });

  // How often a part that keeps failing with each error is tried in all, per the definition.
  it.each([
    ['StorePermanentError', 1],
    ['Sandbox.Timedout', 2],
    ['Runtime.ExitError', 2],
    ['StoreError', 7],
    ['Lambda.ClientExecutionTimeoutException', 7],
    ['Lambda.TooManyRequestsException', 13],
  ])('a part failing with %s is tried %i times in all before the build fails', async (name, tries) => {
    const root = await dataset(1);
    let calls = 0;
    const err = await build({
      dataset: root,
      indexes: [{ column: 'k', type: 'bitmap' }],
      overrideStep: {
        BuildPart: async () => {
          calls++;
          throw Object.assign(new Error(`injected ${name}`), { name });
        },
      },
    }).catch((e: unknown) => e);
    expect((err as Error).name).toBe(name);
    expect(calls).toBe(tries);
  });

  it('retries throttling of the plan and merge functions longer than other transient errors', () => {
    const def = sharedDefinition() as { States: States };
    const retriers = (state: Record<string, unknown>) => state.Retry as { ErrorEquals: string[]; MaxAttempts: number; MaxDelaySeconds?: number }[];
    const states = [def.States.Plan!, def.States.MergeAndCommit!, (def.States.BuildParts!.ItemProcessor as { States: States }).States.BuildPart!];
    for (const state of states) {
      const throttling = retriers(state).filter((r) => r.ErrorEquals.includes('Lambda.TooManyRequestsException'));
      expect(throttling).toHaveLength(1);
      expect(throttling[0]!.ErrorEquals).toEqual(['Lambda.TooManyRequestsException']);
      const others = retriers(state).filter((r) => r.ErrorEquals.includes('StoreError'));
      expect(others).toHaveLength(1);
      expect(others[0]!.ErrorEquals).toContain('Lambda.ClientExecutionTimeoutException');
      expect(others[0]!.ErrorEquals).not.toContain('StorePermanentError');
      expect(throttling[0]!.MaxAttempts).toBeGreaterThan(others[0]!.MaxAttempts);
      expect(throttling[0]!.MaxDelaySeconds).toBeGreaterThan(others[0]!.MaxDelaySeconds!);
    }
  });

  it('builds parts on this thread and worker threads across cores and gets the same index as one thread', async () => {
    const a = tempDir('ssi-workers-');
    const b = tempDir('ssi-single-');
    writeSampleDataset(a, { fragments: 4, rowsPerFragment: 300_000 });
    writeSampleDataset(b, { fragments: 4, rowsPerFragment: 300_000 });
    const indexes = [{ column: 'category', type: 'bitmap' as const }, { column: 'price', type: 'zonemap' as const }];
    const threads = new Set<number>();
    const { threadId } = await import('node:worker_threads');
    const parallel = await runLocalWorkflow({ dataset: a, indexes, groupRows: 300_000 }, { concurrency: 2, workerMinWorkRows: 0, onStep: (e) => e.step === 'BuildPart' && threads.add(e.output.threadId ?? threadId) });
    await runLocalWorkflow({ dataset: b, indexes, groupRows: 300_000 }, { concurrency: 1 });
    expect(parallel.kind).toBe('committed');
    // This thread starts at once; which parts the worker gets depends on when it is ready
    // (PartWorkerPool's own test pins that both are used).
    expect(threads.size).toBeGreaterThanOrEqual(1);
    expect(threads.size).toBeLessThanOrEqual(2);
    for (const where of ['category = 7', 'price > 400']) {
      const x = await query(a, where);
      const y = await query(b, where);
      expect(x.rows, where).toBe(y.rows);
      expect(x.fragments, where).toEqual(y.fragments);
    }
  });
});

describe('PartWorkerPool', () => {
  it('runs parts on this thread while a worker starts, and on the worker once it is ready', async () => {
    const root = await dataset(4);
    const planned = await planStep({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }], groupRows: 30 });
    const inputs = JSON.parse(new TextDecoder().decode(await new LocalStore(root).read(planned.itemsKey))) as unknown[];
    expect(inputs.length).toBe(4);
    const { threadId } = await import('node:worker_threads');
    const { PartWorkerPool } = await import('../../lib/workflow/part-workers.js');
    let workerDone!: () => void;
    const workerFinished = new Promise<void>((resolve) => (workerDone = resolve));
    const inThread: unknown[] = [];
    // This thread's first part waits until the worker has finished one: both must be used.
    const pool = new PartWorkerPool(1, undefined, async (input) => {
      inThread.push(input);
      if (inThread.length === 1) await workerFinished;
      return { ...(await buildPartStep(input)), threadId };
    });
    try {
      const outputs = await Promise.all(
        inputs.map(async (input) => {
          const out = await pool.run(input);
          if (out.threadId !== threadId) workerDone();
          return out;
        }),
      );
      const threads = new Set(outputs.map((o) => o.threadId));
      expect(threads.has(threadId)).toBe(true);
      expect(threads.size).toBe(2);
      expect(inThread.length).toBeLessThan(4);
      expect(outputs.map((o) => o.groupId).sort()).toEqual((inputs as { groupId: number }[]).map((i) => i.groupId).sort());
    } finally {
      await pool.close();
    }
  });
});

describe('runLocalWorkflow on S3', () => {
  const s3 = useS3Server({ buckets: ['engine'] });

  it('reads the Map items from the items file in the bucket and cleans the build prefix after commit', async () => {
    const store = new S3Store({ bucket: 'engine', prefix: 'ds' });
    for (let f = 0; f < 3; f++) await store.put(`data/f${f}.parquet`, fragmentBytes(COLS, rowsOf(f), { batchRows: 8, format: 'parquet' }));
    s3.server.resetLog();
    const r = await runLocalWorkflow({ dataset: 's3://engine/ds', indexes: [{ column: 's', type: 'bitmap' }], groupRows: 30 });
    expect(r.kind).toBe('committed');
    expect(r.plan.items).toEqual({ bucket: 'engine', key: `ds/_index/builds/${r.plan.buildId}/items.json` });
    expect(s3.server.count({ method: 'GET', key: r.plan.items!.key })).toBe(1);
    expect(await listAll(store, '_index/builds/')).toEqual([]);
    expect((await query('s3://engine/ds', "s = 'v2'")).rows).toBeGreaterThan(0);
  });
});
