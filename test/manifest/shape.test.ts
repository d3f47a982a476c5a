/**
 * shape.ts (the zod-free manifest check every read uses) accepts exactly what the zod schema
 * (schema.ts, checked on every commit) accepts, and returns the same data: over random
 * mutations of a manifest that holds every field the zod schema declares. A field added to
 * the schema but not to this test's manifest, or to shape.ts, fails here.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FragmentEntrySchema, IndexEntrySchema, IndexFileSchema, ManifestSchema } from '../../lib/manifest/schema.js';
import { checkManifestShape, MANIFEST_FORMAT } from '../../lib/manifest/shape.js';

/** A manifest with every optional field present somewhere. */
const FULL = {
  format: MANIFEST_FORMAT,
  version: 7,
  createdAt: '2026-12-04T00:00:00.000Z',
  nextFragmentId: 3,
  fragments: [
    { id: 0, path: 'data/a.arrow', size: 100, rows: 10, fingerprint: 'arrowfile:100:ab' },
    { id: 2, path: 'data/b.parquet', size: 0, rows: 0, fingerprint: 'sha256:cd', failed: 'not Parquet' },
  ],
  indexes: [
    {
      name: 'x_zonemap',
      column: 'x',
      type: 'zonemap',
      params: { rowsPerZone: 8192 },
      valueType: 'Int32',
      files: [{ name: 'zonemap.arrow', key: '_index/indexes/x_zonemap/1/zonemap.arrow', size: 10, crc32c: 'AAAAAA==' }],
      fragmentIds: [0],
      updatedAt: '2026-12-04T00:00:00.000Z',
    },
    { name: 'y_bitmap', column: 'y', type: 'bitmap', params: {}, valueType: 'Utf8', files: [{ name: 'bitmap.arrow', key: 'k', size: 0 }], fragmentIds: [], updatedAt: '' },
  ],
};

type Json = unknown;
type Path = (string | number)[];

function paths(v: Json, at: Path = []): Path[] {
  if (Array.isArray(v)) return [at, ...v.flatMap((x, i) => paths(x, [...at, i]))];
  if (typeof v === 'object' && v !== null) return [at, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...at, k]))];
  return [at];
}

function setAt(root: Json, path: Path, value: Json | typeof DELETE): Json {
  if (path.length === 0) return value === DELETE ? undefined : value;
  const copy = structuredClone(root) as Record<string | number, Json>;
  let node = copy as Record<string | number, Json>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === DELETE) {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete node[last];
  } else node[last] = value;
  return copy;
}

const DELETE = Symbol('delete');
const VALUES: (Json | typeof DELETE)[] = [
  DELETE, null, true, false, 0, -0, -1, 1, 1.5, 8192, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), Infinity, -Infinity,
  '', 'x', 'zonemap', 'bitmap', 'btree', MANIFEST_FORMAT, `${MANIFEST_FORMAT} `, 'AAAAAA==', 'AAAAAA=', 'not base64!', [], [1], [-1], ['x'], {}, { extra: 1 },
  structuredClone(FULL.fragments[0]), structuredClone(FULL.indexes[1]), structuredClone(FULL.indexes[0]!.files[0]),
];

describe('shape.ts against the zod schema', () => {
  it('the test manifest holds every field the zod schema declares, and both accept it', () => {
    const keys = (o: object) => Object.keys(o).sort();
    expect(keys(ManifestSchema.shape)).toEqual(keys(FULL));
    expect(keys(FragmentEntrySchema.shape)).toEqual(keys(FULL.fragments[1]!));
    expect(keys(IndexEntrySchema.shape)).toEqual(keys(FULL.indexes[0]!));
    expect(keys(IndexFileSchema.shape)).toEqual(keys(FULL.indexes[0]!.files[0]!));
    expect(keys(IndexEntrySchema.shape.params.shape)).toEqual(keys(FULL.indexes[0]!.params));
    expect(ManifestSchema.safeParse(FULL).success).toBe(true);
    expect(checkManifestShape(FULL)).toEqual({ success: true, data: ManifestSchema.parse(FULL) });
  });

  it('accepts and refuses the same mutated manifests, and returns the same data', () => {
    const all = paths(FULL);
    const mutation = fc.record({ path: fc.constantFrom(...all), value: fc.constantFrom(...VALUES), addKey: fc.boolean() });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        let m: Json = FULL;
        for (const { path, value, addKey } of mutations) {
          try {
            // An unknown key beside a known one (dropped by both), or a value replaced or deleted.
            m = addKey && path.length > 0 ? setAt(m, [...path.slice(0, -1), 'unknownKey'], value === DELETE ? 1 : value) : setAt(m, path, value);
          } catch {
            // The path no longer exists after an earlier mutation.
          }
        }
        const zod = ManifestSchema.safeParse(m);
        const ours = checkManifestShape(m);
        expect(ours.success, JSON.stringify(m)).toBe(zod.success);
        if (zod.success && ours.success) expect(ours.data).toEqual(zod.data);
      }),
      { numRuns: 3000 },
    );
  });

  it('a refusal names the field and what was expected', () => {
    expect(checkManifestShape(setAt(FULL, ['fragments', 1, 'id'], -1))).toEqual({ success: false, path: 'fragments.1.id', message: 'expected an integer from 0 to 4294967295, got -1' });
    expect(checkManifestShape(setAt(FULL, ['indexes', 0, 'type'], 'btree'))).toMatchObject({ success: false, path: 'indexes.0.type' });
    expect(checkManifestShape(setAt(FULL, ['indexes', 0, 'files', 0, 'crc32c'], 'zz'))).toMatchObject({ success: false, path: 'indexes.0.files.0.crc32c', message: 'not a base64 CRC32C' });
    expect(checkManifestShape(null)).toMatchObject({ success: false, path: '' });
  });
});
