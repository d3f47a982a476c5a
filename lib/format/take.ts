/**
 * Selecting rows of Arrow record batches by position, into new batches that own their
 * buffers (so a batch read from a large fragment is not kept alive by a few selected rows).
 * apache-arrow has no such kernel.
 *
 * Flat types are gathered on their typed arrays: fixed-width values word by word (NaN payloads
 * and 64-bit integers are copied as bits, never through `number` or a per-row BigInt),
 * booleans bit by bit, variable-width values through their offsets, dictionary-encoded
 * columns by their codes (sharing the dictionary); structs, lists, large lists, fixed-size
 * lists and maps by taking the selected rows of their children. Unions and view types are
 * refused with a ColumnTypeError naming the column.
 */
import * as arrow from 'apache-arrow';
import { ColumnTypeError } from '../errors.js';

/**
 * The rows `indices` (ascending positions in `batch`) of the columns of `schema` (fields of
 * `batch`, by name), as a new batch with that schema.
 */
export function takeRows(batch: arrow.RecordBatch, indices: Uint32Array, schema: arrow.Schema = batch.schema): arrow.RecordBatch {
  const count = indices.length;
  const children = schema.fields.map((f) => {
    const i = batch.schema.fields.findIndex((g) => g.name === f.name);
    if (i < 0) throw new Error(`takeRows: the batch has no column '${f.name}'`);
    try {
      return takeData(batch.data.children[i]!, indices);
    } catch (err) {
      if (err instanceof ColumnTypeError) throw new ColumnTypeError(`column '${f.name}': ${err.message}`);
      throw err;
    }
  });
  return new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: count, nullCount: 0, children }));
}

/** Rows `indices` (ascending positions relative to `data.offset`) of one column. */
export function takeData(data: arrow.Data, indices: Uint32Array): arrow.Data {
  const count = indices.length;
  const type = data.type;
  const D = arrow.DataType;
  const { nullCount, nullBitmap } = takeValidity(data, indices);
  const base = { type, length: count, nullCount, nullBitmap } as const;
  if (D.isNull(type)) return arrow.makeData({ type, length: count });
  if (D.isDictionary(type)) {
    return arrow.makeData({ ...base, data: takeFixed(data.values, data.offset, 1, indices), dictionary: data.dictionary } as never);
  }
  if (D.isUtf8(type) || D.isBinary(type) || D.isLargeUtf8(type) || D.isLargeBinary(type)) {
    const { valueOffsets, values } = takeVariable(data, indices);
    return arrow.makeData({ ...base, valueOffsets, data: values } as never);
  }
  if (D.isBool(type)) return arrow.makeData({ ...base, data: takeBits(data.values as Uint8Array, data.offset, indices) } as never);
  if (isFixedWidth(type)) return arrow.makeData({ ...base, data: takeFixed(data.values, data.offset, data.stride, indices) } as never);
  return takeNested(data, indices);
}

function isFixedWidth(t: arrow.DataType): boolean {
  const D = arrow.DataType;
  return D.isInt(t) || D.isFloat(t) || D.isDate(t) || D.isTime(t) || D.isTimestamp(t) || D.isDecimal(t) || D.isFixedSizeBinary(t) || D.isInterval(t) || D.isDuration(t);
}

function takeValidity(data: arrow.Data, indices: Uint32Array): { nullCount: number; nullBitmap?: Uint8Array } {
  const bitmap = data.nullBitmap;
  if (!(data.nullCount > 0 && bitmap && bitmap.length > 0)) return { nullCount: 0 };
  const off = data.offset;
  const out = new Uint8Array((indices.length + 7) >> 3);
  let valid = 0;
  for (let k = 0; k < indices.length; k++) {
    const j = off + indices[k]!;
    if ((bitmap[j >> 3]! >> (j & 7)) & 1) {
      out[k >> 3]! |= 1 << (k & 7);
      valid++;
    }
  }
  const nullCount = indices.length - valid;
  return nullCount > 0 ? { nullCount, nullBitmap: out } : { nullCount: 0 };
}

type Typed = Exclude<arrow.Data['values'], undefined>;

/** Gather `stride` elements per row, as raw words, into a typed array of the same kind. */
function takeFixed(values: Typed, offset: number, stride: number, indices: Uint32Array): Typed {
  const Ctor = values.constructor as new (buffer: ArrayBuffer, byteOffset: number, length: number) => Typed;
  const width = values.BYTES_PER_ELEMENT * stride;
  const count = indices.length;
  // Widest word that divides the element width and the buffer's alignment.
  const wordBytes = width % 4 === 0 && values.byteOffset % 4 === 0 ? 4 : width % 2 === 0 && values.byteOffset % 2 === 0 ? 2 : 1;
  const words = width / wordBytes;
  const View = wordBytes === 4 ? Uint32Array : wordBytes === 2 ? Uint16Array : Uint8Array;
  const src = new View(values.buffer, values.byteOffset, (values.byteLength / wordBytes) | 0);
  const out = new View(count * words);
  if (words === 1) {
    for (let k = 0; k < count; k++) out[k] = src[offset + indices[k]!]!;
  } else if (words === 2) {
    for (let k = 0; k < count; k++) {
      const s = 2 * (offset + indices[k]!);
      out[2 * k] = src[s]!;
      out[2 * k + 1] = src[s + 1]!;
    }
  } else {
    for (let k = 0; k < count; k++) {
      const s = words * (offset + indices[k]!);
      for (let w = 0; w < words; w++) out[words * k + w] = src[s + w]!;
    }
  }
  return new Ctor(out.buffer as ArrayBuffer, 0, count * stride);
}

function takeBits(bits: Uint8Array, offset: number, indices: Uint32Array): Uint8Array {
  const out = new Uint8Array((indices.length + 7) >> 3);
  for (let k = 0; k < indices.length; k++) {
    const j = offset + indices[k]!;
    if ((bits[j >> 3]! >> (j & 7)) & 1) out[k >> 3]! |= 1 << (k & 7);
  }
  return out;
}

function takeVariable(data: arrow.Data, indices: Uint32Array): { valueOffsets: Int32Array | BigInt64Array; values: Uint8Array } {
  const off = data.offset;
  const offsets = data.valueOffsets as Int32Array | BigInt64Array;
  const bytes = (data.values as Uint8Array | undefined) ?? new Uint8Array(0);
  const large = offsets instanceof BigInt64Array;
  const start = (j: number) => (large ? Number(offsets[j]!) : (offsets[j] as number));
  let total = 0;
  for (let k = 0; k < indices.length; k++) {
    const j = off + indices[k]!;
    total += start(j + 1) - start(j);
  }
  const values = new Uint8Array(total);
  const valueOffsets = large ? new BigInt64Array(indices.length + 1) : new Int32Array(indices.length + 1);
  let pos = 0;
  for (let k = 0; k < indices.length; k++) {
    const j = off + indices[k]!;
    const a = start(j);
    const b = start(j + 1);
    // Short values are cheaper to copy by hand than through a subarray per row.
    if (b - a <= 16) for (let x = a; x < b; x++) values[pos++] = bytes[x]!;
    else {
      values.set(bytes.subarray(a, b), pos);
      pos += b - a;
    }
    if (large) (valueOffsets as BigInt64Array)[k + 1] = BigInt(pos);
    else (valueOffsets as Int32Array)[k + 1] = pos;
  }
  return { valueOffsets, values };
}

/** Positions in a list's child of the values of rows `indices`, and the new offsets. */
function takeListChildren(data: arrow.Data, indices: Uint32Array): { childIndices: Uint32Array; valueOffsets: Int32Array | BigInt64Array } {
  const off = data.offset;
  const offsets = data.valueOffsets as Int32Array | BigInt64Array;
  const large = offsets instanceof BigInt64Array;
  const at = (j: number) => (large ? Number(offsets[j]!) : (offsets[j] as number));
  let total = 0;
  for (let k = 0; k < indices.length; k++) total += at(off + indices[k]! + 1) - at(off + indices[k]!);
  const childIndices = new Uint32Array(total);
  const valueOffsets = large ? new BigInt64Array(indices.length + 1) : new Int32Array(indices.length + 1);
  let pos = 0;
  for (let k = 0; k < indices.length; k++) {
    const j = off + indices[k]!;
    for (let x = at(j); x < at(j + 1); x++) childIndices[pos++] = x;
    if (large) (valueOffsets as BigInt64Array)[k + 1] = BigInt(pos);
    else (valueOffsets as Int32Array)[k + 1] = pos;
  }
  return { childIndices, valueOffsets };
}

/** Nested types: the selected rows of their children, recursively. */
function takeNested(data: arrow.Data, indices: Uint32Array): arrow.Data {
  const type = data.type;
  const D = arrow.DataType;
  const { nullCount, nullBitmap } = takeValidity(data, indices);
  const base = { type, length: indices.length, nullCount, nullBitmap } as const;
  if (D.isStruct(type)) {
    // Arrow JS slices a struct's children with it: row i of the struct is row i of each child.
    return arrow.makeData({ ...base, children: data.children.map((c) => takeData(c, indices)) } as never);
  }
  if (D.isList(type) || D.isMap(type) || (type as arrow.DataType).typeId === arrow.Type.LargeList) {
    const { childIndices, valueOffsets } = takeListChildren(data, indices);
    return arrow.makeData({ ...base, valueOffsets, child: takeData(data.children[0]!, childIndices) } as never);
  }
  if (D.isFixedSizeList(type)) {
    const size = (type as arrow.FixedSizeList).listSize;
    const childIndices = new Uint32Array(indices.length * size);
    for (let k = 0; k < indices.length; k++) for (let x = 0; x < size; x++) childIndices[k * size + x] = indices[k]! * size + x;
    return arrow.makeData({ ...base, child: takeData(data.children[0]!, childIndices) } as never);
  }
  throw new ColumnTypeError(`cannot select rows of a ${String(type)} column`);
}
