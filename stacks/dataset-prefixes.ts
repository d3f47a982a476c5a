/**
 * Dataset prefixes: which parts of the bucket the stack indexes. Each one becomes S3 event
 * notification filters, IAM resource patterns and the trigger's `DATASET_PREFIXES`, so they
 * are validated once, here, at synth time.
 *
 * - `datasets/sales`: exactly one dataset root. Notifications filter on `datasets/sales/data/`.
 * - `datasets/*`: any dataset root under `datasets/`. S3 filters cannot hold a wildcard, so
 *   notifications filter on `datasets/`, and the trigger infers each root from the key (the
 *   part before `data/`) and drops the project's own `_index/` writes.
 */

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

/** Fragment files S3 notifies about; the same list as `FRAGMENT_EXTENSIONS` in lib/fragments/keys.ts (a test pins it). */
export const FRAGMENT_SUFFIXES: readonly string[] = ['.arrow', '.arrows', '.feather', '.parquet'];

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
 * The trigger's `DATASET_PREFIXES`: the roots when all are literal, or empty (infer the root
 * from the key) when any is a wildcard. S3 only delivers keys under the configured
 * notification prefixes, so inference never sees a key outside them.
 *
 * @example
 * triggerDatasetPrefixes(parseDatasetPrefixes(['datasets/sales', 'datasets/web'])) // 'datasets/sales,datasets/web'
 * triggerDatasetPrefixes(parseDatasetPrefixes(['datasets/*'])) // ''
 */
export function triggerDatasetPrefixes(prefixes: readonly DatasetPrefix[]): string {
  return prefixes.some((p) => p.wildcard) ? '' : prefixes.map((p) => p.root).join(',');
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
