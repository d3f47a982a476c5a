/** What `scalar-index inspect` reports about the latest manifest version. */
import { openDataset } from '../dataset.js';
import { loadLatestManifest } from '../manifest/manifest.js';

export interface InspectResult {
  dataset: string;
  version: number;
  createdAt: string | null;
  fragments: { count: number; rows: number; list: { id: number; path: string; rows: number; size: number; failed?: string }[] };
  indexes: {
    name: string;
    column: string;
    type: string;
    params: { rowsPerZone?: number };
    valueType: string;
    fragmentsCovered: number;
    fragmentsMissing: number[];
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
      count: m.fragments.length,
      rows: m.fragments.reduce((n, f) => n + f.rows, 0),
      list: m.fragments.map(({ id, path, rows, size, failed }) => ({ id, path, rows, size, ...(failed && { failed }) })),
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
        fragmentsMissing: m.fragments.filter((f) => !covered.has(f.id)).map((f) => f.id),
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
  const failed = info.fragments.list.filter((f) => f.failed);
  lines.push(`fragments: ${info.fragments.count} registered, ${info.fragments.rows} rows${failed.length ? `, ${failed.length} failed` : ''}`);
  for (const f of failed) lines.push(`  failed: ${f.path} (id ${f.id}): ${f.failed}`);
  if (info.indexes.length === 0) lines.push('indexes: none defined');
  for (const ix of info.indexes) {
    const params = ix.params.rowsPerZone !== undefined ? ` rows_per_zone=${ix.params.rowsPerZone}` : '';
    const missing = ix.fragmentsMissing.length ? `, ${ix.fragmentsMissing.length} not covered` : '';
    lines.push(`  ${ix.name}: ${ix.type} on ${ix.column} (${ix.valueType})${params}; ${ix.fragmentsCovered} fragments covered${missing}; ${ix.bytes} bytes`);
  }
  return `${lines.join('\n')}\n`;
}
