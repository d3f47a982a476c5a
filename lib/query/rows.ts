/**
 * Applying a predicate to rows: the row-level counterpart of the indexes, for `scan`, which
 * must return exactly the rows an exact index would (zone maps only narrow the candidates).
 *
 * The semantics are the indexes' (index-format.md), and so is the code that decides them:
 * each `column op literal` becomes a Condition through `coerceComparison` (the same literal
 * coercion the indexes use: exact 64-bit bounds, decimals against integer columns, ISO
 * strings in the column's unit), and values compare in the order of `column-type.ts`:
 * - SQL three-valued logic: the predicate arrives in negation normal form (`normalize`), where
 *   a row is selected exactly when every AND branch and some OR branch is TRUE, so UNKNOWN
 *   (a NULL operand) counts as "not TRUE" at each leaf and NOT needs no third value;
 * - PostgreSQL float order: -0.0 = 0.0, NaN = NaN and above +Infinity;
 * - 64-bit integers (Int64, UInt64, Date64, timestamps, Time64) compare exactly, as two 32-bit
 *   words, never as `number`;
 * - strings and binary by their bytes (UTF-8 byte order = code-point order);
 * - dictionary-encoded strings: each dictionary entry is tested once and codes map through
 *   the result (a null entry is a null row, as for the indexes);
 * - dates, timestamps and times as their stored integers in their own unit.
 *
 * Loops run over the typed arrays of the Arrow data (validity bits, values, offsets), never
 * per-row objects.
 */
import * as arrow from 'apache-arrow';
import { ColumnTypeError, MissingColumnError } from '../errors.js';
import { compareFloat, describeColumnType, float16ToNumber, type ColumnType } from '../format/column-type.js';
import type { Condition } from '../indexes/kind.js';
import { coerceComparison, coerceList } from './coerce.js';
import type { Normalized } from './evaluate.js';

/** A predicate bound to one schema (one fragment's), ready to filter its batches. */
export interface RowPredicate {
  /**
   * Clear in `selected` (1 = candidate, one byte per row of `batch`) every row for which the
   * predicate is not TRUE; returns how many stay selected.
   */
  filter(batch: arrow.RecordBatch, selected: Uint8Array): number;
}

/** Leaf results by the sign of (value − literal): index 0 for <, 1 for =, 2 for >. */
const OUTCOMES: Record<Extract<Condition, { kind: 'cmp' }>['op'], Uint8Array> = {
  '=': Uint8Array.of(0, 1, 0),
  '!=': Uint8Array.of(1, 0, 1),
  '<': Uint8Array.of(1, 0, 0),
  '<=': Uint8Array.of(1, 1, 0),
  '>': Uint8Array.of(0, 0, 1),
  '>=': Uint8Array.of(0, 1, 1),
};

/** Marks in `out` the rows selected in `sel` for which the leaf is TRUE (others 0). */
type LeafTest = (data: arrow.Data, sel: Uint8Array, out: Uint8Array) => void;

type Compiled = { kind: 'and' | 'or'; children: Compiled[] } | { kind: 'leaf'; column: number; test: LeafTest };

/**
 * Bind a normalised predicate to `schema`: each leaf's literal is coerced to its column's type
 * in this schema (so each fragment is judged in its own types, as its index entries were).
 *
 * @param where - how to name the fragment in errors
 * @throws MissingColumnError when the schema lacks a column the predicate reads;
 *   ColumnTypeError when such a column's type cannot be compared;
 *   PredicateTypeError when a literal does not fit its column's type
 */
export function compileRowPredicate(tree: Normalized, schema: arrow.Schema, where: string): RowPredicate {
  const types = new Map<string, { index: number; ct: ColumnType }>();
  const column = (name: string) => {
    let t = types.get(name);
    if (!t) {
      const index = schema.fields.findIndex((f) => f.name === name);
      if (index < 0) {
        const have = schema.fields.map((f) => f.name).join(', ') || '(none)';
        throw new MissingColumnError(`column '${name}' not found in fragment ${where} (columns: ${have})`);
      }
      let ct: ColumnType;
      try {
        ct = describeColumnType(name, schema.fields[index]!.type);
      } catch (err) {
        throw new ColumnTypeError(`${(err as Error).message} (fragment ${where})`);
      }
      t = { index, ct };
      types.set(name, t);
    }
    return t;
  };
  const compile = (n: Normalized): Compiled => {
    if (n.kind !== 'leaf') return { kind: n.kind, children: n.children.map(compile) };
    const leaf = n.leaf;
    const { index, ct } = column(leaf.column);
    let cond: Condition;
    if (leaf.kind === 'cmp') cond = coerceComparison(ct, leaf.column, leaf.op, leaf.value);
    else if (leaf.kind === 'in') cond = coerceList(ct, leaf.column, leaf.values, leaf.negated);
    else if (leaf.kind === 'unknown') cond = { kind: 'none' };
    else cond = { kind: leaf.kind };
    return { kind: 'leaf', column: index, test: leafTest(ct, cond) };
  };
  const root = compile(tree);
  return {
    filter(batch, selected) {
      const n = batch.numRows;
      if (selected.length < n) throw new RangeError(`selection of ${selected.length} rows for a batch of ${n}`);
      const columns = batch.data.children;
      const run = (c: Compiled, sel: Uint8Array): Uint8Array => {
        if (c.kind === 'leaf') {
          const out = new Uint8Array(n);
          c.test(columns[c.column]!, sel, out);
          return out;
        }
        if (c.kind === 'and') {
          let cur = sel;
          for (const child of c.children) cur = run(child, cur);
          return cur;
        }
        // OR: each branch only looks at rows no earlier branch has made TRUE.
        const acc = new Uint8Array(n);
        const open = sel.slice(0, n);
        for (const child of c.children) {
          const r = run(child, open);
          for (let i = 0; i < n; i++) {
            if (r[i]) {
              acc[i] = 1;
              open[i] = 0;
            }
          }
        }
        return acc;
      };
      const result = run(root, selected);
      let count = 0;
      for (let i = 0; i < n; i++) {
        const v = result[i]!;
        selected[i] = v;
        count += v;
      }
      return count;
    },
  };
}

/** The validity bitmap of `data`, or undefined when every slot is valid. */
function nullsOf(data: arrow.Data): Uint8Array | undefined {
  return data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 ? data.nullBitmap : undefined;
}

function leafTest(ct: ColumnType, cond: Condition): LeafTest {
  switch (cond.kind) {
    case 'none':
      return () => {};
    case 'isNull':
    case 'notNull': {
      const want = cond.kind === 'notNull' ? 1 : 0;
      return (data, sel, out) => {
        const valid = rowValidity(data);
        for (let i = 0; i < data.length; i++) if (sel[i] && valid[i] === want) out[i] = 1;
      };
    }
    case 'cmp':
      return compareTest(ct, OUTCOMES[cond.op], cond.value);
    case 'in':
      return listTest(cond.values.map((v) => compareTest(ct, OUTCOMES[cond.negated ? '!=' : '='], v)), cond.negated);
  }
}

/**
 * `x IN (a, b, …)` is `x = a OR x = b OR …`; `x NOT IN (…)` is `x != a AND x != b AND …`, so
 * a null never matches either way and each value keeps the `=` semantics (-0.0 = 0.0, NaN =
 * NaN). Each value only looks at rows still open: not yet matched (IN), not yet refuted (NOT IN).
 */
function listTest(tests: LeafTest[], negated: boolean): LeafTest {
  return (data, sel, out) => {
    const n = data.length;
    let open = sel.slice(0, n);
    if (negated) {
      for (const test of tests) {
        const next = new Uint8Array(n);
        test(data, open, next);
        open = next;
      }
      for (let i = 0; i < n; i++) if (open[i]) out[i] = 1;
      return;
    }
    const hit = new Uint8Array(n);
    for (const test of tests) {
      hit.fill(0);
      test(data, open, hit);
      for (let i = 0; i < n; i++) {
        if (hit[i]) {
          out[i] = 1;
          open[i] = 0;
        }
      }
    }
  };
}

/**
 * 1 per valid row, 0 per null one. A dictionary-encoded row is also null when its code points
 * at a null dictionary entry (the indexes count it as null too).
 */
function rowValidity(data: arrow.Data): Uint8Array {
  const n = data.length;
  const off = data.offset;
  const out = new Uint8Array(n).fill(1);
  const nulls = nullsOf(data);
  if (nulls) for (let i = 0; i < n; i++) out[i] = (nulls[(off + i) >> 3]! >> ((off + i) & 7)) & 1;
  if (data.dictionary) {
    const entryValid = dictionaryEntries(data.dictionary, (d, o) => {
      const dn = nullsOf(d);
      for (let i = 0; i < d.length; i++) o[i] = dn ? (dn[(d.offset + i) >> 3]! >> ((d.offset + i) & 7)) & 1 : 1;
    });
    mapCodes(data, entryValid, out);
  }
  return out;
}

/** Evaluate `fill` over each chunk of a dictionary, into one byte per entry. */
function dictionaryEntries(dict: arrow.Vector, fill: (d: arrow.Data, out: Uint8Array) => void): Uint8Array {
  const out = new Uint8Array(dict.length);
  let base = 0;
  for (const d of dict.data) {
    fill(d, out.subarray(base, base + d.length));
    base += d.length;
  }
  return out;
}

/** out[i] &= perEntry[code of row i] (codes may be of any integer width). */
function mapCodes(data: arrow.Data, perEntry: Uint8Array, out: Uint8Array): void {
  const off = data.offset;
  const codes = data.values as ArrayLike<number> | BigInt64Array | BigUint64Array;
  if (codes instanceof BigInt64Array || codes instanceof BigUint64Array) {
    for (let i = 0; i < data.length; i++) if (out[i]) out[i] = perEntry[Number(codes[off + i]!)] ?? 0;
    return;
  }
  for (let i = 0; i < data.length; i++) if (out[i]) out[i] = perEntry[codes[off + i]!] ?? 0;
}

function compareTest(ct: ColumnType, outcome: Uint8Array, value: unknown): LeafTest {
  switch (ct.kind) {
    case 'int': {
      const v = value as number;
      return (data, sel, out) => {
        const values = data.values as Int32Array;
        const off = data.offset;
        const nulls = nullsOf(data);
        for (let i = 0; i < data.length; i++) {
          if (!sel[i]) continue;
          const j = off + i;
          if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) continue;
          const x = values[j]!;
          out[i] = outcome[x < v ? 0 : x > v ? 2 : 1]!;
        }
      };
    }
    case 'float': {
      const v = value as number;
      return (data, sel, out) => {
        const values = data.values as Float64Array;
        const off = data.offset;
        const nulls = nullsOf(data);
        for (let i = 0; i < data.length; i++) {
          if (!sel[i]) continue;
          const j = off + i;
          if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) continue;
          const x = values[j]!;
          // Ordered comparisons first; what is left involves a NaN (compareFloat's order).
          out[i] = outcome[x < v ? 0 : x > v ? 2 : x === v ? 1 : compareFloat(x, v) + 1]!;
        }
      };
    }
    case 'float16': {
      // 65,536 bit patterns: decide each once, then look rows up by their bits.
      const v = value as number;
      const byBits = new Uint8Array(65536);
      for (let bits = 0; bits < 65536; bits++) byBits[bits] = outcome[compareFloat(float16ToNumber(bits), v) + 1]!;
      return (data, sel, out) => {
        const values = data.values as Uint16Array;
        const off = data.offset;
        const nulls = nullsOf(data);
        for (let i = 0; i < data.length; i++) {
          if (!sel[i]) continue;
          const j = off + i;
          if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) continue;
          out[i] = byBits[values[j]!]!;
        }
      };
    }
    case 'i64':
    case 'u64': {
      // Two 32-bit words per value (Arrow buffers are little-endian): the high word compares
      // signed for Int64 and unsigned for UInt64, the low word unsigned. Reading a
      // BigInt64Array element would allocate a BigInt per row.
      const signed = ct.kind === 'i64';
      const big = BigInt.asUintN(64, value as bigint);
      const vlo = Number(big & 0xffffffffn);
      const vhi = signed ? Number(BigInt.asIntN(32, big >> 32n)) : Number(big >> 32n);
      return (data, sel, out) => {
        const values = data.values as BigInt64Array;
        const words = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
        const off = data.offset;
        const nulls = nullsOf(data);
        for (let i = 0; i < data.length; i++) {
          if (!sel[i]) continue;
          const j = off + i;
          if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) continue;
          const hi = signed ? words[2 * j + 1]! | 0 : words[2 * j + 1]!;
          const lo = words[2 * j]!;
          out[i] = outcome[hi < vhi ? 0 : hi > vhi ? 2 : lo < vlo ? 0 : lo > vlo ? 2 : 1]!;
        }
      };
    }
    case 'bool': {
      const v = value ? 1 : 0;
      return (data, sel, out) => {
        const bits = data.values as Uint8Array;
        const off = data.offset;
        const nulls = nullsOf(data);
        for (let i = 0; i < data.length; i++) {
          if (!sel[i]) continue;
          const j = off + i;
          if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) continue;
          const x = (bits[j >> 3]! >> (j & 7)) & 1;
          out[i] = outcome[x - v + 1]!;
        }
      };
    }
    case 'bytes': {
      const v = value as Uint8Array;
      const plain = (data: arrow.Data, sel: Uint8Array | undefined, out: Uint8Array) => {
        const offsets = data.valueOffsets as Int32Array | BigInt64Array;
        const bytes = data.values as Uint8Array;
        const off = data.offset;
        const nulls = nullsOf(data);
        const large = offsets instanceof BigInt64Array;
        for (let i = 0; i < data.length; i++) {
          if (sel && !sel[i]) continue;
          const j = off + i;
          if (nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) continue;
          const start = large ? Number(offsets[j]!) : (offsets[j] as number);
          const end = large ? Number(offsets[j + 1]!) : (offsets[j + 1] as number);
          out[i] = outcome[compareRange(bytes, start, end, v) + 1]!;
        }
      };
      return (data, sel, out) => {
        if (!data.dictionary) return plain(data, sel, out);
        // Each entry once; a row is TRUE when it is selected, valid and its entry is.
        const perEntry = dictionaryEntries(data.dictionary, (d, o) => plain(d, undefined, o));
        const nulls = nullsOf(data);
        const off = data.offset;
        for (let i = 0; i < data.length; i++) {
          const j = off + i;
          out[i] = sel[i] && !(nulls && ((nulls[j >> 3]! >> (j & 7)) & 1) === 0) ? 1 : 0;
        }
        mapCodes(data, perEntry, out);
      };
    }
  }
}

/** Sign of bytes[start, end) − v in unsigned byte order, as −1, 0 or 1. */
function compareRange(bytes: Uint8Array, start: number, end: number, v: Uint8Array): number {
  const len = end - start;
  const n = len < v.length ? len : v.length;
  for (let k = 0; k < n; k++) {
    const d = bytes[start + k]! - v[k]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return len < v.length ? -1 : len > v.length ? 1 : 0;
}
