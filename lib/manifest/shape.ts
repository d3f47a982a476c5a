/**
 * Checking a parsed manifest version against the manifest schema without zod: every query
 * reads a manifest, and loading zod cost more than the rest of a small query (about 0.5 MB of
 * code to read and compile per process). `schema.ts` (zod) stays the reference and checks every
 * commit; this accepts exactly what it accepts and returns the same data (unknown keys
 * dropped), which test/manifest/shape.test.ts checks field by field against the zod schema.
 */
import { isEncodedCrc32c } from '../format/crc32c.js';
import type { Manifest } from './schema.js';

export const MANIFEST_FORMAT = 'serverless-scalar-index/manifest/1';

/** Why a value is refused: where (`fragments.3.id`) and what was expected. */
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
  (minLength = 0): Check<string> =>
  (v, path) => {
    if (typeof v !== 'string') return fail(path, `expected a string, got ${describe(v)}`);
    if (v.length < minLength) return fail(path, `expected a string of at least ${minLength} character(s)`);
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
  <T>(check: Check<T>): Check<T[]> =>
  (v, path) => {
    if (!Array.isArray(v)) return fail(path, `expected an array, got ${describe(v)}`);
    return v.map((x, i) => check(x, [...path, i]));
  };

/** An object with exactly these fields checked (others are dropped, as zod does). */
const object =
  <T extends Record<string, unknown>>(fields: { [K in keyof T]: Check<T[K]> }): Check<T> =>
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

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v === 'undefined' ? 'nothing' : `a${typeof v === 'object' ? 'n' : ''} ${typeof v}`;
}

const fragment = object<Manifest['fragments'][number]>({
  id: integer(0, 0xffffffff),
  path: string(1),
  size: integer(0),
  rows: integer(0),
  fingerprint: string(1),
  failed: optional(string()),
});

const indexFile = object<Manifest['indexes'][number]['files'][number]>({
  name: string(),
  key: string(),
  size: integer(0),
  crc32c: optional((v, path) => {
    const s = string()(v, path);
    return isEncodedCrc32c(s) ? s : fail(path, 'not a base64 CRC32C');
  }),
});

const index = object<Manifest['indexes'][number]>({
  name: string(1),
  column: string(1),
  type: oneOf('zonemap', 'bitmap'),
  params: object<Manifest['indexes'][number]['params']>({ rowsPerZone: optional(integer(1)) }),
  valueType: string(),
  files: array(indexFile),
  fragmentIds: array(integer(0)),
  updatedAt: string(),
});

const manifest = object<Manifest>({
  format: (v, path) => (v === MANIFEST_FORMAT ? MANIFEST_FORMAT : fail(path, `expected ${JSON.stringify(MANIFEST_FORMAT)}, got ${describe(v)}`)),
  version: integer(0),
  createdAt: string(),
  nextFragmentId: integer(0, 2 ** 32),
  fragments: array(fragment),
  indexes: array(index),
});

/** `json` as a Manifest, or where and why it is not one. */
export function checkManifestShape(json: unknown): { success: true; data: Manifest } | { success: false; path: string; message: string } {
  try {
    return { success: true, data: manifest(json, []) };
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err;
    return { success: false, path: err.path.join('.'), message: err.message };
  }
}
