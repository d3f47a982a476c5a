import { afterAll, beforeAll } from 'vitest';
import { LocalStore } from '../../lib/store/local.js';
import { S3Store } from '../../lib/store/s3.js';
import type { ObjectStore } from '../../lib/store/store.js';
import { startS3Server, type S3ServerOptions, type S3TestServer } from './s3-server.js';
import { tempDir } from './tmp.js';

/**
 * Start an S3 test server for the enclosing file or describe block and point the standard SDK
 * environment at it, the way the CLI and the Lambdas are configured; restored afterwards.
 * Read `.server` inside tests and hooks (it is set in beforeAll).
 */
export function useS3Server(options: S3ServerOptions): { readonly server: S3TestServer } {
  const ref = {} as { server: S3TestServer };
  const saved = { ...process.env };
  beforeAll(async () => {
    ref.server = await startS3Server(options);
    Object.assign(process.env, ref.server.env);
  });
  afterAll(async () => {
    process.env = saved;
    await ref.server?.stop();
  });
  return ref;
}

/** Where a test's dataset lives: its URI and a store onto the same place. */
export interface DatasetTarget {
  dataset: string;
  store: ObjectStore;
}

/**
 * Fresh-dataset factories for tests that run on both stores: a temporary local directory, or
 * a new prefix in `bucket` on the S3 test server (started by `useS3Server`).
 */
export function datasetTargets(bucket: string): Record<'local directory' | 'S3 (412-honouring proxy)', () => DatasetTarget> {
  let n = 0;
  return {
    'local directory': () => {
      const dir = tempDir(`ssi-${bucket}-`);
      return { dataset: dir, store: new LocalStore(dir) };
    },
    'S3 (412-honouring proxy)': () => {
      const prefix = `d${n++}`;
      return { dataset: `s3://${bucket}/${prefix}`, store: new S3Store({ bucket, prefix }) };
    },
  };
}
