/**
 * The local engine: runs the state machine definition that Step Functions runs
 * (`state-machine.asl.json`) on this machine with aws-local-stepfunctions, mapping each Task
 * state to the same step functions the Lambdas call.
 *
 * The one difference from AWS is made explicit in `localizeDefinition`: the engine does not
 * know `ItemReader` or `ResultWriter`, so each Map that reads its items from S3 gets a Task in
 * front of it that reads the item list from the dataset store, iterates that list instead,
 * and keeps its (tiny) results in memory rather than writing them to S3.
 */
import os from 'node:os';
import { StateMachine } from 'aws-local-stepfunctions';
import { openDataset } from '../dataset.js';
import { ScalarIndexError } from '../errors.js';
import definitionJson from './state-machine.asl.json' with { type: 'json' };
import { throughputGcFor } from '../runtime.js';
import { PartWorkerPool } from './part-workers.js';
import { readPlan } from './plan.js';
import { buildPartStep, compactStep, mergeAndCommitStep, planStep, type CompactStepOutput, type PlanStepOutput, type StepSettings, type WorkflowInput } from './steps.js';
import type { BuildPartOutput, CommitOutput } from './types.js';

// aws-local-stepfunctions 3 uses Promise.withResolvers (Node 22+); Node 20 lacks it.
const P = Promise as unknown as { withResolvers?: () => unknown };
P.withResolvers ??= function withResolvers<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

type Json = Record<string, unknown>;
type States = Record<string, Json>;

/** The Lambda ARN placeholders in the shared definition, and the names they get locally. */
export const FUNCTION_SUBSTITUTIONS = {
  PlanFunctionArn: 'plan',
  BuildPartFunctionArn: 'build-part',
  MergeFunctionArn: 'merge',
} as const;

/** Function ARNs for a local run (the handlers are keyed by state name; ARNs only need to be valid). */
export function localFunctionArns(): Record<string, string> {
  return Object.fromEntries(Object.entries(FUNCTION_SUBSTITUTIONS).map(([k, v]) => [k, `arn:aws:lambda:us-east-1:000000000000:function:${v}`]));
}

/** Suffix of the Task state inserted in front of a Map that has an ItemReader. */
export const READ_ITEMS_SUFFIX = 'ReadItems';
/** Where that Task puts the items in the state's data. */
const ITEMS_PATH = '$.localItems';

/** The shared definition, as Step Functions gets it (before substitution). */
export function sharedDefinition(): Json {
  return structuredClone(definitionJson) as Json;
}

/** Replace `${Name}` placeholders, as CDK's definitionSubstitutions do. */
export function substitute(definition: Json, values: Record<string, string>): Json {
  const text = JSON.stringify(definition).replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name: string) => values[name] ?? whole);
  return JSON.parse(text) as Json;
}

/**
 * Rewrite a definition for aws-local-stepfunctions: every Map loses its `ResultWriter`; one
 * with an `ItemReader` loses it, iterates `$.localItems` instead, and is preceded by a
 * `<Map>ReadItems` Task (same Catch) that loads the list. Transitions into the Map are
 * redirected to that Task. Nothing else changes.
 */
export function localizeDefinition(definition: Json): Json {
  const def = structuredClone(definition);
  rewriteStates(def as { StartAt: string; States: States });
  return def;
}

function rewriteStates(machine: { StartAt: string; States: States }): void {
  for (const [name, state] of Object.entries(machine.States)) {
    const processor = (state.ItemProcessor ?? state.Iterator) as { StartAt: string; States: States } | undefined;
    if (processor) rewriteStates(processor);
    if (state.Type !== 'Map') continue;
    delete state.ResultWriter;
    if (!state.ItemReader) continue;
    const readerName = `${name}${READ_ITEMS_SUFFIX}`;
    delete state.ItemReader;
    state.ItemsPath = ITEMS_PATH;
    const reader: Json = {
      Type: 'Task',
      Resource: `arn:aws:lambda:us-east-1:000000000000:function:${readerName}`,
      ResultPath: ITEMS_PATH,
      Next: name,
    };
    if (state.Catch) reader.Catch = structuredClone(state.Catch);
    redirect(machine, name, readerName);
    machine.States[readerName] = reader;
  }
}

function redirect(machine: { StartAt: string; States: States }, from: string, to: string): void {
  if (machine.StartAt === from) machine.StartAt = to;
  for (const state of Object.values(machine.States)) {
    if (state.Next === from) state.Next = to;
    if (state.Default === from) state.Default = to;
    for (const c of (state.Choices as Json[] | undefined) ?? []) if (c.Next === from) c.Next = to;
    for (const c of (state.Catch as Json[] | undefined) ?? []) if (c.Next === from) c.Next = to;
  }
}

export interface LocalRunOptions extends StepSettings {
  /**
   * The definition to run, with function ARNs already substituted (e.g. the one extracted
   * from a synthesized CDK template). Default: the shared file.
   */
  definition?: Json;
  /** Parts built at once (default: one per core). Above 1, parts run in worker threads. */
  concurrency?: number;
  /**
   * Below this much work (rows read per index: each index counts the rows of the groups it
   * needs), parts are built in this thread only, whatever `concurrency` says. Default
   * `WORKER_MIN_WORK_ROWS`; tests lower it to exercise the worker threads on small data.
   */
  workerMinWorkRows?: number;
  /** Replace a step's implementation (fault injection in tests). */
  overrideStep?: Partial<Record<'Plan' | 'BuildPart' | 'MergeAndCommit' | 'CompactIndex', (input: unknown) => Promise<unknown>>>;
  /** False: skip the compactions the policy asks for after the commit (`scalar-index compact` runs them later). Default true. */
  compact?: boolean;
  /** Notified after each state, for progress output. */
  onStep?: (event: { step: 'Plan'; output: PlanStepOutput } | { step: 'BuildPart'; output: BuildPartOutput } | { step: 'CompactIndex'; output: CompactStepOutput }) => void;
}

export type LocalRunResult =
  | { kind: 'committed'; plan: PlanStepOutput; commit: CommitOutput; compacted: CompactStepOutput[]; compactionError?: { Error: string; Cause: string } }
  | { kind: 'nothing-to-do'; plan: PlanStepOutput };

/**
 * Below this much work (rows × indexes), parts are built in this thread: a worker costs more
 * than it brings. It takes about 0.3 s to load the library (apache-arrow, zod, roaring) and
 * runs its first part before V8 has optimized it, and on a machine with few cores its loading
 * slows this thread down. Measured on 2 cores (bench data, one bitmap, median of 2):
 * `cat_i32` 10M rows 0.56 s in this thread vs 0.82 s with a worker, 50M 2.30 s vs 2.11 s;
 * `cat_str` 10M 1.10 s vs 1.17 s, 50M 4.67 s vs 3.53 s.
 */
export const WORKER_MIN_WORK_ROWS = 24_000_000;

/**
 * Run one build through the shared state machine definition, locally.
 *
 * @example
 * const r = await runLocalWorkflow({ dataset: './sample-data', indexes: [{ column: 'region', type: 'bitmap' }] });
 * if (r.kind === 'committed') console.log(`version ${r.commit.version}`);
 */
export async function runLocalWorkflow(input: WorkflowInput, options: LocalRunOptions = {}): Promise<LocalRunResult> {
  const definition = localizeDefinition(options.definition ?? substitute(sharedDefinition(), localFunctionArns()));
  // Validating with ajv costs about 0.4 s per process. The shared file is validated by a test
  // (test/workflow/local-engine.test.ts); a definition handed in is validated here.
  const machine = new StateMachine(definition as never, { validationOptions: options.definition ? { checkPaths: true, checkArn: true } : { noValidate: true } });

  const concurrency = Math.max(1, options.concurrency ?? os.availableParallelism());
  let planned: PlanStepOutput | undefined;
  let pool: PartWorkerPool | undefined;
  let releaseGc = () => {};
  // aws-local-stepfunctions reports failures by state error name only; keep the thrown error
  // so callers get the named class and its exact message.
  let firstError: unknown;
  const guard =
    <T>(fn: (input: unknown) => Promise<T>) =>
    async (input: unknown): Promise<T> => {
      try {
        return await fn(input);
      } catch (err) {
        firstError ??= err;
        throw err;
      }
    };

  const steps = {
    // The Map runs at most `concurrency` parts at once locally, whatever a deployment uses.
    Plan: options.overrideStep?.Plan ?? ((i: unknown) => planStep(i, { ...options, maxConcurrency: concurrency })),
    BuildPart: options.overrideStep?.BuildPart ?? ((i: unknown) => (pool ? pool.run(i) : buildPartStep(i, options))),
    MergeAndCommit: options.overrideStep?.MergeAndCommit ?? ((i: unknown) => mergeAndCommitStep(i, options)),
    CompactIndex:
      options.overrideStep?.CompactIndex ??
      ((i: unknown) => (options.compact === false ? Promise.resolve({ index: (i as { task: { index: string | null } }).task.index, committed: 0, gaveUp: 0, bytesWritten: 0, version: 0 }) : compactStep(i, options))),
  };
  const handlers = {
    Plan: guard(async (i) => {
      planned = (await steps.Plan(i)) as PlanStepOutput;
      options.onStep?.({ step: 'Plan', output: planned });
      return planned;
    }),
    [`BuildParts${READ_ITEMS_SUFFIX}`]: guard(async (i) => {
      const { dataset, itemsKey } = i as PlanStepOutput;
      const items = JSON.parse(new TextDecoder().decode(await openDataset(dataset).store.read(itemsKey))) as unknown[];
      const work = planned?.hasWork ? await workRows(planned) : 0;
      // A large build runs with V8's incremental marking off, if this process opted in. (A
      // retried state releases its earlier hold first, so the count cannot leak.)
      releaseGc();
      releaseGc = throughputGcFor(work);
      if (concurrency > 1 && items.length > 1 && work >= (options.workerMinWorkRows ?? WORKER_MIN_WORK_ROWS) && !options.overrideStep?.BuildPart) {
        // This thread builds parts too: one worker fewer than cores.
        pool = new PartWorkerPool(Math.min(concurrency, items.length) - 1, options.tuning, (input) => buildPartStep(input, options));
      }
      return items;
    }),
    BuildPart: guard(async (i) => {
      const out = (await steps.BuildPart(i)) as BuildPartOutput;
      options.onStep?.({ step: 'BuildPart', output: out });
      return out;
    }),
    MergeAndCommit: guard(steps.MergeAndCommit),
    // A failed compaction does not fail the build (the state machine catches it): it is
    // reported in the result, not thrown.
    CompactIndex: async (i: unknown) => {
      const out = (await steps.CompactIndex(i)) as CompactStepOutput;
      options.onStep?.({ step: 'CompactIndex', output: out });
      return out;
    },
  };

  const execution = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      // Retries back off for seconds on AWS; locally, retry a transient store error quickly.
      retryIntervalOverrides: { Plan: 100, BuildPart: 100, MergeAndCommit: 100, CompactIndex: 100 },
    },
  });
  try {
    const output = (await execution.result) as unknown as { commit: CommitOutput; compacted?: CompactStepOutput[]; compactionError?: { Error: string; Cause: string } };
    if (!planned) throw new ScalarIndexError('the workflow finished without running its plan step');
    if (!planned.hasWork) return { kind: 'nothing-to-do', plan: planned };
    return {
      kind: 'committed',
      plan: planned,
      commit: output.commit,
      compacted: output.compacted ?? [],
      ...(output.compactionError && { compactionError: output.compactionError }),
    };
  } catch (err) {
    throw firstError ?? err;
  } finally {
    releaseGc();
    await pool?.close();
  }
}

/** Rows the parts will read, counted once per index that needs them. */
async function workRows(plan: PlanStepOutput): Promise<number> {
  const { store } = openDataset(plan.dataset);
  const full = await readPlan(store, plan.buildId);
  const rows = new Map(full.groups.map((g) => [g.groupId, g.rows]));
  return full.indexes.reduce((n, ix) => n + ix.groups.reduce((m, g) => m + (rows.get(g) ?? 0), 0), 0);
}
