/** What `scalar-index inspect` reports about the latest manifest version. */
import { openDataset } from '../dataset.js';
import { loadLatestManifest } from '../manifest/manifest.js';

export interface InspectResult {
  dataset: string;
  version: number;
  createdAt: string | null;
  /** `count` and `rows` leave out removed fragments; `list` has every registered one. */
  fragments: { count: number; rows: number; removed: number; list: { id: number; path: string; rows: number; size: number; failed?: string; removed?: string }[] };
  indexes: {
    name: string;
    column: string;
    type: string;
    params: { rowsPerZone?: number };
    valueType: string;
    fragmentsCovered: number;
    fragmentsMissing: number[];
    /** Fragments whose rows the files still hold though they no longer count (removed since); the next merge drops them. */
    fragmentsStale: number[];
    bytes: number;
    files: { name: string; key: string; size: number }[];
    updatedAt: string;
  }[];
}

export async function inspect(dataset: string): Promise<InspectResult> {
  const { store } = openDataset(dataset);
  const m = await loadLatestManifest(store);
  return {
    dataset,
    version: m.version,
    createdAt: m.version > 0 ? m.createdAt : null,
    fragments: {
      count: m.fragments.filter((f) => f.removed === undefined).length,
      rows: m.fragments.reduce((n, f) => n + (f.removed === undefined ? f.rows : 0), 0),
      removed: m.fragments.filter((f) => f.removed !== undefined).length,
      list: m.fragments.map(({ id, path, rows, size, failed, removed }) => ({ id, path, rows, size, ...(failed && { failed }), ...(removed && { removed }) })),
    },
    indexes: m.indexes.map((e) => {
      const covered = new Set(e.fragmentIds);
      return {
        name: e.name,
        column: e.column,
        type: e.type,
        params: e.params,
        valueType: e.valueType,
        fragmentsCovered: e.fragmentIds.length,
        fragmentsMissing: m.fragments.filter((f) => f.removed === undefined && !covered.has(f.id)).map((f) => f.id),
        fragmentsStale: e.staleFragmentIds ?? [],
        bytes: e.files.reduce((n, f) => n + f.size, 0),
        files: e.files,
        updatedAt: e.updatedAt,
      };
    }),
  };
}

export function formatInspect(info: InspectResult): string {
  const lines: string[] = [];
  if (info.version === 0) return `${info.dataset}: no index versions yet (run scalar-index build)\n`;
  lines.push(`${info.dataset}: version ${info.version} (${info.createdAt})`);
  const failed = info.fragments.list.filter((f) => f.failed && !f.removed);
  lines.push(
    `fragments: ${info.fragments.count} registered, ${info.fragments.rows} rows${failed.length ? `, ${failed.length} failed` : ''}${info.fragments.removed ? `; ${info.fragments.removed} removed (gone from data/)` : ''}`,
  );
  for (const f of failed) lines.push(`  failed: ${f.path} (id ${f.id}): ${f.failed}`);
  if (info.indexes.length === 0) lines.push('indexes: none defined');
  for (const ix of info.indexes) {
    const params = ix.params.rowsPerZone !== undefined ? ` rows_per_zone=${ix.params.rowsPerZone}` : '';
    const missing = `${ix.fragmentsMissing.length ? `, ${ix.fragmentsMissing.length} not covered` : ''}${ix.fragmentsStale.length ? `, rows of ${ix.fragmentsStale.length} removed fragment(s) awaiting the next merge` : ''}`;
    lines.push(`  ${ix.name}: ${ix.type} on ${ix.column} (${ix.valueType})${params}; ${ix.fragmentsCovered} fragments covered${missing}; ${ix.bytes} bytes`);
  }
  return `${lines.join('\n')}\n`;
}
