/**
 * What registering a fragment needs, read without reading the fragment: its row count, the
 * Arrow schema its data decodes to, and a fingerprint that build-part can recompute from the
 * bytes it reads anyway. A first build over a thousand 30 MB fragments used to read 30 GB in
 * the plan step to learn this; here an Arrow IPC file costs its footer and its record batch
 * headers, a Parquet file its footer, an Arrow IPC stream its message headers (a stream has
 * no index, so that is a ranged read per few headers).
 *
 * Formats are told apart the way `decodeFragment` tells them apart (Parquet: `PAR1` at the
 * start or a `.parquet` name; Arrow IPC file: `ARROW1` at the start; anything else: a
 * stream), so a registration never reads a file as something the whole-file read would not.
 * The first read goes where the name says the metadata is (the end, or the start for
 * `.arrows`) and the format is confirmed from the file's first bytes before a result is
 * returned.
 *
 * Nothing here checks column contents (value offsets, validity bits, pages): that is
 * build-part's, which decodes the bytes. What is checked is all the metadata this reads, with
 * the same guards the whole-file read uses (`ipc-metadata.ts`), before apache-arrow decodes
 * any of it.
 */
import { createHash } from 'node:crypto';
import * as arrow from 'apache-arrow';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message } from 'apache-arrow/ipc/metadata/message';
import { parquetMetadata } from 'hyparquet';
import { FragmentReadError } from '../errors.js';
import {
  checkBatchLengths,
  checkFooterMetadata,
  checkMessageMetadata,
  footerColumns,
  MESSAGE_DICTIONARY_BATCH,
  MESSAGE_RECORD_BATCH,
  MESSAGE_SCHEMA,
  schemaMessageColumns,
  type ColumnNodes,
} from '../format/ipc-metadata.js';
import type { ObjectStore } from '../store/store.js';
import { arrowFileFingerprint } from './arrow-columns.js';

export { footerTailBytes } from './arrow-columns.js';
import { hasParquetMagic, parquetFooterSchema } from './parquet.js';
import { duplicateName } from './reader.js';

export interface FragmentFooter {
  key: string;
  size: number;
  /**
   * `arrowfile:<size>:<hash>` of an Arrow IPC file's footer (as `arrowFileFingerprint`),
   * `arrowstream:<size>:<hash>` of a stream's message metadata, `parquet:<size>:<hash>` of a
   * Parquet file's footer. `fingerprintOf` computes the same from the whole file.
   */
  fingerprint: string;
  /** The Arrow schema the fragment's data decodes to (for Parquet, what `decodeParquet` gives). */
  schema: arrow.Schema;
  rows: number;
  /** Store requests issued and bytes they returned. */
  reads: number;
  bytesRead: number;
}

/**
 * How reads are planned. Request count matters more than bytes on S3 (each GET is a round
 * trip of 20–50 ms; 64 KiB more of a response costs about a millisecond), until the bytes
 * of a large file start to add up.
 */
export interface FooterReadTuning {
  /** The first read from the end of a file: most footers fit in it. */
  tailBytes: number;
  /** Files this small are read in one request. */
  wholeFileBytes: number;
  /** Ranges this close are read as one (the bytes between are read and dropped)... */
  coalesceGap: number;
  /** ...except that for files at least this large... */
  largeFileBytes: number;
  /** ...the bytes read in all stay within this share of the file (requests are added instead). */
  largeFileShare: number;
  /** Ranged reads in flight at once for one file. */
  concurrency: number;
  /** A stream's first read, and the least of each later one while its bodies are small. */
  streamReadAhead: number;
  /** The least read for one message header of a stream with large bodies (else twice the last header). */
  streamHeaderProbe: number;
}

export const FOOTER_READ_DEFAULTS: Readonly<FooterReadTuning> = {
  tailBytes: 64 * 1024,
  wholeFileBytes: 128 * 1024,
  coalesceGap: 64 * 1024,
  largeFileBytes: 8 * 1024 * 1024,
  largeFileShare: 0.02,
  concurrency: 16,
  streamReadAhead: 64 * 1024,
  streamHeaderProbe: 512,
};

/**
 * Read a fragment's row count, schema and fingerprint with a few ranged reads.
 *
 * @param size - the file's size from the listing; a file with fewer bytes is refused
 * @param tuning - only tests and benchmarks should need this
 * @throws FragmentReadError naming the file when it is not a readable fragment (truncated,
 *   bad magic, a footer or header out of bounds or that does not parse, lengths that
 *   disagree, duplicate column names); errors from the store itself propagate unchanged
 *
 * @example
 * const f = await readFragmentFooter(store, 'data/a.arrow', info.size);
 * console.log(f.rows, f.schema.fields.map((x) => x.name), f.fingerprint, f.reads);
 */
export async function readFragmentFooter(store: ObjectStore, key: string, size: number, tuning: Partial<FooterReadTuning> = {}): Promise<FragmentFooter> {
  const where = store.describe(key);
  if (!Number.isSafeInteger(size) || size < 0) throw new FragmentReadError(`fragment ${where}: ${size} is not a file size`);
  const src = new ByteSource(size, where, { ...FOOTER_READ_DEFAULTS, ...tuning }, (start, end) => store.read(key, { start, end }));
  const steps = parseFragment(src, key);
  let step = next(steps, where);
  // Store errors come from here, outside the parser, so they propagate as they are.
  while (!step.done) {
    await src.fetch(step.value);
    step = next(steps, where);
  }
  return { key, size, ...step.value, reads: src.reads, bytesRead: src.bytesRead };
}

/**
 * The fingerprint `readFragmentFooter` gives the fragment whose whole content is `bytes`, so
 * that a step holding the bytes (build-part) can check them against a registration. Bytes
 * that `readFragmentFooter` would refuse get `sha256:<hash of the bytes>`, which no
 * registration carries.
 *
 * @example
 * if (fingerprintOf(key, bytes) !== registered.fingerprint) throw new FragmentChangedError(...);
 */
export function fingerprintOf(key: string, bytes: Uint8Array): string {
  const src = new ByteSource(bytes.byteLength, key, FOOTER_READ_DEFAULTS, undefined, bytes);
  try {
    const steps = parseFragment(src, key);
    let step = steps.next();
    while (!step.done) step = steps.next();
    return step.value.fingerprint;
  } catch {
    return `sha256:${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}`;
  }
}

/**
 * A whole file's fingerprint, computed the way `registered` was: from the footer and headers
 * (`fingerprintOf`) for fragments registered by footer, from all the bytes (`sha256:`) for
 * fragments an earlier release registered by reading them whole.
 */
export function fingerprintAsRegistered(registered: string, key: string, bytes: Uint8Array): string {
  return registered.startsWith('sha256:') ? `sha256:${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}` : fingerprintOf(key, bytes);
}

interface Parsed {
  fingerprint: string;
  schema: arrow.Schema;
  rows: number;
}

/** Bytes [start, end) the parser needs; when they must be read, read up to `start + ahead`. */
interface Want {
  start: number;
  end: number;
  ahead?: number;
}

/** The parser: yields what it needs next, and reads it from the source once it resumes. */
type Steps<T> = Generator<Want[], T, void>;

function next(steps: Steps<Parsed>, where: string): IteratorResult<Want[], Parsed> {
  try {
    return steps.next();
  } catch (err) {
    if (err instanceof FragmentReadError) throw err;
    // Anything a library threw on bytes that passed the checks: still this file's fault.
    throw corrupt(where, (err as Error)?.message ?? String(err), err);
  }
}

function corrupt(where: string, why: string, cause?: unknown): FragmentReadError {
  return new FragmentReadError(`corrupt or truncated fragment ${where}: ${why}`, { cause });
}

// ---------------------------------------------------------------------------------------------
// Bytes

/** The bytes read so far of one file, and the reads that fetched them. */
class ByteSource {
  reads = 0;
  bytesRead = 0;
  private readonly held: { start: number; bytes: Uint8Array }[] = [];

  constructor(
    readonly size: number,
    readonly where: string,
    readonly tuning: Readonly<FooterReadTuning>,
    private readonly read?: (start: number, end: number) => Promise<Uint8Array>,
    whole?: Uint8Array,
  ) {
    if (whole) this.held.push({ start: 0, bytes: whole });
  }

  has(start: number, end: number): boolean {
    return this.find(start, end) !== undefined;
  }

  /** Bytes [start, end), which an earlier step asked for. */
  get(start: number, end: number): Uint8Array {
    const bytes = this.find(start, end);
    if (!bytes) throw new Error(`internal: bytes ${start}-${end} of ${this.where} were not read`);
    return bytes;
  }

  /** The end of the held bytes that reach furthest towards `pos` without passing it, if any touch [0, pos). */
  heldEndBefore(pos: number): number | undefined {
    let best: number | undefined;
    for (const h of this.held) {
      const end = h.start + h.bytes.byteLength;
      if (h.start < pos && end <= pos && (best === undefined || end > best)) best = end;
    }
    return best;
  }

  /** Bytes a large file may still have read (its share of the file); unlimited for smaller files. */
  budgetLeft(): number {
    return this.size >= this.tuning.largeFileBytes ? this.tuning.largeFileShare * this.size - this.bytesRead : Infinity;
  }

  private find(start: number, end: number): Uint8Array | undefined {
    // Newest first: a stream's walk asks for what it read last.
    for (let i = this.held.length - 1; i >= 0; i--) {
      const h = this.held[i]!;
      if (h.start <= start && end <= h.start + h.bytes.byteLength) return h.bytes.subarray(start - h.start, end - h.start);
    }
    return undefined;
  }

  /**
   * Read what is wanted and not held: overlapping and touching ranges as one, ranges closer
   * than `coalesceGap` as one (smallest gaps first, while a large file's byte share allows),
   * the rest in parallel.
   */
  async fetch(wants: Want[]): Promise<void> {
    const ranges = wants
      .filter((w) => w.end > w.start && !this.has(w.start, w.end))
      .map((w) => ({ start: w.start, end: Math.min(this.size, Math.max(w.end, w.start + (w.ahead ?? 0))) }))
      .sort((a, b) => a.start - b.start);
    if (ranges.length === 0) return;
    const merged = [{ ...ranges[0]! }];
    for (const r of ranges.slice(1)) {
      const last = merged[merged.length - 1]!;
      if (r.start <= last.end) last.end = Math.max(last.end, r.end);
      else merged.push({ ...r });
    }
    const t = this.tuning;
    let budget = this.budgetLeft() - merged.reduce((n, r) => n + r.end - r.start, 0);
    const gaps = merged
      .slice(1)
      .map((r, i) => ({ i, gap: r.start - merged[i]!.end }))
      .sort((a, b) => a.gap - b.gap);
    const joinNext = new Set<number>();
    for (const { i, gap } of gaps) {
      if (gap > t.coalesceGap || gap > budget) break;
      budget -= gap;
      joinNext.add(i);
    }
    const reads: { start: number; end: number }[] = [];
    merged.forEach((r, i) => {
      if (i > 0 && joinNext.has(i - 1)) reads[reads.length - 1]!.end = r.end;
      else reads.push({ ...r });
    });
    let k = 0;
    const worker = async () => {
      while (k < reads.length) {
        const r = reads[k++]!;
        this.held.push({ start: r.start, bytes: await this.readExactly(r.start, r.end) });
      }
    };
    await Promise.all(Array.from({ length: Math.min(t.concurrency, reads.length) }, worker));
  }

  private async readExactly(start: number, end: number): Promise<Uint8Array> {
    if (!this.read) throw new Error(`internal: bytes ${start}-${end} of ${this.where} are not in memory`);
    this.reads++;
    const bytes = await this.read(start, end);
    this.bytesRead += bytes.byteLength;
    if (bytes.byteLength !== end - start) {
      throw new FragmentReadError(
        `fragment ${this.where} is not the ${this.size}-byte file it was listed as: bytes ${start}-${end} read as ${bytes.byteLength} bytes (truncated or replaced since?)`,
      );
    }
    return bytes;
  }
}

const int32At = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(at, true);
const uint32At = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
const ARROW_MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // ARROW1
const PARQUET_MAGIC = [0x50, 0x41, 0x52, 0x31]; // PAR1
const startsWith = (b: Uint8Array, magic: number[], at = 0) => b.byteLength >= at + magic.length && magic.every((m, i) => b[at + i] === m);
const endsWith = (b: Uint8Array, magic: number[]) => startsWith(b, magic, b.byteLength - magic.length);

function hashOf(size: number, parts: Uint8Array[]): string {
  const h = createHash('sha256').update(`${size}\n`);
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 32);
}

// ---------------------------------------------------------------------------------------------
// Formats

type Format = 'file' | 'stream' | 'parquet';

/** The format `decodeFragment` reads a file as, from its name and first bytes. */
function formatOf(key: string, head: Uint8Array): Format {
  if (hasParquetMagic(head) || key.toLowerCase().endsWith('.parquet')) return 'parquet';
  if (startsWith(head, ARROW_MAGIC)) return 'file';
  return 'stream';
}

const HEAD_BYTES = 8;

function* parseFragment(src: ByteSource, key: string): Steps<Parsed> {
  const { size, tuning: t } = src;
  const lower = key.toLowerCase();
  const head: Want = { start: 0, end: Math.min(size, HEAD_BYTES) };
  if (size === 0) throw corrupt(src.where, 'the file is empty');
  if (size <= t.wholeFileBytes) yield [{ start: 0, end: size }];

  // A guess from where the metadata should be, confirmed from the first bytes below.
  let format: Format | undefined = src.has(head.start, head.end) ? formatOf(key, src.get(head.start, head.end)) : undefined;
  if (!format && !lower.endsWith('.arrows')) {
    const tail: Want = { start: Math.max(0, size - t.tailBytes), end: size };
    // A .parquet file must start with PAR1 anyway: read that alongside.
    yield lower.endsWith('.parquet') ? [head, tail] : [tail];
    const end = src.get(tail.start, tail.end);
    format = src.has(head.start, head.end) ? formatOf(key, src.get(head.start, head.end)) : endsWith(end, PARQUET_MAGIC) ? 'parquet' : endsWith(end, ARROW_MAGIC) ? 'file' : undefined;
  }
  if (!format) {
    yield [{ ...head, ahead: t.streamReadAhead }];
    format = formatOf(key, src.get(head.start, head.end));
  }

  for (let attempt = 0; ; attempt++) {
    let parsed: Parsed | undefined;
    let failure: unknown;
    try {
      parsed = yield* format === 'parquet' ? parseParquet(src) : format === 'file' ? parseArrowFile(src) : parseArrowStream(src, lower);
    } catch (err) {
      failure = err;
    }
    yield [head];
    const actual = formatOf(key, src.get(head.start, head.end));
    if (actual === format || attempt > 0) {
      if (failure !== undefined) throw failure;
      const twice = duplicateName(parsed!.schema);
      if (twice) throw new FragmentReadError(`fragment ${src.where} has ${twice.count} columns named '${twice.name}'; column names must be unique`);
      return parsed!;
    }
    format = actual;
  }
}

/** Arrow IPC file: the footer, then each block's message header (never a body). */
function* parseArrowFile(src: ByteSource): Steps<Parsed> {
  const { size, where } = src;
  const fail = (why: string, cause?: unknown) => corrupt(where, why, cause);
  if (size < 22) throw fail('missing Arrow file footer');
  yield [{ start: Math.max(0, size - src.tuning.tailBytes), end: size }];
  const trailer = src.get(size - 10, size);
  if (!endsWith(trailer, ARROW_MAGIC)) throw fail('missing Arrow file footer');
  const footerLength = int32At(trailer, 0);
  const footerStart = size - 10 - footerLength;
  if (!(footerLength > 0 && footerStart >= 8)) throw fail(`bad footer length ${footerLength}`);
  yield [{ start: footerStart, end: size }];
  const footerWithTrailer = src.get(footerStart, size);
  const footerBytes = footerWithTrailer.subarray(0, footerLength);

  let footer: InstanceType<typeof Footer>;
  let columns: ColumnNodes;
  let blocks: { offset: number; metaDataLength: number; bodyLength: number; kind: number; name: string }[];
  try {
    checkFooterMetadata(footerBytes, 'footer');
    columns = footerColumns(footerBytes, 'footer');
    footer = Footer.decode(footerBytes);
    // apache-arrow throws a TypeError here for offsets past 2^53.
    blocks = [
      ...[...footer.dictionaryBatches()].map((b, k) => ({ ...b, kind: MESSAGE_DICTIONARY_BATCH, name: `dictionary batch ${k}` })),
      ...[...footer.recordBatches()].map((b, k) => ({ ...b, kind: MESSAGE_RECORD_BATCH, name: `record batch ${k}` })),
    ];
  } catch (err) {
    throw fail((err as Error).message, err);
  }
  for (const b of blocks) {
    const ok = [b.offset, b.metaDataLength, b.bodyLength].every(Number.isSafeInteger) && b.offset >= 8 && b.metaDataLength >= 8 && b.bodyLength >= 0;
    if (!ok || b.offset + b.metaDataLength + b.bodyLength > footerStart) {
      throw fail(`${b.name} (offset ${b.offset}, ${b.metaDataLength}+${b.bodyLength} bytes) lies outside the file's batches (which end at byte ${footerStart})`);
    }
  }
  // The head rides along: the first batch's header usually sits right after the schema.
  yield [{ start: 0, end: HEAD_BYTES }, ...blocks.map((b) => ({ start: b.offset, end: b.offset + b.metaDataLength }))];

  let rows = 0;
  for (const b of blocks) {
    const framed = src.get(b.offset, b.offset + b.metaDataLength);
    const continued = int32At(framed, 0) === -1;
    const prefix = continued ? 8 : 4;
    const length = int32At(framed, prefix - 4);
    // apache-arrow finds the body after the metadata's own length, the format after the
    // block's: a file where they differ reads differently depending on who reads it.
    if (!(length > 0 && prefix + length === b.metaDataLength)) {
      throw fail(`${b.name}: its header says ${length} bytes of metadata, the footer ${b.metaDataLength - prefix}`);
    }
    const metadata = framed.subarray(prefix);
    try {
      const { kind, bodyLength } = checkMessageMetadata(metadata, b.name);
      if (kind !== b.kind) throw new Error(`${b.name} does not hold a ${b.kind === MESSAGE_RECORD_BATCH ? 'record batch' : 'dictionary batch'}`);
      if (bodyLength !== b.bodyLength) throw new Error(`${b.name}: its header says a body of ${bodyLength} bytes, the footer ${b.bodyLength}`);
      if (kind === MESSAGE_RECORD_BATCH) rows += checkBatchLengths(metadata, columns, b.name);
    } catch (err) {
      throw fail((err as Error).message, err);
    }
  }
  if (!Number.isSafeInteger(rows)) throw fail(`${rows} rows is more than this reader can count`);
  return { fingerprint: arrowFileFingerprint(size, footerWithTrailer), schema: footer.schema, rows };
}

/**
 * Arrow IPC stream: message by message, reading each prefix and metadata and skipping each
 * body by its declared length, as `checkIpcMetadata` walks a stream held in memory. A stream
 * ends at an end-of-stream marker or the end of the bytes.
 */
function* parseArrowStream(src: ByteSource, lowerKey: string): Steps<Parsed> {
  const { size, where, tuning: t } = src;
  const fail = (why: string, cause?: unknown) => corrupt(where, why, cause);
  // decodeFragment's rule for streams under a file's name.
  if ((lowerKey.endsWith('.arrow') || lowerKey.endsWith('.feather')) && size < 8) throw fail('not an Arrow file');
  const parts: Uint8Array[] = [];
  let schema: arrow.Schema | undefined;
  let columns: ColumnNodes | undefined;
  let rows = 0;
  let pos = 0;
  /** The last message's header (prefix and metadata) and body sizes. */
  let last: { header: number; body: number } | undefined;
  for (;;) {
    // A length that does not fit in the bytes left reads as 0, the end, as it does for
    // apache-arrow's reader.
    if (pos + 4 > size) break;
    if (!src.has(pos, Math.min(size, pos + 8))) {
      // A stream has no index: skipping a body costs a request. Bodies no larger than a
      // request is worth are read through instead, and the reads grow with the part of the
      // stream already read (a stream of small messages takes a handful of requests, not one
      // per message), as far as a large file's byte share allows; past that, or for large
      // bodies, little more than a header is read each time.
      const small = !last || last.body <= t.coalesceGap;
      const minimum = last ? Math.max(t.streamHeaderProbe, 2 * last.header) : t.streamReadAhead;
      const heldEnd = src.heldEndBefore(pos);
      const gap = heldEnd === undefined ? Infinity : pos - heldEnd;
      // Kept back: what reading just the headers of the rest would take.
      const budget = src.budgetLeft() - (last ? Math.ceil((size - pos) / (last.header + last.body)) * minimum : 0);
      const start = small && gap <= t.coalesceGap && gap + minimum <= budget ? heldEnd! : pos;
      const ahead = small ? Math.max(minimum, Math.min(Math.max(t.streamReadAhead, pos), budget - (pos - start))) : minimum;
      yield [{ start, end: Math.min(size, pos + 8), ahead: pos - start + ahead }];
    }
    let at = pos;
    let length = int32At(src.get(at, at + 4), 0);
    at += 4;
    if (length === -1) {
      if (at + 4 > size) break;
      length = int32At(src.get(at, at + 4), 0);
      at += 4;
    }
    if (length === 0) break;
    if (length < 0 || at + length > size) throw fail(`message length ${length} at byte ${at} runs past the end`);
    yield [{ start: at, end: at + length }];
    const metadata = src.get(at, at + length);
    const what = `message at byte ${pos}`;
    let bodyLength: number;
    try {
      let kind: number;
      ({ kind, bodyLength } = checkMessageMetadata(metadata, what));
      if (!schema) {
        if (kind !== MESSAGE_SCHEMA) throw new Error('the stream does not start with a schema');
        columns = schemaMessageColumns(metadata, `${what} (schema)`);
        schema = (Message.decode(metadata) as Message<arrow.MessageHeader.Schema>).header() as arrow.Schema;
      } else if (kind === MESSAGE_SCHEMA) {
        // apache-arrow would switch schemas mid-stream; no writer does that within one stream.
        throw new Error(`${what} is a second schema`);
      } else if (kind === MESSAGE_RECORD_BATCH) {
        rows += checkBatchLengths(metadata, columns!, `record batch at byte ${pos}`);
      }
    } catch (err) {
      throw fail((err as Error).message, err);
    }
    const end = at + length + bodyLength;
    if (end > size) throw fail(`message body at byte ${at + length} runs past the end`);
    const frame = new Uint8Array(4);
    new DataView(frame.buffer).setInt32(0, length, true);
    parts.push(frame, metadata);
    last = { header: at + length - pos, body: bodyLength };
    pos = end;
  }
  if (!schema) throw fail('no schema');
  if (!Number.isSafeInteger(rows)) throw fail(`${rows} rows is more than this reader can count`);
  return { fingerprint: `arrowstream:${size}:${hashOf(size, parts)}`, schema, rows };
}

/** Parquet: the footer (hyparquet for the row counts, arrow-rs for the Arrow schema). */
function* parseParquet(src: ByteSource): Steps<Parsed> {
  const { size, where } = src;
  const fail = (why: string, cause?: unknown) => corrupt(where, why, cause);
  const head: Want = { start: 0, end: Math.min(size, HEAD_BYTES) };
  yield [head, { start: Math.max(0, size - src.tuning.tailBytes), end: size }];
  // decodeParquet's checks, in its order and words.
  if (!hasParquetMagic(src.get(head.start, head.end))) throw fail('not a Parquet file (no PAR1 magic at the start)');
  if (size < 12 || !endsWith(src.get(size - 4, size), PARQUET_MAGIC)) throw fail('missing Parquet footer (no PAR1 magic at the end; truncated?)');
  const metadataLength = uint32At(src.get(size - 8, size - 4), 0);
  const footerStart = size - 8 - metadataLength;
  if (footerStart < 4) throw fail(`a footer of ${metadataLength} bytes does not fit in a ${size}-byte file`);
  yield [{ start: footerStart, end: size }];
  const footer = src.get(footerStart, size);
  let rows: bigint;
  try {
    const metadata = parquetMetadata(footer, { geoparquet: false });
    // Readers (arrow-rs included) read row groups; the file's own total only has to agree.
    rows = 0n;
    for (const g of metadata.row_groups) rows += BigInt(g.num_rows);
    if (rows !== BigInt(metadata.num_rows)) throw new Error(`the footer says ${metadata.num_rows} rows, its row groups hold ${rows}`);
    // The one codec no Parquet reader here has (arrow-rs dropped LZO): refused now, from the
    // footer, rather than by build-part after the fragment was registered.
    const lzo = metadata.row_groups.flatMap((g) => g.columns).find((c) => c.meta_data?.codec === 'LZO');
    if (lzo) throw new Error(`column '${lzo.meta_data!.path_in_schema.join('.')}': codec type LZO is not supported`);
  } catch (err) {
    throw fail((err as Error)?.message ?? String(err), err);
  }
  if (!(rows >= 0n && rows <= BigInt(Number.MAX_SAFE_INTEGER))) throw fail(`${rows} rows is not a row count`);
  const schema = parquetFooterSchema(where, footer);
  return { fingerprint: `parquet:${size}:${hashOf(size, [footer])}`, schema, rows: Number(rows) };
}
