/**
 * `s3://bucket/prefix` URIs and bucket names. Kept apart from the S3 adapter so code that
 * only parses URIs (the S3-event trigger) does not load the AWS SDK.
 */
import { InvalidPathError } from '../errors.js';
import { checkKey } from './store.js';

export interface S3Location {
  bucket: string;
  /** Key prefix of the dataset root, without leading or trailing `/`; may be empty. */
  prefix: string;
}

/** Throw InvalidPathError unless `bucket` follows the S3 bucket naming rules. */
export function checkBucketName(bucket: string, context = ''): string {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new InvalidPathError(`invalid S3 bucket name ${JSON.stringify(bucket)}${context}: 3-63 lowercase letters, digits, '.' or '-'`);
  }
  return bucket;
}

/**
 * Parse `s3://bucket/prefix` and validate both parts.
 *
 * @example
 * parseS3Uri('s3://sales-data/datasets/2026/') // { bucket: 'sales-data', prefix: 'datasets/2026' }
 */
export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(uri);
  if (!m) throw new InvalidPathError(`not an S3 URI: ${JSON.stringify(uri)} (expected s3://bucket/prefix)`);
  const bucket = checkBucketName(m[1]!, ` in ${uri}`);
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix) {
    try {
      checkKey(prefix);
    } catch (err) {
      throw new InvalidPathError(`invalid dataset prefix in ${uri}: ${(err as Error).message}`);
    }
  }
  return { bucket, prefix };
}
