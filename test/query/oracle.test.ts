/**
 * The core correctness property: over random multi-fragment datasets (nulls, NaN payloads,
 * ±0.0, ±Infinity, empty fragments, astral unicode, 64-bit extremes, 12+ fragments, several
 * groups so numeric part order matters), built in two increments:
 * - bitmap answers equal the brute-force oracle exactly;
 * - zone-map answers contain every oracle row;
 * - combined answers (both kinds, AND/OR/NOT) are exact-and-equal or a superset;
 * - `scan()` returns exactly the oracle's rows (offsets, and every column's values bit for
 *   bit) whether it follows a bitmap, a zone map or no index at all.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query } from '../../lib/query/evaluate.js';
import { scan } from '../../lib/scan/scan.js';
import { QueryCache } from '../../lib/query/cache.js';
import { printPredicate } from '../../lib/query/print.js';
import { build } from '../../lib/workflow/build.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import type { IndexRequest } from '../../lib/workflow/types.js';
import type { IndexType } from '../../lib/indexes/kind.js';
import { S3Store } from '../../lib/store/s3.js';
import { ARROW_FORMATS, datasetArb, writeDataset, type FragmentFormat, type FragmentSink, type GeneratedDataset } from '../support/dataset.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { cells, expectedCell } from '../support/cells.js';
import { evaluateOracle } from '../support/oracle.js';
import { predicateArb } from '../support/predicates.js';
import { expandRanges, tempDir } from '../support/tmp.js';

/** ORACLE_DEBUG=1 logs each dataset and predicate, and stops at the first failure unshrunk. */
const DEBUG = !!process.env.ORACLE_DEBUG;
const debug = (...args: unknown[]) => DEBUG && console.log(...args);

function answerByFragment(ds: GeneratedDataset, r: Awaited<ReturnType<typeof query>>): number[][] {
  const out: number[][] = ds.fragments.map(() => []);
  for (const f of r.fragments) out[f.id] = expandRanges(f.ranges);
  return out;
}

/**
 * What `scan()` returned, per fragment of `ds`: row offsets and each column's cells, in the
 * order returned. Every row must come from a fragment of `ds` and name it by id and path.
 */
async function scannedRows(ds: GeneratedDataset, root: string, text: string, use: IndexType[]) {
  const byPath = new Map(ds.fragments.map((f, i) => [`data/${f.name}`, i]));
  const offsets: number[][] = ds.fragments.map(() => []);
  const values: Record<string, (string | null)[]>[] = ds.fragments.map(() => Object.fromEntries(ds.columns.map((c) => [c.name, []])));
  // Through the bitmap and with no index, every file that can be read in ranges is (Arrow
  // files batch by batch, Parquet by row group); through the zone map, small files are read whole.
  const tuning = use[0] === 'zonemap' ? {} : { wholeFileBytes: 0 };
  for await (const chunk of scan(root, text, { use, tuning }).chunks()) {
    const f = byPath.get(chunk.fragment.path);
    expect(f, `${text}: rows from ${chunk.fragment.path}`).toBeDefined();
    expect(chunk.fragment.id, `${text}: id of ${chunk.fragment.path}`).toBe(f);
    expect(chunk.batch.schema.fields.map((x) => x.name)).toEqual(ds.columns.map((c) => c.name));
    expect(chunk.offsets.length).toBe(chunk.batch.numRows);
    offsets[f!]!.push(...chunk.offsets);
    for (const c of ds.columns) values[f!]![c.name]!.push(...cells(chunk.batch.getChild(c.name)!.data[0]!));
  }
  return { offsets, values };
}

/** Where a run's dataset lives: a local directory or a prefix on the S3 test server. */
interface Target {
  dataset: string;
  sink: string | FragmentSink;
}

async function buildIncrementally(target: Target, ds: GeneratedDataset, rowsPerZone: number, groupRows: number, split: number): Promise<string> {
  const root = target.dataset;
  const indexes: IndexRequest[] = ds.columns.flatMap((c) => [
    { column: c.name, type: 'bitmap' as const },
    { column: c.name, type: 'zonemap' as const, rowsPerZone },
  ]);
  // First increment: the first `split` fragments; fragment ids follow path order.
  const first = { ...ds, fragments: ds.fragments.slice(0, split) };
  await writeDataset(target.sink, first);
  await build({ dataset: root, indexes, groupRows, tuning: { batchKeys: 3, batchBytes: 256 } });
  await writeDataset(target.sink, { ...ds, fragments: ds.fragments.slice(split) });
  await build({ dataset: root, groupRows, tuning: { batchKeys: 3, batchBytes: 256 } });
  return root;
}

/**
 * Many small appends: fragments land a few at a time, each batch built on its own (the
 * workflow's compaction runs after each commit), with a compaction run by hand between some
 * of them, policy-driven or full.
 */
async function buildByAppends(target: Target, ds: GeneratedDataset, rowsPerZone: number, batches: number[], compactions: ('none' | 'policy' | 'full')[]): Promise<string> {
  const root = target.dataset;
  const indexes: IndexRequest[] = ds.columns.flatMap((c) => [
    { column: c.name, type: 'bitmap' as const },
    { column: c.name, type: 'zonemap' as const, rowsPerZone },
  ]);
  let from = 0;
  for (let i = 0; from < ds.fragments.length; i++) {
    const to = Math.min(ds.fragments.length, from + (batches[i % batches.length] ?? 1));
    await writeDataset(target.sink, { ...ds, fragments: ds.fragments.slice(from, to) });
    await build({ dataset: root, indexes: from === 0 ? indexes : undefined, tuning: { batchKeys: 3, batchBytes: 256 } });
    const c = compactions[i % compactions.length];
    if (c !== 'none') await compactDataset(root, { full: c === 'full', tuning: { batchKeys: 3, batchBytes: 256 } });
    from = to;
  }
  return root;
}

let server: S3TestServer | undefined;
let runs = 0;
const savedEnv = { ...process.env };
afterAll(async () => {
  process.env = savedEnv;
  await server?.stop();
});

/**
 * The same property on each store and fragment format. The S3 variant runs fewer cases: each
 * one costs a few hundred requests to s3rver.
 */
const RUNS = Number(process.env.ORACLE_RUNS ?? 25);
const variants: { name: string; formats: readonly FragmentFormat[]; runs: number; s3: boolean; appends?: boolean }[] = [
  { name: 'local directory, Arrow fragments', formats: ARROW_FORMATS, runs: RUNS, s3: false },
  { name: 'local directory, Parquet fragments', formats: ['parquet'], runs: Math.ceil(RUNS / 3), s3: false },
  { name: 'S3 (s3rver), mixed Arrow and Parquet fragments', formats: [...ARROW_FORMATS, 'parquet'], runs: Math.ceil(RUNS / 3), s3: true },
  { name: 'local directory, many small appends with compactions', formats: [...ARROW_FORMATS, 'parquet'], runs: Math.ceil(RUNS / 3), s3: false, appends: true },
  { name: 'S3 (s3rver), many small appends with compactions', formats: [...ARROW_FORMATS, 'parquet'], runs: Math.ceil(RUNS / 6), s3: true, appends: true },
];

describe.each(variants)('index answers against a brute-force oracle: $name', ({ formats, runs: numRuns, s3, appends }) => {
  beforeAll(async () => {
    if (!s3 || server) return;
    server = await startS3Server({ buckets: ['oracle'] });
    // build() and query() take S3 settings from the environment, as the CLI does.
    Object.assign(process.env, server.env);
  });

  const target = (): Target => {
    if (!s3) {
      const dir = tempDir('ssi-oracle-');
      return { dataset: dir, sink: dir };
    }
    const prefix = `run-${runs++}`;
    return { dataset: `s3://oracle/${prefix}`, sink: new S3Store({ bucket: 'oracle', prefix }) };
  };

  it('bitmap answers are exact, zone-map answers are supersets, combined answers are correct', async () => {
    const cache = new QueryCache({ maxBytes: 64 * 1024 });
    await fc.assert(
      fc.asyncProperty(
        datasetArb({ minFragments: 12, maxFragments: 14, maxRows: 40, formats }).chain((ds) =>
          fc.record({
            ds: fc.constant(ds),
            predicates: fc.array(predicateArb(ds), { minLength: 6, maxLength: 6 }),
            rowsPerZone: fc.integer({ min: 1, max: 9 }),
            groupRows: fc.integer({ min: 1, max: 60 }),
            split: fc.integer({ min: 1, max: ds.fragments.length }),
            batches: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 6 }),
            compactions: fc.array(fc.constantFrom('none' as const, 'policy' as const, 'full' as const), { minLength: 1, maxLength: 6 }),
          }),
        ),
        async ({ ds, predicates, rowsPerZone, groupRows, split, batches, compactions }) => {
          const root = appends ? await buildByAppends(target(), ds, rowsPerZone, batches, compactions) : await buildIncrementally(target(), ds, rowsPerZone, groupRows, split);
          debug('built', ds.columns, ds.fragments.map((f) => Object.values(f.rows)[0]?.length));
          for (const p of predicates) {
            const text = printPredicate(p);
            debug('query', text);
            const expected = evaluateOracle(ds, p);

            const bitmap = await query(root, text, { use: ['bitmap'] });
            expect(bitmap.unindexedFragments).toEqual([]);
            expect(bitmap.exact, text).toBe(true);
            expect(answerByFragment(ds, bitmap), text).toEqual(expected);
            // Through a cache shared by every dataset of the run (small, so it also evicts):
            // the first query fills it, the second is answered from it.
            for (let k = 0; k < 2; k++) {
              const cached = await query(root, text, { use: ['bitmap'], cache });
              expect(answerByFragment(ds, cached), `${text} (cached, pass ${k + 1})`).toEqual(expected);
            }

            const zones = await query(root, text, { use: ['zonemap'] });
            const got = answerByFragment(ds, zones);
            expected.forEach((rows, f) => {
              const kept = new Set(got[f]);
              for (const r of rows) expect(kept.has(r), `${text}: zone map dropped fragment ${f} row ${r}`).toBe(true);
            });

            const both = await query(root, text);
            const combined = answerByFragment(ds, both);
            if (both.exact) expect(combined, text).toEqual(expected);
            expected.forEach((rows, f) => {
              const kept = new Set(combined[f]);
              for (const r of rows) expect(kept.has(r), `${text}: combined answer dropped fragment ${f} row ${r}`).toBe(true);
            });

            // The rows themselves: exactly the oracle's, whatever narrowed the candidates.
            const wantValues = ds.fragments.map((f, i) => Object.fromEntries(ds.columns.map((c) => [c.name, expected[i]!.map((r) => expectedCell(c.type, f.rows[c.name]![r]))])));
            for (const use of [['bitmap'], ['zonemap'], []] as IndexType[][]) {
              const got = await scannedRows(ds, root, text, use);
              const via = use[0] ?? 'no index';
              expect(got.offsets, `${text}: scan via ${via}`).toEqual(expected);
              expect(got.values, `${text}: scanned values via ${via}`).toEqual(wantValues);
            }
          }
        },
      ),
      { numRuns, endOnFailure: DEBUG },
    );
  });
});
