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
import { listVersions, versionKey } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { checkKey } from '../../lib/store/store.js';
import { build } from '../../lib/workflow/build.js';
import { writeFragment, type ColumnSpec } from '../support/dataset.js';
import { tempDir } from '../support/tmp.js';

const COLUMNS: ColumnSpec[] = [{ name: 'k', type: 'int32' }];

async function dataset(): Promise<{ root: string; file: string; json: Record<string, unknown> }> {
  const root = tempDir('ssi-invariants-');
  for (let f = 0; f < 3; f++) {
    await writeFragment(path.join(root, 'data', `f${f}.arrow`), COLUMNS, { k: Array.from({ length: 20 }, (_, i) => (i + f) % 5) }, { batchRows: 8, format: 'file' });
  }
  fs.writeFileSync(path.join(root, 'data', 'bad.arrow'), 'not arrow');
  await build({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }, { column: 'k', type: 'zonemap', rowsPerZone: 4 }], skipBadFragments: true });
  const store = new LocalStore(root);
  const file = store.describe(versionKey((await listVersions(store)).at(-1)!));
  return { root, file, json: JSON.parse(fs.readFileSync(file, 'utf8')) };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Each edit breaks one rule; the message names it. */
const EDITS: [string, (m: Json) => void, RegExp][] = [
  ['a fragment id registered twice', (m) => (m.fragments[1].id = m.fragments[0].id), /fragment id 0 is registered twice/],
  ['nextFragmentId 0', (m) => (m.nextFragmentId = 0), /is not below nextFragmentId 0/],
  ['a path with a .. segment', (m) => (m.fragments[1].path = 'data/../x.arrow'), /'\.\.' segments are not allowed/],
  ['a path outside data/', (m) => (m.fragments[1].path = '../x.arrow'), /outside data\//],
  ['an absolute path', (m) => (m.fragments[1].path = '/etc/passwd'), /outside data\//],
  ['two live fragments at one path', (m) => (m.fragments[2].path = m.fragments[1].path), /is registered twice/],
  ['an index covering an unregistered fragment', (m) => m.indexes[0].fragmentIds.push(99), /covers fragment 99, which is not registered/],
  ['an index covering a failed fragment', (m) => (m.indexes[0].fragmentIds = [0, 1, 2, 3].sort()), /covers fragment 0, which is failed/],
  ['an index listing ids out of order', (m) => m.indexes[0].fragmentIds.reverse(), /out of order/],
  ['an index defined twice', (m) => m.indexes.push(structuredClone(m.indexes[0])), /is defined twice/],
  ['an index file outside _index/indexes/', (m) => (m.indexes[0].files[0].key = 'data/f0.arrow'), /names a file outside _index\/indexes\//],
  ['a fragment both covered and stale', (m) => (m.indexes[0].staleFragmentIds = [m.indexes[0].fragmentIds[0]]), /as both covered and stale/],
  ['an index value type no kind knows', (m) => (m.indexes[0].valueType = ''), /index k_bitmap: unknown value type ''/],
  ['zone-map parameters on a bitmap', (m) => (m.indexes[0].params = { rowsPerZone: 4 }), /index k_bitmap has parameters \{"rowsPerZone":4\}, its kind makes them \{\}/],
];

describe('manifest invariants, checked on every read', () => {
  it.each(EDITS)('%s is refused by name, whatever its checksum says', async (_what, edit, message) => {
    const { root, file, json } = await dataset();
    const m = structuredClone(json);
    edit(m);
    fs.writeFileSync(file, JSON.stringify(withContentChecksum(m), null, 1));
    const run = query(root, 'k = 1');
    await expect(run).rejects.toBeInstanceOf(IndexFileError);
    await expect(query(root, 'k = 1')).rejects.toThrow(message);
    await expect(query(root, 'k = 1')).rejects.toThrow(file);
    await expect(build({ dataset: root })).rejects.toThrow(message);
  });

  it('fuzz: any edit (checksum recomputed) is refused by name, or answers only for registered fragments under data/', async () => {
    const { root, file, json } = await dataset();
    const registered = (m: Json) => new Map((m.fragments as Json[]).map((f) => [f.id as number, f.path as string]));
    // A path into the manifest, and a replacement value of any JSON shape.
    const leaves: (string | number)[][] = [];
    const walk = (v: unknown, at: (string | number)[]) => {
      if (v !== null && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...at, Array.isArray(v) ? Number(k) : k]);
      else leaves.push(at);
    };
    walk(json, []);
    const valueArb = fc.oneof(
      fc.integer({ min: -3, max: 2 ** 32 + 3 }),
      fc.constantFrom('', 'data/f0.arrow', 'data/../f1.arrow', '/abs', 'data//x.arrow', 'bitmap', 'zonemap', '_index/indexes/k_bitmap/x/bitmap.arrow', 'data/f9.arrow'),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.nat({ max: 6 }), { maxLength: 4 }),
    );
    let refused = 0;
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(...leaves), valueArb), { minLength: 1, maxLength: 3 }), async (edits) => {
        const m: Json = structuredClone(json);
        for (const [at, value] of edits) {
          let o: Json = m;
          for (const k of at.slice(0, -1)) o = o[k];
          o[at.at(-1)!] = value;
        }
        fs.writeFileSync(file, JSON.stringify(withContentChecksum(m), null, 1));
        try {
          const r = await query(root, 'k >= 0');
          answered++;
          const ids = registered(m);
          for (const f of [...r.fragments, ...r.unindexedFragments]) {
            expect(() => checkKey(f.path)).not.toThrow();
            expect(f.path.startsWith('data/')).toBe(true);
            if (f.id !== null) expect(ids.get(f.id)).toBe(f.path);
          }
        } catch (err) {
          refused++;
          expect(err).toBeInstanceOf(ScalarIndexError);
          // Named: the manifest, or the index file it points at that is not there.
          expect((err as Error).message).toContain(root);
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150) },
    );
    console.log(`manifest edits: ${refused} refused by name, ${answered} answered within the rules`);
    expect(refused).toBeGreaterThan(0);
  });
});
