/**
 * The deployment settings of the stack, from props or from CDK context
 * (`cdk deploy -c datasetPrefixes=datasets/sales,datasets/web -c buildPartMemoryMb=4096`).
 */
import type { Node } from 'constructs';
import { DEFAULT_DATASET_PREFIXES } from './dataset-prefixes.js';

/** What a deployment can choose. Every field is optional; see the defaults below. */
export interface ScalarIndexSettings {
  /** Index an existing bucket, by name, instead of creating one. It must be in the stack's Region. */
  readonly bucketName?: string;
  /** The KMS key (ARN) of an existing bucket encrypted with SSE-KMS: the functions get what S3 needs of it. */
  readonly bucketKmsKeyArn?: string;
  /** Dataset roots (`datasets/sales`) or root patterns (`datasets/*`). Default `['datasets/*']`. */
  readonly datasetPrefixes?: readonly string[];
  /** Memory of the build-part function, in MB (128–10240; new accounts may be capped at 3008). Default 3008. */
  readonly buildPartMemoryMb?: number;
  /** Distributed Map concurrency (1–10000), i.e. build-part functions at once. Default 40. */
  readonly maxConcurrency?: number;
  /** Rows per build-part group. Default: unset, the library sizes groups itself. */
  readonly groupRows?: number;
  /** How long SQS gathers S3 events before invoking the trigger, in seconds (0–300). Default 30. */
  readonly batchingWindowSeconds?: number;
  /** Queued S3 events per trigger invocation (1–10000; above 10 needs a batching window of at least 1 s). Default 100. */
  readonly batchSize?: number;
  /** Automatic retries of a failed event-started or reconcile build (0–10; 0 turns them off). Default 3. */
  readonly buildRetries?: number;
  /** Minutes between reconcile runs (5–1440), or 0 for no reconcile. Default 60. */
  readonly reconcileIntervalMinutes?: number;
  /** Send alarm notifications to this address (an SNS topic with an email subscription). */
  readonly alarmEmail?: string;
}

/** Settings with every default filled in. */
export interface ResolvedSettings {
  readonly bucketName: string | undefined;
  readonly bucketKmsKeyArn: string | undefined;
  readonly datasetPrefixes: readonly string[];
  readonly buildPartMemoryMb: number;
  readonly maxConcurrency: number;
  readonly groupRows: number | undefined;
  readonly batchingWindowSeconds: number;
  readonly batchSize: number;
  readonly buildRetries: number;
  readonly reconcileIntervalMinutes: number;
  readonly alarmEmail: string | undefined;
}

/** Equal to DEFAULT_MAX_CONCURRENCY in lib/workflow/steps.ts (a test pins it). */
export const DEFAULT_MAX_CONCURRENCY = 40;
export const DEFAULT_BUILD_PART_MEMORY_MB = 3008;
export const DEFAULT_BATCHING_WINDOW_SECONDS = 30;
export const DEFAULT_BATCH_SIZE = 100;
/** Equal to DEFAULT_RETRY_POLICY.maxRetries in lib/workflow/recovery.ts (a test pins it). */
export const DEFAULT_BUILD_RETRIES = 3;
export const DEFAULT_RECONCILE_INTERVAL_MINUTES = 60;

/** The context keys `settingsFromContext` reads: the ScalarIndexSettings field names. */
export const SETTINGS_CONTEXT_KEYS = [
  'bucketName',
  'bucketKmsKeyArn',
  'datasetPrefixes',
  'buildPartMemoryMb',
  'maxConcurrency',
  'groupRows',
  'batchingWindowSeconds',
  'batchSize',
  'buildRetries',
  'reconcileIntervalMinutes',
  'alarmEmail',
] as const;

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

/**
 * Read settings from CDK context. `-c key=value` gives strings, so lists are comma-separated
 * (or a JSON array) and numbers are parsed; `cdk.json` may hold real arrays and numbers.
 *
 * @example
 * // cdk synth -c datasetPrefixes=datasets/sales,datasets/web -c maxConcurrency=100
 * settingsFromContext(app.node) // { datasetPrefixes: ['datasets/sales', 'datasets/web'], maxConcurrency: 100 }
 */
export function settingsFromContext(node: Node): ScalarIndexSettings {
  const get = (key: string): unknown => {
    const v = node.tryGetContext(key);
    return v === '' || v === null ? undefined : v;
  };
  const text = (key: 'bucketName' | 'bucketKmsKeyArn' | 'alarmEmail') => {
    const v = get(key);
    return v === undefined ? {} : { [key]: String(v).trim() };
  };
  const prefixes = get('datasetPrefixes');
  return {
    ...text('bucketName'),
    ...text('bucketKmsKeyArn'),
    ...(prefixes !== undefined && { datasetPrefixes: toList('datasetPrefixes', prefixes) }),
    ...numberSetting('buildPartMemoryMb', get('buildPartMemoryMb')),
    ...numberSetting('maxConcurrency', get('maxConcurrency')),
    ...numberSetting('groupRows', get('groupRows')),
    ...numberSetting('batchingWindowSeconds', get('batchingWindowSeconds')),
    ...numberSetting('batchSize', get('batchSize')),
    ...numberSetting('buildRetries', get('buildRetries')),
    ...numberSetting('reconcileIntervalMinutes', get('reconcileIntervalMinutes')),
    ...text('alarmEmail'),
  };
}

/**
 * Fill in defaults and check each setting against what AWS accepts, with an error that names
 * the setting, so that a bad value fails `cdk synth` instead of the deployment.
 *
 * @example
 * resolveSettings({ maxConcurrency: 100 }).buildPartMemoryMb // 3008
 * resolveSettings({ maxConcurrency: 0 }) // throws SettingsError: maxConcurrency must be an integer from 1 to 10000 (got 0)
 * resolveSettings({ batchingWindowSeconds: 0 }) // throws SettingsError: batchSize 100 needs batchingWindowSeconds of at least 1 …
 */
export function resolveSettings(s: ScalarIndexSettings = {}): ResolvedSettings {
  const bucketName = s.bucketName?.trim() || undefined;
  if (bucketName !== undefined && (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucketName) || bucketName.includes('..'))) {
    throw new SettingsError(`bucketName ${JSON.stringify(bucketName)} is not a valid S3 bucket name`);
  }
  const bucketKmsKeyArn = s.bucketKmsKeyArn?.trim() || undefined;
  if (bucketKmsKeyArn !== undefined) {
    if (!KMS_KEY_ARN.test(bucketKmsKeyArn)) {
      throw new SettingsError(`bucketKmsKeyArn ${JSON.stringify(bucketKmsKeyArn)} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>; an alias ARN cannot be granted)`);
    }
    if (!bucketName) throw new SettingsError('bucketKmsKeyArn is for an existing bucket encrypted with SSE-KMS: set bucketName too (the bucket the stack creates uses SSE-S3)');
  }
  const batchingWindowSeconds = intIn('batchingWindowSeconds', s.batchingWindowSeconds ?? DEFAULT_BATCHING_WINDOW_SECONDS, 0, 300);
  const batchSize = intIn('batchSize', s.batchSize ?? DEFAULT_BATCH_SIZE, 1, 10_000);
  // Lambda refuses an SQS event source mapping with a batch size above 10 and no batching window.
  if (batchSize > 10 && batchingWindowSeconds < 1) {
    throw new SettingsError(`batchSize ${batchSize} needs batchingWindowSeconds of at least 1 (Lambda allows a batch size above 10 only with a batching window); set batchingWindowSeconds=1 or more, or batchSize=10 or less`);
  }
  const reconcileIntervalMinutes = s.reconcileIntervalMinutes ?? DEFAULT_RECONCILE_INTERVAL_MINUTES;
  if (reconcileIntervalMinutes !== 0 && !(Number.isSafeInteger(reconcileIntervalMinutes) && reconcileIntervalMinutes >= 5 && reconcileIntervalMinutes <= 1440)) {
    throw new SettingsError(`reconcileIntervalMinutes must be 0 (no reconcile) or an integer from 5 to 1440 (got ${reconcileIntervalMinutes})`);
  }
  const alarmEmail = s.alarmEmail?.trim() || undefined;
  if (alarmEmail !== undefined && !/^[^@\s,]+@[^@\s,]+\.[^@\s,]+$/.test(alarmEmail)) throw new SettingsError(`alarmEmail ${JSON.stringify(alarmEmail)} is not an email address`);
  return {
    bucketName,
    bucketKmsKeyArn,
    datasetPrefixes: s.datasetPrefixes && s.datasetPrefixes.length > 0 ? [...s.datasetPrefixes] : [...DEFAULT_DATASET_PREFIXES],
    buildPartMemoryMb: intIn('buildPartMemoryMb', s.buildPartMemoryMb ?? DEFAULT_BUILD_PART_MEMORY_MB, 128, 10_240),
    maxConcurrency: intIn('maxConcurrency', s.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY, 1, 10_000),
    groupRows: s.groupRows === undefined ? undefined : intIn('groupRows', s.groupRows, 1, Number.MAX_SAFE_INTEGER),
    batchingWindowSeconds,
    batchSize,
    buildRetries: intIn('buildRetries', s.buildRetries ?? DEFAULT_BUILD_RETRIES, 0, 10),
    reconcileIntervalMinutes,
    alarmEmail,
  };
}

const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

function intIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new SettingsError(`${name} must be an integer from ${min} to ${max} (got ${value})`);
  }
  return value;
}

function numberSetting(name: string, value: unknown): Record<string, number> {
  if (value === undefined) return {};
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new SettingsError(`context ${name}=${JSON.stringify(value)} is not an integer`);
  return { [name]: n };
}

function toList(name: string, value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  const text = String(value).trim();
  if (text.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      // fall through to the error below
    }
    throw new SettingsError(`context ${name} is neither a comma-separated list nor a JSON array of strings: ${text}`);
  }
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
