/**
 * Checking a parsed format-2 manifest head without zod: every query reads a head, and loading
 * zod cost more than the rest of a small query (about 0.5 MB of code to read and compile per
 * process). `schema.ts` (zod) stays the reference and checks every commit; this accepts
 * exactly what it accepts and returns the same data (unknown keys dropped), which
 * test/manifest/shape.test.ts checks field by field against the zod schema.
 */
import { isEncodedCrc32c } from '../format/crc32c.js';
import { isCanonical } from './ranges.js';
import type { IndexEntry, IndexFile, SegmentEntry, StoredManifest } from './schema.js';

export const MANIFEST_FORMAT = 'serverless-scalar-index/manifest/2';
export const MANIFEST_FORMAT_V1 = 'serverless-scalar-index/manifest/1';

/** Why a value is refused: where (`indexes.3.segments.0.id`) and what was expected. */
class ShapeError extends Error {
  constructor(
    readonly path: (string | number)[],
    message: string,
  ) {
    super(message);
  }
}

type Check<T> = (value: unknown, path: (string | number)[]) => T;

const fail = (path: (string | number)[], message: string): never => {
  throw new ShapeError(path, message);
};

const string =
  (minLength = 0, pattern?: RegExp): Check<string> =>
  (v, path) => {
    if (typeof v !== 'string') return fail(path, `expected a string, got ${describe(v)}`);
    if (v.length < minLength) return fail(path, `expected a string of at least ${minLength} character(s)`);
    if (pattern && !pattern.test(v)) return fail(path, `expected a string matching ${pattern}`);
    return v;
  };

const integer =
  (min: number, max = Number.MAX_SAFE_INTEGER): Check<number> =>
  (v, path) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return fail(path, `expected an integer, got ${describe(v)}`);
    if (v < min || v > max) return fail(path, `expected an integer from ${min} to ${max}, got ${v}`);
    return v;
  };

const optional =
  <T>(check: Check<T>): Check<T | undefined> =>
  (v, path) =>
    v === undefined ? undefined : check(v, path);

const array =
  <T>(check: Check<T>, minLength = 0): Check<T[]> =>
  (v, path) => {
    if (!Array.isArray(v)) return fail(path, `expected an array, got ${describe(v)}`);
    const out = v.map((x, i) => check(x, [...path, i]));
    if (out.length < minLength) return fail(path, `expected an array of at least ${minLength} item(s)`);
    return out;
  };

/** An object with exactly these fields checked (others are dropped, as zod does). */
const object =
  <T extends object>(fields: { [K in keyof T]-?: Check<T[K]> }): Check<T> =>
  (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(path, `expected an object, got ${describe(v)}`);
    const out: Record<string, unknown> = {};
    for (const [key, check] of Object.entries(fields) as [string, Check<unknown>][]) {
      const value = check((v as Record<string, unknown>)[key], [...path, key]);
      if (value !== undefined) out[key] = value;
    }
    return out as T;
  };

const oneOf =
  <T extends string>(...values: T[]): Check<T> =>
  (v, path) =>
    values.includes(v as T) ? (v as T) : fail(path, `expected one of ${values.join(', ')}, got ${describe(v)}`);

const refine =
  <T>(check: Check<T>, ok: (value: T) => boolean, message: string): Check<T> =>
  (v, path) => {
    const value = check(v, path);
    return ok(value) ? value : fail(path, message);
  };

/** `[start, end)` pairs, exactly two integers each. */
const range: Check<[number, number]> = (v, path) => {
  if (!Array.isArray(v)) return fail(path, `expected a [start, end) pair, got ${describe(v)}`);
  if (v.length !== 2) return fail(path, `expected a [start, end) pair, got ${v.length} item(s)`);
  return [integer(0)(v[0], [...path, 0]), integer(1)(v[1], [...path, 1])];
};

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v === 'undefined' ? 'nothing' : `a${typeof v === 'object' ? 'n' : ''} ${typeof v}`;
}

const ranges = refine(array(range), isCanonical, 'ranges must be sorted, disjoint and non-empty');
const crc32c = refine(string(), isEncodedCrc32c, 'not a base64 CRC32C');

const indexFile = object<IndexFile>({ name: string(), key: string(), size: integer(0), crc32c });

const segment = object<SegmentEntry>({
  id: string(0, /^[0-9a-z-]{1,64}$/),
  fragments: ranges,
  stale: optional(ranges),
  rows: integer(0),
  bytes: integer(0),
  files: array(indexFile, 1),
  createdAt: string(),
});

const index = object<IndexEntry>({
  name: string(1),
  column: string(1),
  type: oneOf('zonemap', 'bitmap'),
  params: object<IndexEntry['params']>({ rowsPerZone: optional(integer(1)) }),
  valueType: string(),
  segments: array(segment),
  updatedAt: string(),
});

type Fragments = StoredManifest['fragments'];

const fragments = object<Fragments>({
  chunks: array(
    object<Fragments['chunks'][number]>({
      key: string(),
      size: integer(0),
      crc32c,
      firstId: integer(0, 0xffffffff),
      count: integer(1),
      batchRows: integer(1),
      batchCrc32c: string(),
    }),
  ),
  failed: ranges,
  removed: ranges,
  failures: array(object<Fragments['failures'][number]>({ id: integer(0), reason: string() })),
});

const manifest = object<StoredManifest>({
  format: (v, path) => (v === MANIFEST_FORMAT ? MANIFEST_FORMAT : fail(path, `expected ${JSON.stringify(MANIFEST_FORMAT)}, got ${describe(v)}`)),
  version: integer(0),
  createdAt: string(),
  nextFragmentId: integer(0, 2 ** 32),
  fragments,
  indexes: array(index),
});

/** `json` as a format-2 head, or where and why it is not one. */
export function checkManifestShape(json: unknown): { success: true; data: StoredManifest } | { success: false; path: string; message: string } {
  try {
    return { success: true, data: manifest(json, []) };
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err;
    return { success: false, path: err.path.join('.'), message: err.message };
  }
}
