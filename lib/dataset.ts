/**
 * Opening a dataset URI: a local path, `file:///abs/path`, or `s3://bucket/prefix`. Both
 * kinds sit behind the same ObjectStore contract; nothing past this point knows which.
 */
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';
import { LocalStore } from './store/local.js';
import { DeferredS3Store } from './store/deferred-s3.js';
import { parseS3Uri } from './store/s3-uri.js';
import type { ObjectStore } from './store/store.js';

export interface Dataset {
  uri: string;
  store: ObjectStore;
}

/**
 * @example
 * const { store } = openDataset('s3://sales-data/datasets/2026');
 * const { store: local } = openDataset('./sample-data');
 */
export function openDataset(uri: string): Dataset {
  if (!uri || typeof uri !== 'string') throw new UsageError('a dataset path or URI is required');
  if (/^s3:\/\//i.test(uri)) return { uri, store: new DeferredS3Store(parseS3Uri(uri)) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !/^file:\/\//i.test(uri)) {
    throw new UsageError(`unsupported dataset URI scheme: ${uri} (expected a local path, file:// or s3://)`);
  }
  let dir = uri;
  if (/^file:\/\//i.test(uri)) {
    try {
      dir = fileURLToPath(uri);
    } catch (err) {
      throw new UsageError(`invalid dataset URI ${uri}: ${(err as Error).message} (a file URI names an absolute path: file:///data/sales)`);
    }
  }
  return { uri, store: new LocalStore(dir) };
}
