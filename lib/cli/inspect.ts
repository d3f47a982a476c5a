/** What `scalar-index inspect` reports about the latest manifest version. */
import { openDataset } from '../dataset.js';
import { allFragments, coverageOf, liveRanges, loadLatestManifest } from '../manifest/manifest.js';
import { countOf, idsOf, subtract, union, type IdRanges } from '../manifest/ranges.js';

export interface InspectResult {
  dataset: string;
  version: number;
  createdAt: string | null;
  /** `count` and `rows` leave out removed fragments; `list` has every registered one. */
  fragments: {
    count: number;
    rows: number;
    removed: number;
    /** Fragment table chunks the manifest lists. */
    chunks: number;
    list: { id: number; path: string; rows: number; size: number; failed?: string; removed?: boolean }[];
  };
  indexes: {
    name: string;
    column: string;
    type: string;
    params: { rowsPerZone?: number };
    valueType: string;
    fragmentsCovered: number;
    /** Live fragments no segment covers yet. */
    fragmentsMissing: number[];
    /** Fragments whose rows segments still hold though they no longer count (removed or failed since); compaction drops them. */
    fragmentsStale: number[];
    bytes: number;
    segments: { id: string; fragments: number; stale: number; rows: number; bytes: number; files: { name: string; key: string; size: number }[]; createdAt: string }[];
    updatedAt: string;
  }[];
}

/**
 * @example
 * const info = await inspect('s3://sales-data/datasets/2026');
 * console.log(`${info.fragments.count} fragments; ${info.indexes.map((ix) => `${ix.name}: ${ix.segments.length} segments`).join(', ')}`);
 */
export async function inspect(dataset: string): Promise<InspectResult> {
  const { store } = openDataset(dataset);
  const m = await loadLatestManifest(store);
  const fragments = await allFragments(store, m);
  const live = liveRanges(m);
  return {
    dataset,
    version: m.version,
    createdAt: m.version > 0 ? m.createdAt : null,
    fragments: {
      count: fragments.filter((f) => !f.removed).length,
      rows: fragments.reduce((n, f) => n + (f.removed ? 0 : f.rows), 0),
      removed: fragments.filter((f) => f.removed).length,
      chunks: m.fragments.chunks.length,
      list: fragments.map(({ id, path, rows, size, failed, removed }) => ({ id, path, rows, size, ...(failed !== undefined && { failed }), ...(removed && { removed }) })),
    },
    indexes: m.indexes.map((e) => {
      const covered = coverageOf(e);
      const stale = e.segments.reduce<IdRanges>((acc, s) => union(acc, s.stale ?? []), []);
      return {
        name: e.name,
        column: e.column,
        type: e.type,
        params: e.params,
        valueType: e.valueType,
        fragmentsCovered: countOf(covered),
        fragmentsMissing: [...idsOf(subtract(live, covered))],
        fragmentsStale: [...idsOf(stale)],
        bytes: e.segments.reduce((n, s) => n + s.bytes, 0),
        segments: e.segments.map((s) => ({
          id: s.id,
          fragments: countOf(s.fragments),
          stale: countOf(s.stale ?? []),
          rows: s.rows,
          bytes: s.bytes,
          files: s.files.map(({ name, key, size }) => ({ name, key, size })),
          createdAt: s.createdAt,
        })),
        updatedAt: e.updatedAt,
      };
    }),
  };
}

export function formatInspect(info: InspectResult): string {
  const lines: string[] = [];
  if (info.version === 0) return `${info.dataset}: no index versions yet (run scalar-index build)\n`;
  lines.push(`${info.dataset}: version ${info.version} (${info.createdAt})`);
  const failed = info.fragments.list.filter((f) => f.failed !== undefined && !f.removed);
  lines.push(
    `fragments: ${info.fragments.count} registered, ${info.fragments.rows} rows${failed.length ? `, ${failed.length} failed` : ''}${info.fragments.removed ? `; ${info.fragments.removed} removed (gone from data/)` : ''}`,
  );
  for (const f of failed) lines.push(`  failed: ${f.path} (id ${f.id}): ${f.failed}`);
  if (info.indexes.length === 0) lines.push('indexes: none defined');
  for (const ix of info.indexes) {
    const params = ix.params.rowsPerZone !== undefined ? ` rows_per_zone=${ix.params.rowsPerZone}` : '';
    const missing = `${ix.fragmentsMissing.length ? `, ${ix.fragmentsMissing.length} not covered` : ''}${ix.fragmentsStale.length ? `, rows of ${ix.fragmentsStale.length} removed or failed fragment(s) awaiting compaction` : ''}`;
    lines.push(`  ${ix.name}: ${ix.type} on ${ix.column} (${ix.valueType})${params}; ${ix.fragmentsCovered} fragments covered${missing}; ${ix.segments.length} segment(s), ${ix.bytes} bytes`);
  }
  return `${lines.join('\n')}\n`;
}
