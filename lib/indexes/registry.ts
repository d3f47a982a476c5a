/** Index kinds by name. Adding a kind means adding its file and one line here. */
import { UsageError } from '../errors.js';
import { bitmapIndex } from './bitmap.js';
import { INDEX_TYPES, type IndexKind, type IndexType } from './kind.js';
import { zonemapIndex } from './zonemap.js';

const KINDS: Record<IndexType, IndexKind> = {
  zonemap: zonemapIndex,
  bitmap: bitmapIndex,
};

export { INDEX_TYPES };

export function indexKind(type: string): IndexKind {
  const kind = KINDS[type as IndexType];
  if (!kind) throw new UsageError(`unknown index type '${type}' (expected one of: ${INDEX_TYPES.join(', ')})`);
  return kind;
}
