/**
 * Selecting rows of Arrow record batches by position, into new batches that own their
 * buffers (so a batch read from a large fragment is not kept alive by a few selected rows).
 * apache-arrow has no such kernel.
 *
 * Flat types are gathered on their typed arrays: fixed-width values word by word (NaN payloads
 * and 64-bit integers are copied as bits, never through `number` or a per-row BigInt),
 * booleans bit by bit, variable-width values through their offsets, dictionary-encoded
 * columns by their codes (sharing the dictionary). Other types (lists, structs, maps, unions,
 * views) go through apache-arrow's builders, value by value: correct, and slow, for columns
 * nothing here indexes or filters.
 */
import * as arrow from 'apache-arrow';

/**
 * The rows `indices` (ascending positions in `batch`) of the columns of `schema` (fields of
 * `batch`, by name), as a new batch with that schema.
 */
export function takeRows(batch: arrow.RecordBatch, indices: Uint32Array, schema: arrow.Schema = batch.schema): arrow.RecordBatch {
  const count = indices.length;
  const children = schema.fields.map((f) => {
    const i = batch.schema.fields.findIndex((g) => g.name === f.name);
    if (i < 0) throw new Error(`takeRows: the batch has no column '${f.name}'`);
    return takeData(batch.data.children[i]!, indices);
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
  return takeByBuilder(data, indices);
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

function takeByBuilder(data: arrow.Data, indices: Uint32Array): arrow.Data {
  const vector = arrow.makeVector(data);
  const builder = arrow.makeBuilder({ type: data.type, nullValues: [null, undefined] });
  for (let k = 0; k < indices.length; k++) builder.append(vector.get(indices[k]!) as never);
  const chunks = builder.finish().toVector().data;
  if (chunks.length !== 1) throw new Error(`takeRows: ${String(data.type)} came back in ${chunks.length} chunks`);
  return chunks[0]!;
}
