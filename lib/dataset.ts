/**
 * Opening a dataset URI: a local path or `file:///abs/path` today; `s3://bucket/prefix`
 * plugs in through the same ObjectStore contract.
 */
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';
import { LocalStore } from './store/local.js';
import type { ObjectStore } from './store/store.js';

export interface Dataset {
  uri: string;
  store: ObjectStore;
}

export function openDataset(uri: string): Dataset {
  if (!uri || typeof uri !== 'string') throw new UsageError('a dataset path or URI is required');
  if (/^s3:\/\//i.test(uri)) {
    throw new UsageError(`S3 datasets are not supported by this build yet: ${uri} (use a local directory)`);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://')) {
    throw new UsageError(`unsupported dataset URI scheme: ${uri} (expected a local path, file:// or s3://)`);
  }
  const dir = uri.startsWith('file://') ? fileURLToPath(uri) : uri;
  return { uri, store: new LocalStore(dir) };
}
