/**
 * The deployment settings of the stack, from props or from CDK context
 * (`cdk deploy -c datasetPrefixes=datasets/sales,datasets/web -c buildPartMemoryMb=4096`).
 */
import type { Node } from 'constructs';
import { DEFAULT_DATASET_PREFIXES } from './dataset-prefixes.js';

/** What a deployment can choose. Every field is optional; see the defaults below. */
export interface ScalarIndexSettings {
  /** Index an existing bucket, by name, instead of creating one. */
  readonly bucketName?: string;
  /** Dataset roots (`datasets/sales`) or root patterns (`datasets/*`). Default `['datasets/*']`. */
  readonly datasetPrefixes?: readonly string[];
  /** Memory of the build-part function, in MB (128–10240). Default 3008. */
  readonly buildPartMemoryMb?: number;
  /** Distributed Map concurrency (1–10000), i.e. build-part functions at once. Default 40. */
  readonly maxConcurrency?: number;
  /** Rows per build-part group. Default: unset, the library sizes groups itself. */
  readonly groupRows?: number;
  /** How long SQS gathers S3 events before invoking the trigger, in seconds (0–300). Default 30. */
  readonly batchingWindowSeconds?: number;
}

/** Settings with every default filled in. */
export interface ResolvedSettings {
  readonly bucketName: string | undefined;
  readonly datasetPrefixes: readonly string[];
  readonly buildPartMemoryMb: number;
  readonly maxConcurrency: number;
  readonly groupRows: number | undefined;
  readonly batchingWindowSeconds: number;
}

/** Equal to DEFAULT_MAX_CONCURRENCY in lib/workflow/steps.ts (a test pins it). */
export const DEFAULT_MAX_CONCURRENCY = 40;
export const DEFAULT_BUILD_PART_MEMORY_MB = 3008;
export const DEFAULT_BATCHING_WINDOW_SECONDS = 30;

/** The context keys `settingsFromContext` reads: the ScalarIndexSettings field names. */
export const SETTINGS_CONTEXT_KEYS = ['bucketName', 'datasetPrefixes', 'buildPartMemoryMb', 'maxConcurrency', 'groupRows', 'batchingWindowSeconds'] as const;

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
  const bucketName = get('bucketName');
  const prefixes = get('datasetPrefixes');
  return {
    ...(bucketName !== undefined && { bucketName: String(bucketName).trim() }),
    ...(prefixes !== undefined && { datasetPrefixes: toList('datasetPrefixes', prefixes) }),
    ...numberSetting('buildPartMemoryMb', get('buildPartMemoryMb')),
    ...numberSetting('maxConcurrency', get('maxConcurrency')),
    ...numberSetting('groupRows', get('groupRows')),
    ...numberSetting('batchingWindowSeconds', get('batchingWindowSeconds')),
  };
}

/**
 * Fill in defaults and check ranges, with an error that names the setting.
 *
 * @example
 * resolveSettings({ maxConcurrency: 100 }).buildPartMemoryMb // 3008
 * resolveSettings({ maxConcurrency: 0 }) // throws SettingsError: maxConcurrency must be an integer from 1 to 10000 (got 0)
 */
export function resolveSettings(s: ScalarIndexSettings = {}): ResolvedSettings {
  const bucketName = s.bucketName?.trim() || undefined;
  if (bucketName !== undefined && (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucketName) || bucketName.includes('..'))) {
    throw new SettingsError(`bucketName ${JSON.stringify(bucketName)} is not a valid S3 bucket name`);
  }
  return {
    bucketName,
    datasetPrefixes: s.datasetPrefixes && s.datasetPrefixes.length > 0 ? [...s.datasetPrefixes] : [...DEFAULT_DATASET_PREFIXES],
    buildPartMemoryMb: intIn('buildPartMemoryMb', s.buildPartMemoryMb ?? DEFAULT_BUILD_PART_MEMORY_MB, 128, 10_240),
    maxConcurrency: intIn('maxConcurrency', s.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY, 1, 10_000),
    groupRows: s.groupRows === undefined ? undefined : intIn('groupRows', s.groupRows, 1, Number.MAX_SAFE_INTEGER),
    batchingWindowSeconds: intIn('batchingWindowSeconds', s.batchingWindowSeconds ?? DEFAULT_BATCHING_WINDOW_SECONDS, 0, 300),
  };
}

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
