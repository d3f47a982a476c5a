/**
 * The manifest head's schema in zod: the reference for what a format-2 head holds, checked
 * before every commit, and the source of its types; plus format 1, read only. Readers check
 * format-2 heads with `shape.ts` instead, which accepts exactly what this schema accepts
 * (test/manifest/shape.test.ts holds them together) without loading zod into every query;
 * this module is imported only to commit or to read a format-1 head.
 */
import { z } from 'zod';
import { isEncodedCrc32c } from '../format/crc32c.js';
import { isCanonical } from './ranges.js';
import { MANIFEST_FORMAT, MANIFEST_FORMAT_V1 } from './shape.js';

export const Ranges = z.array(z.tuple([z.number().int().nonnegative(), z.number().int().positive()])).refine(isCanonical, 'ranges must be sorted, disjoint and non-empty');
const Crc = z.string().refine(isEncodedCrc32c, 'not a base64 CRC32C');

export const IndexFileSchema = z.object({
  name: z.string(),
  key: z.string(),
  size: z.number().int().nonnegative(),
  /** CRC32C of the whole file, base64 of the big-endian 4 bytes (as S3 encodes it). */
  crc32c: Crc,
});

export const SegmentSchema = z.object({
  id: z.string().regex(/^[0-9a-z-]{1,64}$/),
  /** Fragments the segment covers. */
  fragments: Ranges,
  /** Fragments whose rows the files hold but that no longer count (removed or failed since, or covered by another segment first). */
  stale: Ranges.optional(),
  /** Rows of the covered fragments when the segment was written. */
  rows: z.number().int().nonnegative(),
  /** Bytes of its files. */
  bytes: z.number().int().nonnegative(),
  files: z.array(IndexFileSchema).min(1),
  createdAt: z.string(),
});

export const IndexEntrySchema = z.object({
  name: z.string().min(1),
  column: z.string().min(1),
  type: z.enum(['zonemap', 'bitmap']),
  params: z.object({ rowsPerZone: z.number().int().positive().optional() }),
  /** Column type signature (column-type.ts), fixed when the index is first built. */
  valueType: z.string(),
  segments: z.array(SegmentSchema),
  updatedAt: z.string(),
});

export const ChunkSchema = z.object({
  key: z.string(),
  size: z.number().int().nonnegative(),
  crc32c: Crc,
  firstId: z.number().int().min(0).max(0xffffffff),
  count: z.number().int().positive(),
  batchRows: z.number().int().positive(),
  batchCrc32c: z.string(),
});

export const FailureSchema = z.object({ id: z.number().int().nonnegative(), reason: z.string() });

export const FragmentsSchema = z.object({
  chunks: z.array(ChunkSchema),
  /** Fragments that cannot be indexed (bad content, a key the store refuses, …). */
  failed: Ranges,
  /** Fragments whose files are gone (deleted, or rewritten and registered again). */
  removed: Ranges,
  /** Why, for fragments found bad after registration (registration-time reasons are in the table). */
  failures: z.array(FailureSchema),
});

export const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.number().int().nonnegative(),
  createdAt: z.string(),
  nextFragmentId: z.number().int().min(0).max(2 ** 32),
  fragments: FragmentsSchema,
  indexes: z.array(IndexEntrySchema),
});

export type IndexFile = z.infer<typeof IndexFileSchema>;
export type SegmentEntry = z.infer<typeof SegmentSchema>;
export type IndexEntry = z.infer<typeof IndexEntrySchema>;
export type StoredManifest = z.infer<typeof ManifestSchema>;

/** Format 1: the fragment list and one file set per index, inline (read only). */
export const V1Schema = z.object({
  format: z.literal(MANIFEST_FORMAT_V1),
  version: z.number().int().nonnegative(),
  createdAt: z.string(),
  nextFragmentId: z.number().int().min(0).max(2 ** 32),
  fragments: z.array(
    z.object({
      id: z.number().int().min(0).max(0xffffffff),
      path: z.string().min(1),
      size: z.number().int().nonnegative(),
      rows: z.number().int().nonnegative(),
      fingerprint: z.string().min(1),
      etag: z.string().min(1).optional(),
      failed: z.string().optional(),
      removed: z.string().optional(),
    }),
  ),
  indexes: z.array(
    z.object({
      name: z.string().min(1),
      column: z.string().min(1),
      type: z.enum(['zonemap', 'bitmap']),
      params: z.object({ rowsPerZone: z.number().int().positive().optional() }),
      valueType: z.string(),
      files: z.array(IndexFileSchema),
      fragmentIds: z.array(z.number().int().min(0)),
      staleFragmentIds: z.array(z.number().int().min(0)).optional(),
      updatedAt: z.string(),
    }),
  ),
});

/** `json` as `schema` says, or an IndexFileError naming `where`, the field and why. */
export function parseWith<T>(schema: z.ZodType<T>, json: unknown, where: string, error: (message: string) => Error): T {
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw error(`${where} is malformed: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
}
