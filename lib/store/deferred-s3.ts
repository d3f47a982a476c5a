/**
 * An S3 store that loads the AWS SDK on first use. `openDataset` hands this out for
 * `s3://` URIs, so commands, workers and functions that only touch local directories never
 * pay for loading the SDK (about 0.3 s per process or worker thread).
 */
import type { S3Location } from './s3-uri.js';
import type { ObjectInfo, ObjectStore, ObjectWriter, WriteOptions } from './store.js';

export class DeferredS3Store implements ObjectStore {
  private store?: Promise<ObjectStore>;

  constructor(private readonly location: S3Location) {}

  private inner(): Promise<ObjectStore> {
    this.store ??= import('./s3.js').then((m) => new m.S3Store(this.location));
    return this.store;
  }

  describe(key: string): string {
    const { bucket, prefix } = this.location;
    return `s3://${bucket}/${prefix ? `${prefix}/` : ''}${key}`;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return (await this.inner()).head(key);
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    return (await this.inner()).read(key, range);
  }

  async put(key: string, body: Uint8Array, options?: WriteOptions): Promise<ObjectInfo> {
    return (await this.inner()).put(key, body, options);
  }

  async openWriter(key: string, options?: WriteOptions): Promise<ObjectWriter> {
    return (await this.inner()).openWriter(key, options);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.inner()).list(prefix);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    return (await this.inner()).deleteMany(keys);
  }
}
