/** Index kinds by name. Adding a kind means adding its file and one line here. */
import { UsageError } from '../errors.js';
import { bitmapIndex } from './bitmap.js';
import type { IndexKind, IndexType } from './kind.js';
import { zonemapIndex } from './zonemap.js';

const KINDS: Record<IndexType, IndexKind> = {
  zonemap: zonemapIndex,
  bitmap: bitmapIndex,
};

export const INDEX_TYPES = Object.keys(KINDS) as IndexType[];

export function indexKind(type: string): IndexKind {
  const kind = KINDS[type as IndexType];
  if (!kind) throw new UsageError(`unknown index type '${type}' (expected one of: ${INDEX_TYPES.join(', ')})`);
  return kind;
}
