/**
 * The manifest's schema in zod: the reference for what a manifest version holds, checked on
 * every commit, and the source of its types. Readers check versions with `shape.ts` instead,
 * which accepts exactly what this schema accepts (test/manifest/shape.test.ts holds them
 * together) without loading zod into every query.
 */
import { z } from 'zod';
import { isEncodedCrc32c } from '../format/crc32c.js';
import { MANIFEST_FORMAT } from './shape.js';

export const FragmentEntrySchema = z.object({
  id: z.number().int().min(0).max(0xffffffff),
  path: z.string().min(1),
  size: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  fingerprint: z.string().min(1),
  /**
   * Set when the fragment could not be indexed and the build was told to skip bad fragments:
   * why. A failed fragment is registered (its id is never reused) but no index covers it, so
   * every query lists it in `unindexedFragments`.
   */
  failed: z.string().optional(),
});

export const IndexFileSchema = z.object({
  name: z.string(),
  key: z.string(),
  size: z.number().int().nonnegative(),
  /** CRC32C of the whole file, base64 of the big-endian 4 bytes (as S3 encodes it). */
  crc32c: z.string().refine(isEncodedCrc32c, 'not a base64 CRC32C').optional(),
});

export const IndexEntrySchema = z.object({
  name: z.string().min(1),
  column: z.string().min(1),
  type: z.enum(['zonemap', 'bitmap']),
  params: z.object({ rowsPerZone: z.number().int().positive().optional() }),
  /** Column type signature (column-type.ts), fixed when the index is first built. */
  valueType: z.string(),
  files: z.array(IndexFileSchema),
  /** Covered fragment ids, ascending. */
  fragmentIds: z.array(z.number().int().min(0)),
  updatedAt: z.string(),
});

export const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.number().int().nonnegative(),
  createdAt: z.string(),
  nextFragmentId: z.number().int().min(0).max(2 ** 32),
  fragments: z.array(FragmentEntrySchema),
  indexes: z.array(IndexEntrySchema),
});

export type FragmentEntry = z.infer<typeof FragmentEntrySchema>;
export type IndexEntry = z.infer<typeof IndexEntrySchema>;
export type Manifest = z.infer<typeof ManifestSchema>;
