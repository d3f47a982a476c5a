/**
 * The S3-event trigger's decisions, as pure functions: which builds a batch of queued S3 event
 * notifications (S3 → SQS) asks for, and under which Step Functions execution names.
 *
 * - One build per dataset (`s3://bucket/root`) per batch, whatever the number of new fragments:
 *   a build registers and indexes every new fragment it finds, not only the ones that woke it.
 * - Execution names are deterministic: a hash of the dataset and the sorted set of
 *   (key, sequencer or ETag) of the fragments that triggered it. S3 delivers notifications at
 *   least once and SQS redelivers, so the same events must give the same name; Step Functions
 *   then refuses the second start (names are idempotency keys).
 * - Nothing here knows about Lambda or the AWS SDK. Messages are `{ messageId, body }`.
 * - It imports nothing heavy: the fragment extensions and bucket-name rule come from
 *   dependency-free modules (fragments/keys.ts, store/s3-uri.ts), so the trigger function's
 *   cold start loads neither the S3 SDK nor parquet-wasm (a test bundles it and checks).
 */
import { createHash } from 'node:crypto';
import { InvalidPathError, UsageError } from '../errors.js';
import { FRAGMENT_EXTENSIONS, isFragmentKey } from '../fragments/keys.js';
import { checkBucketName } from '../store/s3-uri.js';
import { checkKey } from '../store/store.js';


/** One queued message, as far as the trigger cares (an SQS record has both fields). */
export interface QueueMessage {
  messageId: string;
  body: string;
}

/** A configured dataset root, or a pattern of roots, optionally limited to one bucket. */
export interface DatasetRoot {
  /** Only events from this bucket match; any bucket when absent. */
  bucket?: string;
  /**
   * Key prefix of the dataset root, without leading or trailing `/`; `''` is the bucket root.
   * For a wildcard, the base the roots sit under.
   */
  prefix: string;
  /** `<prefix>/*`: any root `<prefix>/<one or more segments>`, the segments before a `data/` one. */
  wildcard?: boolean;
}

/** A fragment whose creation asked for a build. */
export interface TriggeringFragment {
  /** The object key, URL-decoded. */
  key: string;
  /** The event's `sequencer`, else the object's ETag: which write of that key it was. */
  version: string;
}

/** One execution to start. */
export interface BuildToStart {
  /** `s3://bucket/root`: the state machine input is `{ dataset }`. */
  dataset: string;
  /** The execution name: at most 80 characters of `[A-Za-z0-9_-]`, the same for the same events. */
  name: string;
  /** Sorted by key then version, without duplicates. */
  fragments: TriggeringFragment[];
  /** The SQS messages that asked for this build (sorted, unique): the ones to retry if it fails. */
  messageIds: string[];
}

/** An event record (or a whole message without records) that asks for nothing, and why. */
export interface SkippedRecord {
  messageId: string;
  /** The decoded object key, when the record has one. */
  key?: string;
  reason: string;
}

/** A message whose body is not an S3 event notification at all. */
export interface MalformedMessage {
  messageId: string;
  reason: string;
}

export interface TriggerPlan {
  /** Sorted by dataset. */
  builds: BuildToStart[];
  skipped: SkippedRecord[];
  malformed: MalformedMessage[];
}

/** Step Functions execution names: at most 80 characters. */
export const EXECUTION_NAME_MAX = 80;
const HASH_CHARS = 32; // 128 bits of SHA-256, hex
/** Room left at the end of a name for the `-r<n>` of an automatic retry (recovery.ts), n ≤ 99. */
export const RETRY_SUFFIX_ROOM = 4;
const SLUG_MAX = EXECUTION_NAME_MAX - HASH_CHARS - 1 - RETRY_SUFFIX_ROOM;

/**
 * Parse the `DATASET_PREFIXES` setting: comma-separated dataset roots, each a key prefix
 * (`datasets/sales`, any bucket), a pattern (`datasets/*`: every root under `datasets/`), or
 * either as an S3 URI (`s3://bucket/datasets/sales`, `s3://bucket/datasets/*`: that bucket
 * only; `s3://bucket` for a dataset at the bucket root). Empty or absent means "infer the root".
 *
 * @throws UsageError naming DATASET_PREFIXES and the bad entry.
 * @example
 * parseDatasetPrefixes('datasets/sales, s3://logs/web/, logs/*')
 * // [{ prefix: 'datasets/sales' }, { bucket: 'logs', prefix: 'web' }, { prefix: 'logs', wildcard: true }]
 * parseDatasetPrefixes(undefined) // [] (infer)
 */
export function parseDatasetPrefixes(value: string | undefined): DatasetRoot[] {
  const roots: DatasetRoot[] = [];
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim();
    if (!entry) continue;
    try {
      const uri = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(entry);
      const bucket = uri ? checkBucketName(uri[1]!) : undefined;
      let prefix = uri ? (uri[2] ?? '').replace(/\/+$/, '') : entry.replace(/^\/+|\/+$/g, '');
      if (!uri && !prefix) throw new InvalidPathError('a bare "/" is not a dataset root (write s3://bucket for a bucket root)');
      const wildcard = prefix === '*' || prefix.endsWith('/*');
      if (wildcard) {
        prefix = prefix.slice(0, -2);
        if (!prefix) throw new InvalidPathError('a pattern needs a base before "*", e.g. datasets/*');
      }
      if (prefix.includes('*')) throw new InvalidPathError('"*" is only allowed as the whole last segment, e.g. datasets/*');
      roots.push({ ...(bucket !== undefined && { bucket }), prefix: prefix && checkKey(prefix), ...(wildcard && { wildcard }) });
    } catch (err) {
      throw new UsageError(`invalid DATASET_PREFIXES entry ${JSON.stringify(entry)}: ${(err as Error).message}`);
    }
  }
  return roots;
}

/**
 * Decode an object key as S3 event notifications encode it: form-style, `+` for a space and
 * percent-encoding for the rest (a literal `+` arrives as `%2B`).
 *
 * @throws URIError for a malformed percent sequence.
 * @example
 * decodeEventKey('datasets/sales/data/day%3D01/part+1.parquet') // 'datasets/sales/data/day=01/part 1.parquet'
 */
export function decodeEventKey(raw: string): string {
  return decodeURIComponent(raw.replace(/\+/g, ' '));
}

/**
 * The dataset root a decoded key belongs to: the longest root, among those configured, whose
 * `data/` holds the key. A wildcard `<base>/*` matches a root `<base>/<name>` (one or more
 * segments, those before the key's first `data` segment after the base), never `<base>`
 * itself. With no roots configured, the root is the key part before its first `data/` segment.
 * Returns the reason instead when there is none.
 *
 * @example
 * datasetRootOf('bucket', 'datasets/sales/data/a.arrow', []) // { root: 'datasets/sales' }
 * datasetRootOf('bucket', 'datasets/sales/data/a.arrow', [{ prefix: 'datasets', wildcard: true }]) // { root: 'datasets/sales' }
 * datasetRootOf('bucket', 'datasets/data/a.arrow', [{ prefix: 'datasets', wildcard: true }]) // { reason: '… needs a name after datasets/ …' }
 * datasetRootOf('bucket', 'datasets/sales/_index/m.json', []) // { reason: 'not under a data/ directory' }
 */
export function datasetRootOf(bucket: string, key: string, roots: readonly DatasetRoot[]): { root: string } | { reason: string } {
  if (roots.length > 0) {
    let best: string | undefined;
    let why = 'not under <root>/data/ of any dataset in DATASET_PREFIXES';
    for (const r of roots) {
      if (r.bucket !== undefined && r.bucket !== bucket) continue;
      if (r.wildcard) {
        const found = inferRoot(key, r.prefix);
        if ('reason' in found) {
          if (key.startsWith(`${r.prefix}/`)) why = found.reason;
          continue;
        }
        if (best === undefined || found.root.length > best.length) best = found.root;
        continue;
      }
      const dataDir = r.prefix ? `${r.prefix}/data/` : 'data/';
      if (key.startsWith(dataDir) && (best === undefined || r.prefix.length > best.length)) best = r.prefix;
    }
    return best !== undefined ? { root: best } : { reason: why };
  }
  return inferRoot(key, '');
}

/**
 * The root of a key below `base` (`''`: anywhere): the segments before its first `data`
 * segment, at least one of them when there is a base.
 */
function inferRoot(key: string, base: string): { root: string } | { reason: string } {
  if (base && !key.startsWith(`${base}/`)) return { reason: `not under ${base}/` };
  const segments = (base ? key.slice(base.length + 1) : key).split('/');
  const at = segments.indexOf('data');
  if (at < 0 || at === segments.length - 1) return { reason: 'not under a data/ directory' };
  const rootSegments = segments.slice(0, at);
  // The project's own files live under <root>/_index/; a "data" segment below it is not a dataset.
  if (rootSegments.includes('_index')) return { reason: 'inside an _index/ directory' };
  if (base && rootSegments.length === 0) {
    return { reason: `directly under the pattern's base ${base}/: a dataset root needs a name after it (${base}/<name>/data/)` };
  }
  return { root: [...(base ? [base] : []), ...rootSegments].join('/') };
}

/**
 * The execution name of a build: a readable tail of the dataset, then 128 bits of SHA-256 over
 * the dataset and the sorted, de-duplicated (key, version) pairs. Order and duplicates of the
 * fragments do not change it. At most 76 characters, so a retry can append `-r<n>`.
 *
 * @example
 * executionName('s3://bucket/datasets/sales', [{ key: 'datasets/sales/data/a.arrow', version: '0062' }])
 * // 'bucket-datasets-sales-' + 32 hex characters
 */
export function executionName(dataset: string, fragments: readonly TriggeringFragment[]): string {
  const canonical = JSON.stringify([dataset, sortFragments(fragments).map((f) => [f.key, f.version])]);
  const hash = createHash('sha256').update(canonical).digest('hex').slice(0, HASH_CHARS);
  let slug = dataset.replace(/^s3:\/\//i, '').replace(/[^A-Za-z0-9_-]+/g, '-');
  // Keep the most specific end of a long dataset path.
  if (slug.length > SLUG_MAX) slug = slug.slice(slug.length - SLUG_MAX);
  slug = slug.replace(/^-+|-+$/g, '') || 'dataset';
  return `${slug}-${hash}`;
}

/**
 * Decide which builds a batch of queued S3 event notifications asks for.
 *
 * - Only `ObjectCreated:*` records for a fragment file (`.arrow`, `.arrows`, `.feather`,
 *   `.parquet`) under `<root>/data/` count; every other record is listed in `skipped` with the
 *   reason, as are `s3:TestEvent` messages and keys that try to escape the dataset (`..`).
 * - A body that is not JSON, or is JSON but not an S3 notification, is listed in `malformed`.
 *   Retrying cannot fix it, so the caller should log it and let it go (see functions/trigger.ts).
 *
 * @param roots From {@link parseDatasetPrefixes}; empty means "infer the root from `data/`".
 * @example
 * const body = JSON.stringify({ Records: [{ eventSource: 'aws:s3', eventName: 'ObjectCreated:Put',
 *   s3: { bucket: { name: 'bucket' }, object: { key: 'datasets/sales/data/part-0001.parquet', sequencer: '0062' } } }] });
 * const { builds } = planTriggeredBuilds([{ messageId: 'm1', body }]);
 * // builds: [{ dataset: 's3://bucket/datasets/sales', name: 'bucket-datasets-sales-…', fragments: [...], messageIds: ['m1'] }]
 */
export function planTriggeredBuilds(messages: readonly QueueMessage[], roots: readonly DatasetRoot[] = []): TriggerPlan {
  const byDataset = new Map<string, { fragments: Map<string, TriggeringFragment>; messageIds: Set<string> }>();
  const skipped: SkippedRecord[] = [];
  const malformed: MalformedMessage[] = [];

  for (const message of messages) {
    const { messageId } = message;
    let body: unknown;
    try {
      body = JSON.parse(message.body);
    } catch (err) {
      malformed.push({ messageId, reason: `body is not JSON: ${(err as Error).message}` });
      continue;
    }
    if (isObject(body) && body.Event === 's3:TestEvent') {
      skipped.push({ messageId, reason: 's3:TestEvent (sent by S3 when notifications are configured)' });
      continue;
    }
    if (!isObject(body) || !Array.isArray(body.Records)) {
      malformed.push({ messageId, reason: 'body is not an S3 event notification (no Records array)' });
      continue;
    }
    if (body.Records.length === 0) skipped.push({ messageId, reason: 'notification has no records' });

    for (const record of body.Records as unknown[]) {
      const found = fragmentOf(record, roots);
      if ('reason' in found) {
        skipped.push({ messageId, ...(found.key !== undefined && { key: found.key }), reason: found.reason });
        continue;
      }
      let entry = byDataset.get(found.dataset);
      if (!entry) byDataset.set(found.dataset, (entry = { fragments: new Map(), messageIds: new Set() }));
      entry.fragments.set(JSON.stringify([found.fragment.key, found.fragment.version]), found.fragment);
      entry.messageIds.add(messageId);
    }
  }

  const builds = [...byDataset.entries()]
    .sort(([a], [b]) => compare(a, b))
    .map(([dataset, { fragments, messageIds }]): BuildToStart => {
      const sorted = sortFragments([...fragments.values()]);
      return { dataset, name: executionName(dataset, sorted), fragments: sorted, messageIds: [...messageIds].sort(compare) };
    });
  return { builds, skipped, malformed };
}

/** One record → the fragment and dataset it names, or why it names none. */
function fragmentOf(
  record: unknown,
  roots: readonly DatasetRoot[],
): { dataset: string; fragment: TriggeringFragment } | { key?: string; reason: string } {
  if (!isObject(record)) return { reason: 'record is not an object' };
  if (record.eventSource !== 'aws:s3') return { reason: `not an S3 event record (eventSource ${JSON.stringify(record.eventSource)})` };
  const s3 = isObject(record.s3) ? record.s3 : {};
  const bucket = isObject(s3.bucket) ? s3.bucket.name : undefined;
  const object = isObject(s3.object) ? s3.object : {};
  if (typeof bucket !== 'string' || typeof object.key !== 'string') return { reason: 'record has no s3.bucket.name or s3.object.key' };

  let key: string;
  try {
    key = decodeEventKey(object.key);
  } catch {
    return { reason: `object key ${JSON.stringify(object.key)} is not valid URL encoding` };
  }
  const eventName = String(record.eventName);
  if (!eventName.startsWith('ObjectCreated:')) return { key, reason: `${eventName} is not an ObjectCreated event` };
  if (key.endsWith('/')) return { key, reason: 'a folder marker, not a file' };
  try {
    checkKey(key);
  } catch (err) {
    return { key, reason: (err as Error).message };
  }
  const where = datasetRootOf(bucket, key, roots);
  if ('reason' in where) return { key, reason: where.reason };
  if (!isFragmentKey(key)) return { key, reason: `not a fragment file (${FRAGMENT_EXTENSIONS.join(', ')})` };
  try {
    checkBucketName(bucket);
  } catch (err) {
    return { key, reason: (err as Error).message };
  }
  const dataset = where.root ? `s3://${bucket}/${where.root}` : `s3://${bucket}`;
  const version = typeof object.sequencer === 'string' ? object.sequencer : typeof object.eTag === 'string' ? object.eTag : '';
  return { dataset, fragment: { key, version } };
}


function sortFragments(fragments: readonly TriggeringFragment[]): TriggeringFragment[] {
  const unique = new Map(fragments.map((f) => [JSON.stringify([f.key, f.version]), f]));
  return [...unique.values()].sort((a, b) => compare(a.key, b.key) || compare(a.version, b.version));
}

/** Code-unit order, independent of the locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
