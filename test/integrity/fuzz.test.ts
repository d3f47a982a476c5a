/**
 * Damage fuzzing: flip random bytes in, or truncate at a random point, (a) fragments (Arrow
 * file, Arrow stream, Parquet), (b) part files between build-part and the merge, (c) final
 * index files (bitmap.arrow, bitmap_lookup.arrow, zonemap.arrow), (d) manifests. Every case
 * must end in a clear error (a named ScalarIndexError subclass whose message names the damaged
 * object) or a correct answer; never a hang, never another exception type, never a wrong
 * answer reported as exact.
 *
 * "Correct" for a damaged fragment is the oracle over what that fragment actually decodes to
 * (Arrow IPC has no checksums: a flipped value is just a different value, and the index must
 * reflect it exactly). For index files and manifests it is the oracle over the true data.
 *
 * FUZZ_RUNS=n sets the cases per category (default 50; fragments get three times as many, as
 * most damage there is refused early; about 25 s in all). FUZZ_SEED=s replays a run (each run
 * prints its seed); FUZZ_DEBUG=1 logs each case and stops at the first failure unshrunk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ColumnTypeError, FragmentReadError, MissingColumnError, ScalarIndexError } from '../../lib/errors.js';
import { IpcFileReader } from '../../lib/format/ipc.js';
import { loadLatestManifest, listVersions, versionKey } from '../../lib/manifest/manifest.js';
import { indexFiles } from '../support/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import type { Predicate } from '../../lib/query/ast.js';
import { printPredicate } from '../../lib/query/print.js';
import { LocalStore } from '../../lib/store/local.js';
import type { IndexRequest } from '../../lib/workflow/types.js';
import { datasetArb, describeDataset, fragmentBytes, type FragmentFormat, type GeneratedDataset } from '../support/dataset.js';
import { evaluateOracle } from '../support/oracle.js';
import { predicateArb } from '../support/predicates.js';
import { expandRanges, tempDir } from '../support/tmp.js';
import { decodedRows } from './decoded.js';
import { runBuild } from './steps.js';
import { Watchdog } from './watchdog.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 50);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const DEBUG = !!process.env.FUZZ_DEBUG;
/** Per case: fast-check fails a run past this (async hangs)... */
const CASE_TIMEOUT_MS = 30_000;
/** ...and the watchdog kills the process past this (synchronous hangs). */
const HANG_SECONDS = 90;
const TUNING = { batchKeys: 3, batchBytes: 512 };

let watchdog: Watchdog;
const savedTail = IpcFileReader.tailBytes;
beforeAll(() => {
  watchdog = new Watchdog();
  console.log(`damage fuzzing: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}`);
});
/** Per test: generous, since fast-check may also spend time shrinking a failure. */
const TEST_TIMEOUT_MS = Math.max(120_000, RUNS * 4_000);
afterAll(async () => {
  IpcFileReader.tailBytes = savedTail;
  await watchdog.stop();
});

// ---------------------------------------------------------------------------------------------
// Damage

type Damage = { kind: 'flip'; flips: { at: number; xor: number }[] } | { kind: 'truncate'; at: number };

/** A uniform position in [0, 1): fast-check's own bias would put nearly every flip at byte 0. */
const fraction = fc.noBias(fc.integer({ min: 0, max: 2 ** 31 - 1 })).map((n) => n / 2 ** 31);
const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .array(fc.record({ at: fraction, xor: fc.oneof(fc.constantFrom(1, 2, 4, 8, 16, 32, 64, 128), fc.integer({ min: 1, max: 255 })) }), { minLength: 1, maxLength: 3 })
      .map((flips): Damage => ({ kind: 'flip', flips })),
  },
  { weight: 1, arbitrary: fraction.map((at): Damage => ({ kind: 'truncate', at })) },
);

function damage(bytes: Uint8Array, d: Damage): Uint8Array {
  // Copies: a Buffer's slice() is a view, and the original must survive to be restored.
  if (d.kind === 'truncate') return new Uint8Array(bytes.subarray(0, Math.floor(d.at * bytes.byteLength)));
  const out = new Uint8Array(bytes);
  for (const f of d.flips) if (out.byteLength > 0) out[Math.floor(f.at * out.byteLength)]! ^= f.xor;
  return out;
}

function showDamage(d: Damage, size: number): string {
  return d.kind === 'truncate'
    ? `truncate ${size} → ${Math.floor(d.at * size)} bytes`
    : `flip ${d.flips.map((f) => `[${Math.floor(f.at * size)}]^0x${f.xor.toString(16)}`).join(' ')} of ${size} bytes`;
}

// ---------------------------------------------------------------------------------------------
// Building with the workflow steps, in process

function indexRequests(ds: GeneratedDataset, rowsPerZone: number): IndexRequest[] {
  return ds.columns.flatMap((c) => [
    { column: c.name, type: 'bitmap' as const },
    { column: c.name, type: 'zonemap' as const, rowsPerZone },
  ]);
}

/** A whole build through the workflow steps, in process (see steps.ts). */
function build(root: string, indexes: IndexRequest[] | undefined, groupRows: number, beforeMerge?: (buildId: string) => Promise<void>): Promise<void> {
  return runBuild(root, { indexes, groupRows, tuning: TUNING, beforeMerge });
}

async function writeFragments(root: string, ds: GeneratedDataset, from = 0, to = ds.fragments.length): Promise<void> {
  for (const f of ds.fragments.slice(from, to)) {
    const file = path.join(root, 'data', f.name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, bytesOf(ds, f));
  }
}

function bytesOf(ds: GeneratedDataset, f: GeneratedDataset['fragments'][number]): Uint8Array {
  return fragmentBytes(ds.columns, f.rows, { batchRows: f.batchRows, format: f.format, compression: f.compression, dictionary: f.dictionary });
}

// ---------------------------------------------------------------------------------------------
// Judging outcomes

/** A clear error: a named ScalarIndexError subclass whose message names one of `objects`. */
function expectClearError(err: unknown, objects: string[], allowed?: (abstract new (...args: never[]) => ScalarIndexError)[]): void {
  const e = err as Error;
  const detail = `${e?.name}: ${e?.message}\n${e?.stack}`;
  if (!(err instanceof ScalarIndexError) || err.constructor === ScalarIndexError) throw new Error(`not a named ScalarIndexError: ${detail}`);
  if (allowed && !allowed.some((c) => err instanceof c)) throw new Error(`unexpected error class: ${detail}`);
  if (!objects.some((o) => err.message.includes(o))) throw new Error(`error does not name ${objects.join(' or ')}: ${detail}`);
}

function answerByFragment(n: number, r: Awaited<ReturnType<typeof query>>): number[][] {
  const out: number[][] = Array.from({ length: n }, () => []);
  for (const f of r.fragments) out[f.id] = expandRanges(f.ranges);
  return out;
}

/**
 * Query every predicate three ways (bitmap only, zone map only, both). Each answer must be
 * right for the fragments it covers (exact answers equal to the oracle over `truth`, inexact
 * ones a superset), or the query must fail with a clear error naming one of `objects`; with
 * `objects` empty, no error is allowed.
 */
async function checkQueries(root: string, truth: GeneratedDataset, predicates: Predicate[], objects: string[]): Promise<number> {
  let errors = 0;
  for (const p of predicates) {
    const text = printPredicate(p);
    const expected = evaluateOracle(truth, p);
    for (const use of [['bitmap'], ['zonemap'], undefined] as const) {
      let r;
      try {
        r = await query(root, text, { use });
      } catch (err) {
        if (objects.length === 0) throw err;
        expectClearError(err, objects);
        errors++;
        continue;
      }
      const got = answerByFragment(truth.fragments.length, r);
      const unindexed = new Set(r.unindexedFragments.map((f) => f.id));
      expected.forEach((rows, f) => {
        if (unindexed.has(f)) return;
        const what = `${text} (use ${use ?? 'both'}), fragment ${f}`;
        if (r.exact) expect(got[f], `exact answer wrong: ${what}`).toEqual(rows);
        else {
          const kept = new Set(got[f]);
          for (const row of rows) expect(kept.has(row), `inexact answer dropped row ${row}: ${what}`).toBe(true);
        }
      });
    }
  }
  return errors;
}

/** Run one case under the watchdog, logging it first when debugging. */
async function guarded<T>(description: () => string, body: () => Promise<T>): Promise<T> {
  if (DEBUG) console.log(description());
  watchdog.arm(HANG_SECONDS, `FUZZ_SEED=${SEED} ${description()}`);
  try {
    return await body();
  } finally {
    watchdog.disarm();
  }
}

const stats = new Map<string, Record<string, number>>();
function tally(category: string, outcome: string): void {
  const s = stats.get(category) ?? {};
  s[outcome] = (s[outcome] ?? 0) + 1;
  stats.set(category, s);
}
afterAll(() => {
  for (const [category, s] of stats) console.log(`fuzz ${category}: ${Object.entries(s).map(([k, v]) => `${k} ${v}`).join(', ')}`);
});

const params = (runs: number): fc.Parameters<unknown> => ({ numRuns: runs, seed: SEED, timeout: CASE_TIMEOUT_MS, endOnFailure: DEBUG });

/** A small dataset with predicates over it, and a tail-read size (small ones force ranged reads). */
function caseArb(formats: readonly FragmentFormat[], fragments: [number, number]) {
  return datasetArb({ minFragments: fragments[0], maxFragments: fragments[1], maxRows: 30, formats }).chain((ds) =>
    fc.record({
      ds: fc.constant(ds),
      predicates: fc.array(predicateArb(ds, { maxDepth: 2 }), { minLength: 3, maxLength: 3 }),
      rowsPerZone: fc.integer({ min: 1, max: 8 }),
      groupRows: fc.integer({ min: 1, max: 50 }),
      tailBytes: fc.constantFrom(64 * 1024, 64 * 1024, 16, 100, 600),
    }),
  );
}

// ---------------------------------------------------------------------------------------------

describe('damage fuzzing: every case ends in a clear error or a correct answer', () => {
  it('(a) fragments: a damaged Arrow file, Arrow stream or Parquet fragment is refused by name, or indexed exactly as it decodes', async () => {
    await fc.assert(
      fc.asyncProperty(
        caseArb(['file', 'stream', 'parquet'], [2, 4]).chain((c) =>
          fc.record({ c: fc.constant(c), victim: fc.nat({ max: c.ds.fragments.length - 1 }), damage: damageArb }),
        ),
        async ({ c, victim, damage: d }) => {
          const { ds, predicates, rowsPerZone, groupRows } = c;
          IpcFileReader.tailBytes = c.tailBytes;
          const root = tempDir('ssi-fuzz-a-');
          await writeFragments(root, ds);
          const f = ds.fragments[victim]!;
          const file = path.join(root, 'data', f.name);
          const good = fs.readFileSync(file);
          const bad = damage(good, d);
          fs.writeFileSync(file, bad);
          await guarded(
            () => `(a) ${file} ${showDamage(d, good.byteLength)}; dataset ${describeDataset(ds)}`,
            async () => {
              try {
                await build(root, indexRequests(ds, rowsPerZone), groupRows);
              } catch (err) {
                expectClearError(err, [file], [FragmentReadError, MissingColumnError, ColumnTypeError]);
                tally("(a) fragments", `refused (${(err as Error).name})`);
                return;
              }
              let rows;
              try {
                rows = decodedRows(bad, f.format === 'parquet', ds.columns);
              } catch (err) {
                throw new Error(`the build accepted ${f.name} (${showDamage(d, good.byteLength)}), which does not decode to valid data: ${(err as Error).message}`, { cause: err });
              }
              const truth: GeneratedDataset = { ...ds, fragments: ds.fragments.map((g, i) => (i === victim ? { ...g, rows } : g)) };
              await checkQueries(root, truth, predicates, []);
              tally('(a) fragments', Buffer.compare(good, bad) === 0 ? 'unchanged' : 'indexed as decoded');
            },
          );
        },
      ),
      params(3 * RUNS),
    );
  }, 3 * TEST_TIMEOUT_MS);

  it('(b) part files: damage between build-part and the merge fails the merge by name, or changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        caseArb(['file', 'stream', 'parquet'], [2, 5]).chain((c) =>
          fc.record({
            c: fc.constant(c),
            split: fc.integer({ min: 0, max: c.ds.fragments.length - 1 }),
            target: fc.oneof({ weight: 6, arbitrary: fc.constant('part' as const) }, { weight: 2, arbitrary: fc.constant('record' as const) }, { weight: 1, arbitrary: fc.constant('plan' as const) }),
            pick: fc.nat(),
            damage: damageArb,
          }),
        ),
        async ({ c, split, target, pick, damage: d }) => {
          const { ds, predicates, rowsPerZone, groupRows } = c;
          IpcFileReader.tailBytes = c.tailBytes;
          const root = tempDir('ssi-fuzz-b-');
          const indexes = indexRequests(ds, rowsPerZone);
          // With split > 0 the damaged build is an update: the merge also reads the current version.
          if (split > 0) {
            await writeFragments(root, ds, 0, split);
            await build(root, indexes, groupRows);
          }
          await writeFragments(root, ds, split);
          let victim = '';
          let partFiles: string[] = [];
          let description = '';
          await guarded(
            () => `(b) ${description}; dataset ${describeDataset(ds)}`,
            async () => {
              try {
                await build(root, split > 0 ? undefined : indexes, groupRows, async (buildId) => {
                  const files = (dir: string) =>
                    fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((n) => path.join(dir, n)).filter((f) => fs.statSync(f).isFile()) : [];
                  const build = path.join(root, '_index', 'builds', buildId);
                  // Parts are segment directories of their own: <index dir>/<buildId>-g<group>/.
                  const parts = files(path.join(root, '_index', 'indexes')).filter((f) => f.includes(`/${buildId}-g`));
                  partFiles = parts;
                  const candidates = (target === 'plan' ? files(build).filter((f) => f.endsWith('plan.json')) : target === 'record' ? files(path.join(build, 'parts')) : parts).sort();
                  victim = candidates[pick % candidates.length]!;
                  const good = fs.readFileSync(victim);
                  description = `${victim} ${showDamage(d, good.byteLength)}`;
                  fs.writeFileSync(victim, damage(good, d));
                });
              } catch (err) {
                // A damaged record may be reported against the part files it describes.
                expectClearError(err, [victim, ...partFiles]);
                tally('(b) parts', `refused (${(err as Error).name})`);
                // Nothing was committed: the previous version still answers, exactly.
                await checkQueries(root, ds, predicates, []);
                return;
              }
              // A build with one group commits its part as the segment without reading it
              // again: damage to it is then found by the queries that read it, by name.
              const refused = await checkQueries(root, ds, predicates, [victim, ...partFiles]);
              tally('(b) parts', refused > 0 ? 'committed, queries refused by name' : 'merged correctly');
            },
          );
        },
      ),
      params(RUNS),
    );
  }, TEST_TIMEOUT_MS);

  it('(c) index files: a damaged bitmap.arrow, bitmap_lookup.arrow or zonemap.arrow fails queries and updates by name, or answers correctly', async () => {
    await fc.assert(
      fc.asyncProperty(
        caseArb(['file', 'stream'], [2, 4]).chain((c) =>
          fc.record({
            c: fc.constant(c),
            damages: fc.array(fc.record({ file: fc.nat(), damage: damageArb }), { minLength: 4, maxLength: 4 }),
            update: fc.boolean(),
          }),
        ),
        async ({ c, damages, update }) => {
          const { ds, predicates, rowsPerZone, groupRows } = c;
          IpcFileReader.tailBytes = c.tailBytes;
          const root = tempDir('ssi-fuzz-c-');
          // Hold back the last fragment for the update variant.
          const held = ds.fragments.length - 1;
          await writeFragments(root, ds, 0, held);
          await build(root, indexRequests(ds, rowsPerZone), groupRows);
          const manifest = await loadLatestManifest(new LocalStore(root));
          const files = manifest.indexes.flatMap((e) => indexFiles(e).map((f) => f.key)).sort();
          const known: GeneratedDataset = { ...ds, fragments: ds.fragments.slice(0, held) };
          for (const { file: pick, damage: d } of damages) {
            const victim = path.join(root, files[pick % files.length]!);
            const good = fs.readFileSync(victim);
            await guarded(
              () => `(c) ${victim} ${showDamage(d, good.byteLength)}${update ? ' + update' : ''}; dataset ${describeDataset(ds)}`,
              async () => {
                fs.writeFileSync(victim, damage(good, d));
                const errors = await checkQueries(root, known, predicates, [victim]);
                tally('(c) index files', errors > 0 ? 'query refused' : 'query answered correctly');
                if (update) {
                  // The merge reads the damaged version in full: it must notice, or be unaffected.
                  const copy = tempDir('ssi-fuzz-c-update-');
                  copyDataset(root, copy);
                  await writeFragments(copy, ds, held);
                  try {
                    await build(copy, undefined, groupRows);
                    await checkQueries(copy, ds, predicates, [path.join(copy, path.relative(root, victim))]);
                    tally('(c) index files', 'update merged');
                  } catch (err) {
                    expectClearError(err, [path.join(copy, path.relative(root, victim))]);
                    tally('(c) index files', `update refused (${(err as Error).name})`);
                  }
                }
                fs.writeFileSync(victim, good);
              },
            );
          }
        },
      ),
      params(Math.ceil(RUNS / 2)),
    );
  }, TEST_TIMEOUT_MS);

  it('(d) manifests: a damaged manifest fails queries and builds by name, or answers correctly', async () => {
    await fc.assert(
      fc.asyncProperty(
        caseArb(['file', 'stream'], [2, 4]).chain((c) =>
          fc.record({ c: fc.constant(c), damages: fc.array(damageArb, { minLength: 6, maxLength: 6 }), split: fc.integer({ min: 1, max: c.ds.fragments.length }) }),
        ),
        async ({ c, damages, split }) => {
          const { ds, predicates, rowsPerZone, groupRows } = c;
          const root = tempDir('ssi-fuzz-d-');
          await writeFragments(root, ds, 0, split);
          await build(root, indexRequests(ds, rowsPerZone), groupRows);
          await writeFragments(root, ds, split);
          await build(root, undefined, groupRows);
          const store = new LocalStore(root);
          const versions = await listVersions(store);
          const victim = store.describe(versionKey(versions[versions.length - 1]!));
          const good = fs.readFileSync(victim);
          for (const d of damages) {
            await guarded(
              () => `(d) ${victim} ${showDamage(d, good.byteLength)}; dataset ${describeDataset(ds)}`,
              async () => {
                fs.writeFileSync(victim, damage(good, d));
                const errors = await checkQueries(root, ds, predicates, [victim]);
                try {
                  // A build with nothing new only reads the manifest, and must not commit.
                  await build(root, undefined, groupRows);
                  expect(await listVersions(store), 'a build over a damaged manifest committed').toEqual(versions);
                  tally('(d) manifests', errors > 0 ? 'query refused, build no-op' : 'answered correctly');
                } catch (err) {
                  expectClearError(err, [victim]);
                  tally('(d) manifests', errors > 0 ? 'refused' : 'query answered, build refused');
                }
                fs.writeFileSync(victim, good);
              },
            );
          }
        },
      ),
      params(Math.ceil(RUNS / 2)),
    );
  }, TEST_TIMEOUT_MS);
});

/**
 * A copy of a dataset whose fragments are the same files (hard links): a fragment whose
 * modification time changed would count as rewritten, and copies round times differently.
 */
function copyDataset(from: string, to: string): void {
  fs.cpSync(path.join(from, '_index'), path.join(to, '_index'), { recursive: true });
  for (const name of fs.readdirSync(path.join(from, 'data'), { recursive: true, encoding: 'utf8' })) {
    const src = path.join(from, 'data', name);
    if (!fs.statSync(src).isFile()) continue;
    fs.mkdirSync(path.dirname(path.join(to, 'data', name)), { recursive: true });
    fs.linkSync(src, path.join(to, 'data', name));
  }
}
