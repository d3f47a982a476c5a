/**
 * `scalar-index scan`: stream the matching rows to stdout or a file as an Arrow IPC stream,
 * newline-delimited JSON or CSV. Output goes out batch by batch with backpressure, so memory
 * stays bounded whatever the result size; `--output FILE` appears only once complete.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import { toUint8Array, type ArrayBufferViewInput } from 'apache-arrow/util/buffer';
import { ScalarIndexError } from '../errors.js';
import { scan, type ScanStats } from '../scan/scan.js';
import { csvHeader, formatRows } from '../scan/text.js';
import type { Progress } from '../workflow/plan.js';

export type ScanFormat = 'arrow' | 'ndjson' | 'csv';

export interface ScanCommandOptions {
  where: string;
  columns?: string[];
  format: ScanFormat;
  limit?: number;
  output?: string;
  /** Scan the registered snapshot without listing `data/` (see QueryOptions.registeredOnly). */
  registeredOnly?: boolean;
  progress?: Progress;
}

/** The output ended because its reader went away (`| head`): not an error. */
class ReaderGone extends Error {}

/** Where the bytes go: a writable with backpressure. */
interface Sink {
  write(chunk: Uint8Array | string): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

function streamSink(stream: NodeJS.WritableStream, onFinish: () => Promise<void>, onAbort: () => Promise<void>): Sink {
  let failed: Error | undefined;
  const onError = (err: NodeJS.ErrnoException) => {
    failed = err.code === 'EPIPE' ? new ReaderGone() : err;
  };
  stream.on('error', onError);
  const detach = () => stream.off('error', onError);
  return {
    async write(chunk) {
      if (failed) throw failed;
      if (!stream.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            stream.off('drain', done);
            stream.off('error', done);
            resolve();
          };
          stream.on('drain', done);
          stream.on('error', done);
        });
      }
      if (failed) throw failed;
    },
    async finish() {
      detach();
      if (failed) throw failed;
      await onFinish();
    },
    async abort() {
      detach();
      await onAbort();
    },
  };
}

function stdoutSink(): Sink {
  return streamSink(process.stdout, async () => {}, async () => {});
}

/** A file written under a temporary name beside it and renamed into place when complete. */
function fileSink(target: string): Sink {
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
  const stream = fs.createWriteStream(temp, { flags: 'wx' });
  const closed = () =>
    new Promise<void>((resolve, reject) => {
      if (stream.closed) return resolve();
      stream.end((err?: Error | null) => (err ? reject(err) : resolve()));
    });
  return streamSink(
    stream,
    async () => {
      await closed();
      await fs.promises.rename(temp, target);
    },
    async () => {
      await closed().catch(() => undefined);
      await fs.promises.rm(temp, { force: true });
    },
  );
}

/**
 * An Arrow IPC stream writer whose bytes are taken as each batch is written (apache-arrow's
 * own writer queues them until read), so they go out with the sink's backpressure.
 */
class ChunkedStreamWriter extends arrow.RecordBatchStreamWriter {
  chunks: Uint8Array[] = [];
  protected override _write(chunk: ArrayBufferViewInput): this {
    if (this._started) {
      const bytes = toUint8Array(chunk);
      if (bytes.byteLength > 0) {
        this.chunks.push(bytes);
        this._position += bytes.byteLength;
      }
    }
    return this;
  }
  take(): Uint8Array[] {
    const out = this.chunks;
    this.chunks = [];
    return out;
  }
}

function sameSchema(a: arrow.Schema, b: arrow.Schema): boolean {
  return arrow.util.compareSchemas(a, b);
}

/** Field names and types, ignoring dictionary ids (each fragment numbers its own). */
function shape(schema: arrow.Schema): string {
  return schema.fields.map((f) => `${f.name}:${String(f.type)}`).join('\u0000');
}

/** `batch` with `schema`'s types (which may differ from its own only in dictionary ids). */
function asSchema(batch: arrow.RecordBatch, schema: arrow.Schema): arrow.RecordBatch {
  const children = batch.data.children.map((c, i) => c.clone(schema.fields[i]!.type));
  return new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: batch.numRows, nullCount: 0, children }));
}

/** Run a scan into stdout or `--output`; returns its statistics. */
export async function runScanCommand(dataset: string, options: ScanCommandOptions): Promise<ScanStats> {
  const s = scan(dataset, options.where, { columns: options.columns, limit: options.limit, registeredOnly: options.registeredOnly, progress: options.progress });
  const sink = options.output ? fileSink(options.output) : stdoutSink();
  let schema: arrow.Schema | undefined;
  let firstFrom = '';
  let arrowWriter: ChunkedStreamWriter | undefined;
  const start = async (first: arrow.Schema) => {
    schema = first;
    if (options.format === 'csv') await sink.write(csvHeader(first));
    if (options.format === 'arrow') {
      arrowWriter = new ChunkedStreamWriter();
      arrowWriter.reset(undefined, first);
    }
  };
  try {
    for await (const chunk of s.chunks()) {
      let batch = chunk.batch;
      if (!schema) {
        await start(batch.schema);
        firstFrom = chunk.fragment.path;
      } else if (options.format !== 'ndjson' && !sameSchema(schema, batch.schema)) {
        // One stream (or one CSV header) needs one set of columns and types.
        if (shape(batch.schema) !== shape(schema)) {
          throw new ScalarIndexError(
            `fragment ${chunk.fragment.path} has columns (${batch.schema.fields.map((f) => `${f.name} ${f.type}`).join(', ')}) unlike ${firstFrom} ` +
              `(${schema.fields.map((f) => `${f.name} ${f.type}`).join(', ')}); one ${options.format} output needs the same columns: choose them with --columns, or use --format ndjson`,
          );
        }
        batch = asSchema(batch, schema);
      }
      if (options.format === 'arrow') {
        arrowWriter!.write(batch);
        for (const bytes of arrowWriter!.take()) await sink.write(bytes);
      } else {
        await sink.write(formatRows(batch, options.format));
      }
    }
    if (!schema) {
      // No row matched: still a valid stream (or CSV header) with the columns of the first
      // fragment scanned. With no fragment scanned, a CSV header has the columns asked for
      // and an Arrow stream has no columns (their types are unknown).
      const names = options.columns ?? [];
      await start(s.schema ?? new arrow.Schema(options.format === 'csv' ? names.map((n) => new arrow.Field(n, new arrow.Null(), true)) : []));
    }
    if (arrowWriter) {
      arrowWriter.finish();
      for (const bytes of arrowWriter.take()) await sink.write(bytes);
    }
    await sink.finish();
  } catch (err) {
    await sink.abort();
    if (err instanceof ReaderGone) return s.stats;
    throw err;
  }
  return s.stats;
}
