/**
 * A manifest's checksum catches damage, not a writer that wrote nonsense (a bug, an old
 * release, a person editing it and fixing the checksum). Every manifest read is also checked
 * against the rules every writer keeps: edits that break one are refused by name, with their
 * checksum recomputed so that only the rule can catch them, and no edit ever makes a query
 * echo a path outside data/ or answer for a fragment the manifest does not register.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IndexFileError, ScalarIndexError } from '../../lib/errors.js';
import { withContentChecksum } from '../../lib/format/json-checksum.js';
import { readChunk, writeFragmentChunks, type FragmentChunkRef, type FragmentRow } from '../../lib/manifest/fragment-table.js';
import { listVersions, versionKey } from '../../lib/manifest/manifest.js';
import { has } from '../../lib/manifest/ranges.js';
import { query } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { checkKey } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import { writeFragment, type ColumnSpec } from '../support/dataset.js';
import { tempDir } from '../support/tmp.js';

const COLUMNS: ColumnSpec[] = [{ name: 'k', type: 'int32' }];

/** Fragments 0..3: bad.arrow (failed, id 0), f0..f2 (ids 1..3); a bitmap and a zone map over all three. */
async function dataset(): Promise<{ root: string; store: LocalStore; file: string; json: Record<string, unknown> }> {
  const root = tempDir('ssi-invariants-');
  for (let f = 0; f < 3; f++) {
    await writeFragment(path.join(root, 'data', `f${f}.arrow`), COLUMNS, { k: Array.from({ length: 20 }, (_, i) => (i + f) % 5) }, { batchRows: 8, format: 'file' });
  }
  fs.writeFileSync(path.join(root, 'data', 'bad.arrow'), 'not arrow');
  await build({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }, { column: 'k', type: 'zonemap', rowsPerZone: 4 }], skipBadFragments: true });
  const store = new LocalStore(root);
  const file = store.describe(versionKey((await listVersions(store)).at(-1)!));
  return { root, store, file, json: JSON.parse(fs.readFileSync(file, 'utf8')) };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Each edit of the manifest head breaks one rule; the message names it. */
const EDITS: [string, (m: Json) => void, RegExp][] = [
  ['two table chunks holding one id', (m) => m.fragments.chunks.push({ ...m.fragments.chunks[0] }), /fragment table chunks overlap at id 0/],
  ['nextFragmentId 0', (m) => (m.nextFragmentId = 0), /is not below nextFragmentId 0/],
  ['a failed id that is not registered', (m) => (m.fragments.failed = [[0, 1], [9, 10]]), /failed fragment 9 is not registered/],
  ['a removed id that is not registered', (m) => (m.fragments.removed = [[7, 8]]), /removed fragment 7 is not registered/],
  ['an id both failed and removed', (m) => (m.fragments.removed = [[0, 1]]), /fragment 0 is both failed and removed/],
  ['a failure recorded for a fragment that is not failed', (m) => m.fragments.failures.push({ id: 2, reason: 'x' }), /a failure is recorded for fragment 2, which is not failed/],
  ['an index covering an unregistered fragment', (m) => (m.indexes[0].segments[0].fragments = [[1, 5]]), /index k_bitmap covers fragment 4, which is not registered/],
  ['an index covering a failed fragment', (m) => (m.indexes[0].segments[0].fragments = [[0, 4]]), /index k_bitmap covers fragment 0, which is failed/],
  ['an index covering a removed fragment', (m) => (m.fragments.removed = [[3, 4]]), /index k_bitmap covers fragment 3, which is removed/],
  ['two segments covering one fragment', (m) => m.indexes[0].segments.push({ ...structuredClone(m.indexes[0].segments[0]), id: 'other' }), /index k_bitmap covers fragment 1 in two segments/],
  ['a segment id used twice', (m) => m.indexes[0].segments.push({ ...structuredClone(m.indexes[0].segments[0]), fragments: [] }), /index k_bitmap has segment \S+ twice/],
  ['ranges that touch', (m) => (m.indexes[0].segments[0].fragments = [[1, 2], [2, 4]]), /ranges must be sorted, disjoint and non-empty/],
  ['a reversed range', (m) => (m.indexes[0].segments[0].fragments = [[4, 1]]), /ranges must be sorted, disjoint and non-empty/],
  ['a fragment both covered and stale', (m) => (m.indexes[0].segments[0].stale = [[2, 3]]), /lists fragment 2 as both covered and stale/],
  ['an index defined twice', (m) => m.indexes.push(structuredClone(m.indexes[0])), /is defined twice/],
  ['an index file outside _index/indexes/', (m) => (m.indexes[0].segments[0].files[0].key = 'data/f0.arrow'), /names a file outside _index\/indexes\//],
  ['a table chunk outside _index/fragments/', (m) => (m.fragments.chunks[0].key = '_index/indexes/x.arrow'), /names a file outside _index\/fragments\//],
  ['a bitmap segment without its lookup table', (m) => m.indexes[0].segments[0].files.pop(), /segment \S+ has files \["bitmap.arrow"\], a bitmap segment has \["bitmap.arrow","bitmap_lookup.arrow"\]/],
  ['a segment file with no name', (m) => (m.indexes[1].segments[0].files[0].name = ''), /index k_zonemap segment \S+ has files \[""\], a zonemap segment has \["zonemap.arrow"\]/],
  ['an index value type no kind knows', (m) => (m.indexes[0].valueType = ''), /index k_bitmap: unknown value type ''/],
  ['zone-map parameters on a bitmap', (m) => (m.indexes[0].params = { rowsPerZone: 4 }), /index k_bitmap has parameters \{"rowsPerZone":4\}, its kind makes them \{\}/],
];

/** Each edit of the fragment table breaks one rule about paths; the message names it. */
const ROW_EDITS: [string, (rows: FragmentRow[]) => void, RegExp][] = [
  ['a path with a .. segment', (rows) => (rows[1]!.path = 'data/../x.arrow'), /'\.\.' segments are not allowed/],
  ['a path outside data/', (rows) => (rows[1]!.path = '../x.arrow'), /outside data\//],
  ['an absolute path', (rows) => (rows[1]!.path = '/etc/passwd'), /outside data\//],
  ['two live fragments at one path', (rows) => (rows[2]!.path = rows[1]!.path), /path "data\/f0.arrow" is registered twice \(fragments 1 and 2\)/],
];

function rewriteHead(file: string, m: Json): void {
  fs.writeFileSync(file, JSON.stringify(withContentChecksum(m), null, 1));
}

describe('manifest invariants, checked on every read', () => {
  it.each(EDITS)('%s is refused by name, whatever its checksum says', async (_what, edit, message) => {
    const { root, file, json } = await dataset();
    const m = structuredClone(json);
    edit(m);
    rewriteHead(file, m);
    await expect(query(root, 'k = 1')).rejects.toBeInstanceOf(IndexFileError);
    await expect(query(root, 'k = 1')).rejects.toThrow(message);
    await expect(query(root, 'k = 1')).rejects.toThrow(file);
    await expect(build({ dataset: root })).rejects.toThrow(message);
  });

  it.each(ROW_EDITS)('%s in the fragment table is refused by name, whatever its checksums say', async (_what, edit, message) => {
    const { root, store, file, json } = await dataset();
    const m: Json = structuredClone(json);
    // Rewrite the table as a new chunk with the edit, and point the head at it (checksums recomputed).
    const rows = await readChunk(store, m.fragments.chunks[0] as FragmentChunkRef);
    edit(rows);
    const [chunk] = await writeFragmentChunks(store, rows);
    m.fragments.chunks = [chunk];
    rewriteHead(file, m);
    const table = store.describe(chunk!.key);
    await expect(query(root, 'k = 1')).rejects.toBeInstanceOf(IndexFileError);
    await expect(query(root, 'k = 1')).rejects.toThrow(message);
    await expect(query(root, 'k = 1')).rejects.toThrow(table);
    await expect(query(root, 'k = 1', { registeredOnly: true })).rejects.toThrow(table);
    await expect(build({ dataset: root })).rejects.toThrow(message);
  });

  it('fuzz: any edit of the head (checksum recomputed) is refused by name, or answers only for registered fragments under data/', async () => {
    const { root, store, file, json } = await dataset();
    // The table's content is fixed by its checksums: an id names the same path whatever the head says.
    const pathOf = new Map((await readChunk(store, (json as Json).fragments.chunks[0])).map((r) => [r.id, r.path]));
    // A path into the manifest, and a replacement value of any JSON shape.
    const leaves: (string | number)[][] = [];
    const walk = (v: unknown, at: (string | number)[]) => {
      if (v !== null && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...at, Array.isArray(v) ? Number(k) : k]);
      else leaves.push(at);
    };
    walk(json, []);
    const valueArb = fc.oneof(
      fc.integer({ min: -3, max: 2 ** 32 + 3 }),
      fc.constantFrom('', 'data/f0.arrow', 'data/../f1.arrow', '/abs', 'data//x.arrow', 'bitmap', 'zonemap', '_index/indexes/k_bitmap/x/bitmap.arrow', '_index/fragments/x.arrow', 'bitmap_lookup.arrow'),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.nat({ max: 6 }), { maxLength: 4 }),
      fc.array(fc.tuple(fc.nat({ max: 6 }), fc.nat({ max: 6 })), { maxLength: 3 }),
    );
    let refused = 0;
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(...leaves), valueArb), { minLength: 1, maxLength: 3 }), fc.boolean(), async (edits, registeredOnly) => {
        const m: Json = structuredClone(json);
        for (const [at, value] of edits) {
          let o: Json = m;
          for (const k of at.slice(0, -1)) o = o[k];
          o[at.at(-1)!] = value;
        }
        rewriteHead(file, m);
        try {
          const r = await query(root, 'k >= 0', { registeredOnly });
          answered++;
          const registered = (m.fragments.chunks as Json[]).map((c) => [c.firstId, c.firstId + c.count] as [number, number]);
          for (const f of [...r.fragments, ...r.unindexedFragments]) {
            expect(() => checkKey(f.path)).not.toThrow();
            expect(f.path.startsWith('data/')).toBe(true);
            if (f.id !== null) {
              expect(registered.some(([s, e]) => f.id! >= s && f.id! < e)).toBe(true);
              expect(has(m.fragments.removed, f.id)).toBe(false);
              expect(pathOf.get(f.id)).toBe(f.path);
            }
          }
        } catch (err) {
          refused++;
          expect(err).toBeInstanceOf(ScalarIndexError);
          // Named: the manifest, or the table or index file it points at.
          expect((err as Error).message).toContain(root);
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150) },
    );
    console.log(`manifest edits: ${refused} refused by name, ${answered} answered within the rules`);
    expect(refused).toBeGreaterThan(0);
    expect(answered).toBeGreaterThan(0);
  });
});
