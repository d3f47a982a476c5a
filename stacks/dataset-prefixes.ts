/**
 * Dataset prefixes: which parts of the bucket the stack indexes. Each one becomes S3 event
 * notification filters, IAM resource patterns and the `DATASET_PREFIXES` of the trigger and
 * the reconcile, so they are validated once, here, at synth time.
 *
 * - `datasets/sales`: exactly one dataset root. Notifications filter on `datasets/sales/data/`,
 *   so nothing the builds write under `_index/` reaches the queue.
 * - `datasets/*`: any dataset root `datasets/<name>` (one or more segments). S3 filters cannot
 *   hold a wildcard, so notifications filter on `datasets/`, and the trigger infers each root
 *   from the key (the part before `data/`) and drops the project's own `_index/` writes; of
 *   those, only the `.arrow` index and part files get through the suffix filters.
 */
import { FRAGMENT_EXTENSIONS } from '../lib/fragments/keys.js';

/** One validated dataset prefix. */
export interface DatasetPrefix {
  /** As configured, without leading or trailing `/`: `datasets/sales` or `datasets/*`. */
  readonly pattern: string;
  /** True for `<base>/*`, any root under `<base>/`. */
  readonly wildcard: boolean;
  /** The dataset root as an IAM resource pattern; equal to `pattern`. */
  readonly root: string;
  /** The key prefix of S3 event notification filters: `datasets/sales/data/` or `datasets/`. */
  readonly notificationPrefix: string;
}

export const DEFAULT_DATASET_PREFIXES: readonly string[] = ['datasets/*'];

/**
 * The suffix filters of the S3 notifications: the last letter of each fragment extension, in
 * lower and upper case (`w W s S r R t T`). S3 suffix filters are case-sensitive while
 * fragment detection is not (`.PARQUET`, `.Arrow` are fragments), and every case spelling of
 * the four extensions would take 352 filters per prefix: these 8 let every spelling through,
 * plus other keys ending in those letters, which the trigger skips (isFragmentKey).
 */
export const FRAGMENT_SUFFIX_FILTERS: readonly string[] = [...new Set(FRAGMENT_EXTENSIONS.flatMap((e) => [e.slice(-1).toLowerCase(), e.slice(-1).toUpperCase()]))];

// Characters S3 calls safe, plus `=` and `+` (Hive-style partition names). IAM wildcards
// (`*`, `?`), policy variables (`$`) and the `DATASET_PREFIXES` separator (`,`) are excluded.
const SEGMENT = /^[A-Za-z0-9!_.'()=+-]+$/;
// Segments that would make a key ambiguous with the dataset layout (`<root>/data/`, `<root>/_index/`).
const RESERVED_SEGMENTS = new Set(['data', '_index', '.', '..']);

export class DatasetPrefixError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetPrefixError';
  }
}

/**
 * Validate dataset prefixes: `a/b` (one root) or `a/*` (any root under `a/`). Leading and
 * trailing `/` are dropped and duplicates removed. Prefixes whose notification filters overlap
 * are refused, because S3 rejects overlapping notification configurations at deploy time.
 *
 * @throws DatasetPrefixError naming the offending prefix.
 * @example
 * parseDatasetPrefixes(['datasets/sales', 'logs/*'])
 * // [{ pattern: 'datasets/sales', wildcard: false, root: 'datasets/sales', notificationPrefix: 'datasets/sales/data/' },
 * //  { pattern: 'logs/*', wildcard: true, root: 'logs/*', notificationPrefix: 'logs/' }]
 */
export function parseDatasetPrefixes(values: readonly string[]): DatasetPrefix[] {
  const out: DatasetPrefix[] = [];
  for (const raw of values) {
    const pattern = raw.trim().replace(/^\/+|\/+$/g, '');
    if (out.some((p) => p.pattern === pattern)) continue;
    const bad = (why: string) => new DatasetPrefixError(`invalid dataset prefix ${JSON.stringify(raw)}: ${why}`);
    if (!pattern) throw bad('it is empty (a dataset at the bucket root is not supported by the stack)');
    const segments = pattern.split('/');
    const wildcard = segments[segments.length - 1] === '*';
    const literal = wildcard ? segments.slice(0, -1) : segments;
    if (literal.length === 0) throw bad('it needs at least one literal segment before "*", e.g. "datasets/*"');
    for (const s of literal) {
      if (s === '') throw bad('it has an empty segment ("//")');
      if (s.includes('*')) throw bad('"*" is only allowed as the whole last segment, e.g. "datasets/*"');
      if (RESERVED_SEGMENTS.has(s)) throw bad(`"${s}" cannot be a segment of a dataset root`);
      if (!SEGMENT.test(s)) throw bad(`segment "${s}" may only hold letters, digits and ! _ . ' ( ) = + -`);
    }
    const base = literal.join('/');
    out.push({ pattern, wildcard, root: pattern, notificationPrefix: wildcard ? `${base}/` : `${base}/data/` });
  }
  if (out.length === 0) throw new DatasetPrefixError('at least one dataset prefix is needed');
  for (const a of out) {
    for (const b of out) {
      if (a !== b && b.notificationPrefix.startsWith(a.notificationPrefix)) {
        throw new DatasetPrefixError(
          `dataset prefixes "${a.pattern}" and "${b.pattern}" overlap: S3 refuses overlapping event notification filters (keep only "${a.pattern}")`,
        );
      }
    }
  }
  return out;
}

/**
 * `DATASET_PREFIXES` for the trigger and the reconcile: every prefix as configured, literal
 * roots and patterns alike (lib/workflow/trigger.ts parses them).
 *
 * @example
 * lambdaDatasetPrefixes(parseDatasetPrefixes(['datasets/sales', 'logs/*'])) // 'datasets/sales,logs/*'
 */
export function lambdaDatasetPrefixes(prefixes: readonly DatasetPrefix[]): string {
  return prefixes.map((p) => p.pattern).join(',');
}

/**
 * A dataset root to show in examples: the root itself, or `<base>/my-dataset` for a wildcard.
 *
 * @example
 * exampleDatasetRoot(parseDatasetPrefixes(['datasets/*'])[0]!) // 'datasets/my-dataset'
 */
export function exampleDatasetRoot(prefix: DatasetPrefix): string {
  return prefix.wildcard ? `${prefix.root.slice(0, -1)}my-dataset` : prefix.root;
}
