/**
 * `npm start`: make a sample dataset (if there is none), build its indexes, and show what a
 * few queries prune. Everything runs locally; no AWS account needed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../lib/cli/main.js';
import { query } from '../lib/query/evaluate.js';
import { inspect } from '../lib/cli/inspect.js';
import { useThroughputGc } from '../lib/runtime.js';
import { writeSampleDataset } from './sample-data.js';

// As the CLI does (bin/scalar-index.js): see lib/runtime.ts.
useThroughputGc('large-builds');

const root = path.resolve(process.argv[2] ?? 'sample-data');
if (!fs.existsSync(path.join(root, 'data'))) {
  const fragments = 12;
  const rowsPerFragment = 250_000;
  process.stderr.write(`writing a sample dataset: ${fragments} fragments × ${rowsPerFragment.toLocaleString()} rows into ${root}/data …\n`);
  writeSampleDataset(root, { fragments, rowsPerFragment });
}

const started = Date.now();
const code = await main([
  'build', root,
  '--index', 'region:bitmap', '--index', 'category:bitmap',
  '--index', 'price:zonemap', '--index', 'ts:zonemap', '--index', 'id:zonemap',
]);
if (code !== 0) process.exit(code);
process.stdout.write(`build took ${((Date.now() - started) / 1000).toFixed(1)} s\n\n`);

const info = await inspect(root);
const total = info.fragments.rows;
const queries = [
  "region = 'APAC'",
  'category IN (7, 42) AND price > 250',
  "ts BETWEEN '2026-01-03T06:00:00Z' AND '2026-01-03T07:00:00Z'",
  'id = 1234567',
  'price IS NULL OR price = NaN',
  "NOT (region = 'EU-West') AND category < 3",
];
for (const q of queries) {
  const t = performance.now();
  const r = await query(root, q);
  const ms = (performance.now() - t).toFixed(1);
  const kept = ((100 * r.rows) / total).toFixed(2);
  process.stdout.write(
    `${q}\n  → ${r.exact ? 'exact' : 'candidates'}: ${r.rows.toLocaleString()} of ${total.toLocaleString()} rows (${kept}%), ` +
      `${r.fragments.length} of ${info.fragments.count} fragments, ${ms} ms, via ${r.indexesUsed.join(', ') || 'no index'}\n`,
  );
}
process.stdout.write(`\nTry it yourself: npx scalar-index query ${path.relative(process.cwd(), root) || '.'} --where "region = 'LATAM' AND price < 20" --json\n`);
