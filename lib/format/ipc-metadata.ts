/**
 * Bounds checks on Arrow IPC metadata (the FlatBuffers of messages and footers) before
 * apache-arrow decodes it. apache-arrow trusts this metadata: a damaged vector length makes it
 * loop (or allocate) billions of times, a damaged block in a file's footer that holds a schema
 * message sends its file reader round the same block forever, and a cycle in a schema's field
 * tree recurses without end. Those are hangs, not errors, and nothing in the same thread can
 * interrupt them. So before decoding:
 *
 * - every vector apache-arrow loops over must fit in its buffer (length × element size);
 * - a schema's field tree must be a tree of bounded size and depth;
 * - every block a file's footer lists must hold a message of the kind the footer says;
 * - a stream's messages must follow each other within the bytes.
 *
 * What is left is bounded work, and out-of-range reads inside apache-arrow either throw or
 * read zeros, which the callers' buffer checks then reject. These checks follow the Arrow
 * format (Message.fbs, Schema.fbs, File.fbs); they do not decode anything.
 */

/** Why metadata was refused; callers wrap it in their own named error. */
export class IpcMetadataError extends Error {}

/** A table: its position and its vtable. */
interface Table {
  pos: number;
  vt: number;
  vsize: number;
}

/** FlatBuffers reads as apache-arrow's flatbuffers does them, but refusing anything out of bounds. */
class FlatBuffer {
  private readonly dv: DataView;
  /** Reads left: a budget that a cyclic or absurdly shaped buffer runs out of. */
  private budget: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.budget = 64 + 4 * bytes.byteLength;
  }

  fail(why: string): never {
    throw new IpcMetadataError(`${this.what}: ${why}`);
  }

  private need(pos: number, n: number): void {
    if (!(pos >= 0 && n >= 0 && pos + n <= this.bytes.byteLength)) this.fail(`reference out of bounds (${pos}+${n} of ${this.bytes.byteLength} bytes)`);
    if (--this.budget < 0) this.fail('metadata too complex for its size (cyclic?)');
  }

  i16(pos: number): number {
    this.need(pos, 2);
    return this.dv.getInt16(pos, true);
  }

  i32(pos: number): number {
    this.need(pos, 4);
    return this.dv.getInt32(pos, true);
  }

  u8(pos: number): number {
    this.need(pos, 1);
    return this.dv.getUint8(pos);
  }

  i64(pos: number): number {
    this.need(pos, 8);
    return Number(this.dv.getBigInt64(pos, true));
  }

  table(pos: number): Table {
    const vt = pos - this.i32(pos);
    const vsize = this.i16(vt);
    if (vsize < 4 || vsize % 2 !== 0) this.fail(`bad vtable size ${vsize}`);
    this.need(vt, vsize);
    return { pos, vt, vsize };
  }

  root(): Table {
    return this.table(this.i32(0));
  }

  /** Position of field `i` of a table, or 0 when absent. */
  field(t: Table, i: number): number {
    const o = 4 + 2 * i;
    if (o >= t.vsize) return 0;
    const f = this.i16(t.vt + o);
    return f === 0 ? 0 : t.pos + f;
  }

  subtable(t: Table, i: number): Table | undefined {
    const f = this.field(t, i);
    return f === 0 ? undefined : this.table(f + this.i32(f));
  }

  /** Start and length of vector field `i`, checked to fit: length × elementSize bytes. */
  vector(t: Table, i: number, elementSize: number): { start: number; length: number } | undefined {
    const f = this.field(t, i);
    if (f === 0) return undefined;
    const v = f + this.i32(f);
    const length = this.i32(v);
    if (length < 0) this.fail(`negative vector length ${length}`);
    this.need(v + 4, length * elementSize);
    return { start: v + 4, length };
  }

  tables(t: Table, i: number): Table[] {
    const v = this.vector(t, i, 4);
    const out: Table[] = [];
    for (let k = 0; v && k < v.length; k++) {
      const e = v.start + 4 * k;
      out.push(this.table(e + this.i32(e)));
    }
    return out;
  }

  u8Field(t: Table, i: number): number {
    const f = this.field(t, i);
    return f === 0 ? 0 : this.u8(f);
  }

  i64Field(t: Table, i: number): number {
    const f = this.field(t, i);
    return f === 0 ? 0 : this.i64(f);
  }
}

const MAX_FIELD_DEPTH = 64;

/** Schema.fbs `Type` union ids whose tables hold vectors or strings. */
const TYPE_TIMESTAMP = 10;
const TYPE_UNION = 14;

function checkKeyValues(fb: FlatBuffer, t: Table, i: number): void {
  for (const kv of fb.tables(t, i)) {
    fb.vector(kv, 0, 1);
    fb.vector(kv, 1, 1);
  }
}

function checkField(fb: FlatBuffer, t: Table, depth: number): void {
  if (depth > MAX_FIELD_DEPTH) fb.fail(`fields nested deeper than ${MAX_FIELD_DEPTH}`);
  fb.vector(t, 0, 1); // name
  const typeType = fb.u8Field(t, 2);
  const type = fb.subtable(t, 3);
  if (type && typeType === TYPE_TIMESTAMP) fb.vector(type, 1, 1); // timezone
  if (type && typeType === TYPE_UNION) fb.vector(type, 1, 4); // typeIds
  const dictionary = fb.subtable(t, 4);
  if (dictionary) fb.subtable(dictionary, 1); // indexType
  for (const child of fb.tables(t, 5)) checkField(fb, child, depth + 1);
  checkKeyValues(fb, t, 6);
}

function checkSchemaTable(fb: FlatBuffer, t: Table): void {
  for (const f of fb.tables(t, 1)) checkField(fb, f, 0);
  checkKeyValues(fb, t, 2);
  fb.vector(t, 3, 8); // features
}

function checkRecordBatchTable(fb: FlatBuffer, t: Table | undefined): void {
  if (!t) fb.fail('record batch message without a header');
  if (fb.i64Field(t, 0) < 0) fb.fail('negative row count');
  fb.vector(t, 1, 16); // nodes
  fb.vector(t, 2, 16); // buffers
  fb.subtable(t, 3); // compression
  fb.vector(t, 4, 8); // variadicBufferCounts
}

/** Message.fbs `MessageHeader` ids. */
export const MESSAGE_SCHEMA = 1;
export const MESSAGE_DICTIONARY_BATCH = 2;
export const MESSAGE_RECORD_BATCH = 3;

/**
 * Check one message's metadata (the Message flatbuffer). Returns its header kind and body
 * length.
 *
 * @throws IpcMetadataError naming `what`
 */
export function checkMessageMetadata(metadata: Uint8Array, what = 'IPC message'): { kind: number; bodyLength: number } {
  const fb: FlatBuffer = new FlatBuffer(metadata, what);
  const t = fb.root();
  const kind = fb.u8Field(t, 1);
  const header = fb.subtable(t, 2);
  const bodyLength = fb.i64Field(t, 3);
  if (bodyLength < 0 || !Number.isSafeInteger(bodyLength)) fb.fail(`bad body length ${bodyLength}`);
  checkKeyValues(fb, t, 4);
  switch (kind) {
    case MESSAGE_SCHEMA:
      if (!header) fb.fail('schema message without a header');
      checkSchemaTable(fb, header);
      break;
    case MESSAGE_DICTIONARY_BATCH:
      if (!header) fb.fail('dictionary message without a header');
      checkRecordBatchTable(fb, fb.subtable(header, 1));
      break;
    case MESSAGE_RECORD_BATCH:
      checkRecordBatchTable(fb, header);
      break;
    default:
      fb.fail(`unsupported message kind ${kind}`);
  }
  return { kind, bodyLength };
}

/**
 * Check an Arrow file footer (the Footer flatbuffer, without its length and magic).
 *
 * @throws IpcMetadataError naming `what`
 */
export function checkFooterMetadata(footer: Uint8Array, what = 'Arrow file footer'): void {
  const fb: FlatBuffer = new FlatBuffer(footer, what);
  const t = fb.root();
  const schema = fb.subtable(t, 1);
  if (!schema) fb.fail('no schema');
  checkSchemaTable(fb, schema);
  fb.vector(t, 2, 24); // dictionaries (Block structs)
  fb.vector(t, 3, 24); // recordBatches
  checkKeyValues(fb, t, 4);
}

/**
 * Where the message at `pos` of an IPC stream or file lies: its metadata and the end of its
 * body. Returns undefined at an end-of-stream marker (or the end of the bytes), as
 * apache-arrow's message reader does.
 */
function frameAt(bytes: Uint8Array, pos: number, what: string): { metadata: Uint8Array; kind: number; end: number } | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const int32At = (p: number) => (p + 4 <= bytes.byteLength ? dv.getInt32(p, true) : 0);
  let length = int32At(pos);
  pos += 4;
  if (length === -1) {
    length = int32At(pos);
    pos += 4;
  }
  if (length === 0) return undefined;
  if (length < 0 || pos + length > bytes.byteLength) throw new IpcMetadataError(`${what}: message length ${length} at byte ${pos} runs past the end`);
  const metadata = bytes.subarray(pos, pos + length);
  const { kind, bodyLength } = checkMessageMetadata(metadata, `${what}: message at byte ${pos}`);
  const end = pos + length + bodyLength;
  if (end > bytes.byteLength) throw new IpcMetadataError(`${what}: message body at byte ${pos + length} runs past the end`);
  return { metadata, kind, end };
}

const FILE_MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // ARROW1

/** Where each top-level column's field node sits in a record batch, and how many nodes a batch has. */
export interface ColumnNodes {
  at: number[];
  total: number;
}

/**
 * Where each top-level column's field node sits in a record batch (nodes are the field tree
 * in pre-order; a dictionary-encoded field is one node, its indices), and how many nodes a
 * batch has. From the Schema table of a schema message or a file footer.
 */
function topLevelNodes(fb: FlatBuffer, schema: Table): ColumnNodes {
  const count = (field: Table): number => (fb.subtable(field, 4) ? 1 : 1 + fb.tables(field, 5).reduce((n, c) => n + count(c), 0));
  const at: number[] = [];
  let total = 0;
  for (const f of fb.tables(schema, 1)) {
    at.push(total);
    total += count(f);
  }
  return { at, total };
}

/**
 * A record batch's top-level columns must each have the batch's length: apache-arrow pads a
 * shorter column with nulls, or cuts every column to a shorter batch length, without a word.
 * Takes the metadata of a record batch message that passed `checkMessageMetadata`, and
 * returns the batch's row count.
 *
 * @throws IpcMetadataError naming `what`
 */
export function checkBatchLengths(metadata: Uint8Array, columns: ColumnNodes, what: string): number {
  const fb = new FlatBuffer(metadata, what);
  const header = fb.subtable(fb.root(), 2)!;
  const length = fb.i64Field(header, 0);
  const nodes = fb.vector(header, 1, 16);
  const n = nodes?.length ?? 0;
  if (n !== columns.total) throw new IpcMetadataError(`${what}: ${n} field nodes for a schema of ${columns.total}`);
  for (const [c, i] of columns.at.entries()) {
    const nodeLength = fb.i64(nodes!.start + 16 * i);
    if (nodeLength !== length) throw new IpcMetadataError(`${what}: column ${c} has ${nodeLength} rows in a batch of ${length}`);
  }
  return length;
}

/** The top-level node positions of the schema in a schema message's metadata (checked by `checkMessageMetadata`). */
export function schemaMessageColumns(metadata: Uint8Array, what: string): ColumnNodes {
  const fb = new FlatBuffer(metadata, what);
  return topLevelNodes(fb, fb.subtable(fb.root(), 2)!);
}

/** The top-level node positions of the schema in an Arrow file footer (checked by `checkFooterMetadata`). */
export function footerColumns(footer: Uint8Array, what: string): ColumnNodes {
  const fb = new FlatBuffer(footer, what);
  return topLevelNodes(fb, fb.subtable(fb.root(), 1)!);
}

/**
 * Check all the metadata of a whole Arrow IPC file or stream held in memory, the way
 * apache-arrow will walk it: a file through its footer's blocks, a stream message by message.
 *
 * @throws IpcMetadataError saying what is wrong
 */
export function checkIpcMetadata(bytes: Uint8Array, what = 'Arrow IPC data'): void {
  const isFile = bytes.byteLength >= 6 && FILE_MAGIC.every((b, i) => bytes[i] === b);
  if (!isFile) {
    let pos = 0;
    let messages = 0;
    let columns: ColumnNodes | undefined;
    for (;;) {
      const frame = frameAt(bytes, pos, what);
      if (!frame) return;
      if (messages++ === 0) {
        if (frame.kind !== MESSAGE_SCHEMA) throw new IpcMetadataError(`${what}: the stream does not start with a schema`);
        columns = schemaMessageColumns(frame.metadata, `${what}: schema`);
      }
      if (frame.kind === MESSAGE_RECORD_BATCH) checkBatchLengths(frame.metadata, columns!, `${what}: record batch at byte ${pos}`);
      pos = frame.end;
    }
  }
  const n = bytes.byteLength;
  if (n < 22) throw new IpcMetadataError(`${what}: too short for an Arrow file`);
  const footerLength = new DataView(bytes.buffer, bytes.byteOffset, n).getInt32(n - 10, true);
  const footerStart = n - 10 - footerLength;
  if (footerLength <= 0 || footerStart < 8) throw new IpcMetadataError(`${what}: bad footer length ${footerLength}`);
  const footer = bytes.subarray(footerStart, n - 10);
  checkFooterMetadata(footer, `${what} (footer)`);
  const columns = footerColumns(footer, `${what} (footer)`);
  // The blocks, read as apache-arrow's file reader reads them.
  const fdv = new DataView(footer.buffer, footer.byteOffset, footer.byteLength);
  const root = fdv.getInt32(0, true);
  const vt = root - fdv.getInt32(root, true);
  const vsize = fdv.getInt16(vt, true);
  for (const [field, kind] of [
    [2, MESSAGE_DICTIONARY_BATCH],
    [3, MESSAGE_RECORD_BATCH],
  ] as const) {
    const o = 4 + 2 * field;
    const f = o < vsize ? fdv.getInt16(vt + o, true) : 0;
    if (f === 0) continue;
    const v = root + f + fdv.getInt32(root + f, true);
    const count = fdv.getInt32(v, true);
    for (let k = 0; k < count; k++) {
      const offset = Number(fdv.getBigInt64(v + 4 + 24 * k, true));
      if (!(offset >= 8 && offset < footerStart)) throw new IpcMetadataError(`${what}: block ${k} at offset ${offset} is outside the file's batches`);
      const frame = frameAt(bytes.subarray(0, footerStart), offset, what);
      if (!frame || frame.kind !== kind) {
        throw new IpcMetadataError(`${what}: block ${k} does not hold a ${kind === MESSAGE_RECORD_BATCH ? 'record batch' : 'dictionary batch'}`);
      }
      if (kind === MESSAGE_RECORD_BATCH) checkBatchLengths(frame.metadata, columns, `${what}: record batch ${k}`);
    }
  }
}
