/**
 * shape.ts (the zod-free check every read of a format-2 head uses) accepts exactly what the
 * zod schema (schema.ts, checked before every commit) accepts, and returns the same data:
 * over random mutations of a head that holds every field the zod schema declares. A field
 * added to the schema but not to this test's head, or to shape.ts, fails here.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkSchema, FailureSchema, FragmentsSchema, IndexEntrySchema, IndexFileSchema, ManifestSchema, SegmentSchema } from '../../lib/manifest/schema.js';
import { checkManifestShape, MANIFEST_FORMAT, MANIFEST_FORMAT_V1 } from '../../lib/manifest/shape.js';

const FILE = { name: 'zonemap.arrow', key: '_index/indexes/x_zonemap/s1/zonemap.arrow', size: 10, crc32c: 'AAAAAA==' };

/** A head with every optional field present somewhere. */
const FULL = {
  format: MANIFEST_FORMAT,
  version: 7,
  createdAt: '2026-12-04T00:00:00.000Z',
  nextFragmentId: 12,
  fragments: {
    chunks: [
      { key: '_index/fragments/a.arrow', size: 900, crc32c: 'AAAAAA==', firstId: 0, count: 8, batchRows: 4, batchCrc32c: 'AAAAAA==,AAAAAQ==' },
      { key: '_index/fragments/b.arrow', size: 100, crc32c: 'AAAAAQ==', firstId: 8, count: 4, batchRows: 1024, batchCrc32c: '' },
    ],
    failed: [[2, 3]],
    removed: [[5, 7], [9, 10]],
    failures: [{ id: 2, reason: 'not Arrow' }],
  },
  indexes: [
    {
      name: 'x_zonemap',
      column: 'x',
      type: 'zonemap',
      params: { rowsPerZone: 8192 },
      valueType: 'Int32',
      segments: [
        { id: 'mk2-0a1b', fragments: [[0, 2], [3, 5]], stale: [[5, 6]], rows: 400, bytes: 10, files: [FILE], createdAt: '2026-12-04T00:00:00.000Z' },
        { id: 'v1-x', fragments: [[7, 9]], rows: 0, bytes: 0, files: [{ ...FILE, key: '_index/indexes/x_zonemap/s2/zonemap.arrow' }], createdAt: '' },
      ],
      updatedAt: '2026-12-04T00:00:00.000Z',
    },
    { name: 'y_bitmap', column: 'y', type: 'bitmap', params: {}, valueType: 'Utf8', segments: [], updatedAt: '' },
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
  '', 'x', 'X', 'a_b', 'v1-x', 'x'.repeat(64), 'x'.repeat(65), 'zonemap', 'bitmap', 'btree', MANIFEST_FORMAT, MANIFEST_FORMAT_V1, `${MANIFEST_FORMAT} `, 'AAAAAA==', 'AAAAAA=', 'not base64!',
  [], [1], [-1], ['x'], {}, { extra: 1 },
  // Ranges and pairs: canonical, touching, overlapping, unsorted, empty, reversed, too long or short.
  [[0, 1]], [[0, 1], [2, 3]], [[0, 1], [1, 2]], [[0, 2], [1, 3]], [[2, 3], [0, 1]], [[1, 1]], [[2, 1]], [[0, 1, 2]], [[0]], [0, 1], [[0, 1.5]], [[-1, 1]],
  structuredClone(FULL.fragments.chunks[0]), structuredClone(FULL.fragments.failures[0]), structuredClone(FULL.indexes[0]!.segments[0]), structuredClone(FULL.indexes[1]), FILE,
];

describe('shape.ts against the zod schema', () => {
  it('the test head holds every field the zod schema declares, and both accept it', () => {
    const keys = (o: object) => Object.keys(o).sort();
    expect(keys(ManifestSchema.shape)).toEqual(keys(FULL));
    expect(keys(FragmentsSchema.shape)).toEqual(keys(FULL.fragments));
    expect(keys(ChunkSchema.shape)).toEqual(keys(FULL.fragments.chunks[0]!));
    expect(keys(FailureSchema.shape)).toEqual(keys(FULL.fragments.failures[0]!));
    expect(keys(IndexEntrySchema.shape)).toEqual(keys(FULL.indexes[0]!));
    expect(keys(IndexEntrySchema.shape.params.shape)).toEqual(keys(FULL.indexes[0]!.params));
    expect(keys(SegmentSchema.shape)).toEqual(keys(FULL.indexes[0]!.segments[0]!));
    expect(keys(IndexFileSchema.shape)).toEqual(keys(FILE));
    expect(ManifestSchema.safeParse(FULL).success).toBe(true);
    expect(checkManifestShape(FULL)).toEqual({ success: true, data: ManifestSchema.parse(FULL) });
  });

  it('accepts and refuses the same mutated heads, and returns the same data', () => {
    const all = paths(FULL);
    const mutation = fc.record({ path: fc.constantFrom(...all), value: fc.constantFrom(...VALUES), addKey: fc.boolean() });
    let accepted = 0;
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
        if (zod.success && ours.success) {
          accepted++;
          expect(ours.data).toEqual(zod.data);
        }
      }),
      { numRuns: 5000 },
    );
    // Both outcomes were exercised, not only refusals.
    expect(accepted).toBeGreaterThan(100);
  });

  it('a refusal names the field and what was expected', () => {
    expect(checkManifestShape(setAt(FULL, ['fragments', 'chunks', 1, 'firstId'], -1))).toEqual({ success: false, path: 'fragments.chunks.1.firstId', message: 'expected an integer from 0 to 4294967295, got -1' });
    expect(checkManifestShape(setAt(FULL, ['indexes', 0, 'type'], 'btree'))).toMatchObject({ success: false, path: 'indexes.0.type' });
    expect(checkManifestShape(setAt(FULL, ['indexes', 0, 'segments', 0, 'files', 0, 'crc32c'], 'zz'))).toMatchObject({ success: false, path: 'indexes.0.segments.0.files.0.crc32c', message: 'not a base64 CRC32C' });
    expect(checkManifestShape(setAt(FULL, ['fragments', 'removed'], [[9, 10], [5, 7]]))).toMatchObject({ success: false, path: 'fragments.removed', message: 'ranges must be sorted, disjoint and non-empty' });
    expect(checkManifestShape(setAt(FULL, ['indexes', 0, 'segments', 1, 'files'], []))).toMatchObject({ success: false, path: 'indexes.0.segments.1.files' });
    expect(checkManifestShape(null)).toMatchObject({ success: false, path: '' });
  });
});
