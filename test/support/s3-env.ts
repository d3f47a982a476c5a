import { afterAll, beforeAll } from 'vitest';
import { startS3Server, type S3ServerOptions, type S3TestServer } from './s3-server.js';

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
