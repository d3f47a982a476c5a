/**
 * Random well-typed predicates over a generated dataset. Literals come mostly from values that
 * are in the data (so predicates match rows) and otherwise from the edges of the column's type
 * (NaN, signed zeros, infinities, half-way decimals, values just past the type's range, ISO
 * strings, astral and U+E000–U+FFFF strings), which is where indexes go wrong.
 */
import fc from 'fast-check';
import type { CompareOp, Literal, Predicate } from '../../lib/query/ast.js';
import { type ColumnSpec, type ColumnType, type GeneratedDataset, intRange, isTemporal, typeFamily } from './dataset.js';

const OPS: readonly CompareOp[] = ['=', '!=', '<', '<=', '>', '>='];

const NULL: Literal = { kind: 'null' };
const num = (text: string): Literal => ({ kind: 'number', text });
const str = (value: string): Literal => ({ kind: 'string', value });

/** A number literal's text for a double: `Number(text)` gives back exactly `x`. */
export function doubleText(x: number): string {
  if (Object.is(x, -0)) return '-0';
  return String(x); // NaN, Infinity, -Infinity, and e+NN exponents are all normalised forms
}

function pad(n: bigint, width: number): string {
  const s = (n < 0n ? -n : n).toString();
  return (n < 0n ? '-' : '') + s.padStart(width, '0');
}

function floorDivMod(a: bigint, b: bigint): [bigint, bigint] {
  let q = a / b;
  let r = a % b;
  if (r < 0n) {
    q -= 1n;
    r += b;
  }
  return [q, r];
}

/** 1970-01-01 + days as (year, month, day), proleptic Gregorian (Hinnant's civil_from_days). */
function civilFromDays(days: bigint): [bigint, bigint, bigint] {
  const z = days + 719_468n;
  const [era] = floorDivMod(z, 146_097n);
  const doe = z - era * 146_097n;
  const yoe = (doe - doe / 1460n + doe / 36_524n - doe / 146_096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const d = doy - (153n * mp + 2n) / 5n + 1n;
  const m = mp < 10n ? mp + 3n : mp - 9n;
  const y = yoe + era * 400n + (m <= 2n ? 1n : 0n);
  return [y, m, d];
}

const UNITS_PER_DAY: Record<'date32' | 'date64' | 'timestamp_ms' | 'timestamp_us_utc', bigint> = {
  date32: 1n,
  date64: 86_400_000n,
  timestamp_ms: 86_400_000n,
  timestamp_us_utc: 86_400_000_000n,
};

/**
 * ISO spellings of a stored temporal value that the oracle maps back to exactly that value;
 * empty when the year is outside 0000–9999.
 */
export function isoSpellings(type: 'date32' | 'date64' | 'timestamp_ms' | 'timestamp_us_utc', v: bigint): string[] {
  const [days, within] = floorDivMod(v, UNITS_PER_DAY[type]);
  const [y, m, d] = civilFromDays(days);
  if (y < 0n || y > 9999n) return [];
  const date = `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}`;
  if (type === 'date32') return [date];
  const unitsPerSecond = type === 'timestamp_us_utc' ? 1_000_000n : 1000n;
  const [secs, frac] = floorDivMod(within, unitsPerSecond);
  const time = `${pad(secs / 3600n, 2)}:${pad((secs / 60n) % 60n, 2)}:${pad(secs % 60n, 2)}`;
  const fracDigits = type === 'timestamp_us_utc' ? 6 : 3;
  const out: string[] = [];
  if (within === 0n) out.push(date);
  if (frac === 0n) out.push(`${date}T${time}`, `${date}T${time}Z`);
  out.push(`${date}T${time}.${pad(frac, fracDigits)}Z`);
  if (type === 'timestamp_us_utc' && frac % 1000n === 0n) out.push(`${date}T${time}.${pad(frac / 1000n, 3)}`);
  return out;
}

const STRING_EDGE_LITERALS: readonly string[] = ['', 'a', 'b', 'é', '\u0000', '\ue000', '\uffff', '\u{10000}', '\u{1f600}', '\u{10ffff}', 'a\u{1f600}', 'a\uffff', '\u00ff', '\ufeff', '\ufeffa'];

function presentValues(ds: GeneratedDataset, column: string): unknown[] {
  const out: unknown[] = [];
  for (const f of ds.fragments) for (const v of f.rows[column] ?? []) if (v !== null && v !== undefined) out.push(v);
  return out;
}

/** Literals well-typed for the column, as two pools: from the data, and edge values. */
function literalPools(type: ColumnType, present: readonly unknown[]): { data: Literal[]; edge: Literal[] } {
  const data: Literal[] = [];
  const edge: Literal[] = [];
  switch (typeFamily(type)) {
    case 'float': {
      for (const v of present) {
        const x = v as number;
        data.push(num(doubleText(x)));
        // Just above the value as a double: a strict bound right next to it.
        if (Number.isFinite(x) && type === 'float64') edge.push(num(doubleText(x + Math.abs(x) * Number.EPSILON || Number.MIN_VALUE)));
      }
      // Only literals within the double range: beyond it (1e309, 2e-324) a comparison with a
      // float column is an error, as in PostgreSQL (test/query/literals.test.ts).
      for (const t of ['NaN', 'Infinity', '-Infinity', '0', '-0', '1', '-1', '2.5', '-2.5', '0.1', '1e300', '1.7976931348623157e+308', '-1.7976931348623157e+308', '5e-324', '-5e-324', '65504', '65520', '3.4028234663852886e+38', '9007199254740993']) {
        edge.push(num(t));
      }
      break;
    }
    case 'int': {
      const [min, max] = intRange(type);
      for (const v of present) {
        const b = typeof v === 'bigint' ? v : BigInt(v as number);
        data.push(num(b.toString()));
        edge.push(num(`${b}.5`), num(`${b - 1n}.5`), num(`${b}e0`));
        if (isTemporal(type)) for (const s of isoSpellings(type, b)) data.push(str(s));
      }
      for (const b of [min, max, min - 1n, max + 1n, 0n, -1n, 1n, 2n ** 53n + 1n, 2n ** 63n, -(2n ** 63n) - 1n, 2n ** 64n]) edge.push(num(b.toString()));
      for (const t of ['NaN', 'Infinity', '-Infinity', '-0', '0.0', '2.5', '-2.5', '1e3', '15e-1', '1e30', '-1e30', `${max}.5`, `${min}.5`, `${min - 1n}.5`, '0.000001']) edge.push(num(t));
      if (isTemporal(type)) {
        // Only spellings exact in the column's unit: whether a time of day on a date column
        // truncates or compares as a fraction is not pinned down by the contract.
        const dates = ['1970-01-01', '1969-12-31', '2000-02-29', '0001-01-01', '9999-12-31'];
        const times = ['1970-01-01T00:00:00', '1970-01-01T00:00:00Z', '1969-12-31T23:59:59.999Z', '2000-02-29T12:00:00', '9999-12-31T23:59:59.999Z', '1970-01-01T00:00:00.001'];
        for (const s of type === 'date32' ? dates : [...dates, ...times]) edge.push(str(s));
      }
      break;
    }
    case 'string':
      for (const v of present) data.push(str(v as string));
      for (const s of STRING_EDGE_LITERALS) edge.push(str(s));
      for (const v of present.slice(0, 8)) {
        const s = v as string;
        if (s.length > 0) edge.push(str([...s].slice(0, -1).join('')), str(`${s}\u0000`));
      }
      break;
    case 'binary': {
      const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
      for (const v of present) {
        try {
          data.push(str(strict.decode(v as Uint8Array)));
        } catch {
          // not UTF-8: no string literal spells these bytes
        }
      }
      for (const s of STRING_EDGE_LITERALS) edge.push(str(s));
      break;
    }
    case 'bool':
      data.push({ kind: 'bool', value: true }, { kind: 'bool', value: false });
      edge.push({ kind: 'bool', value: true }, { kind: 'bool', value: false });
      break;
  }
  return { data, edge };
}

function literalArb(pools: { data: Literal[]; edge: Literal[] }): fc.Arbitrary<Literal> {
  const choices: fc.WeightedArbitrary<Literal>[] = [
    { weight: 1, arbitrary: fc.constant(NULL) },
    { weight: 8, arbitrary: fc.constantFrom(...pools.edge) },
  ];
  if (pools.data.length > 0) choices.push({ weight: 14, arbitrary: fc.constantFrom(...pools.data) });
  return fc.oneof(...choices);
}

/** A non-null literal: IN lists get NULL only on purpose, through `inArb`. */
function nonNullLiteralArb(pools: { data: Literal[]; edge: Literal[] }): fc.Arbitrary<Literal> {
  return pools.data.length > 0 ? fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...pools.data) }, { weight: 1, arbitrary: fc.constantFrom(...pools.edge) }) : fc.constantFrom(...pools.edge);
}

function leafArb(column: ColumnSpec, pools: { data: Literal[]; edge: Literal[] }): fc.Arbitrary<Predicate> {
  const lit = literalArb(pools);
  const name = column.name;
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constantFrom(...OPS), value: lit }).map(({ op, value }): Predicate => ({ kind: 'compare', column: name, op, value })) },
    { weight: 2, arbitrary: fc.record({ low: lit, high: lit, negated: fc.boolean() }).map(({ low, high, negated }): Predicate => ({ kind: 'between', column: name, low, high, negated })) },
    {
      weight: 3,
      arbitrary: fc
        .record({ values: fc.array(nonNullLiteralArb(pools), { minLength: 1, maxLength: 4 }), withNull: fc.integer({ min: 0, max: 7 }), negated: fc.boolean() })
        .map(({ values, withNull, negated }): Predicate => {
          // About a quarter of the lists carry a NULL (first or later), which changes NOT IN completely.
          const list = withNull < 2 ? [...values.slice(0, withNull), NULL, ...values.slice(withNull)].slice(0, 4) : values;
          return { kind: 'in', column: name, values: list, negated };
        }),
    },
    { weight: 1, arbitrary: fc.boolean().map((negated): Predicate => ({ kind: 'isNull', column: name, negated })) },
  );
}

/** Leaf predicates on the dataset's columns, nested in AND/OR/NOT to depth about 3. */
export function predicateArb(ds: GeneratedDataset, options: { maxDepth?: number } = {}): fc.Arbitrary<Predicate> {
  const maxDepth = options.maxDepth ?? 3;
  if (ds.columns.length === 0) throw new Error('predicateArb: dataset has no columns');
  const leaves = fc.oneof(...ds.columns.map((c) => leafArb(c, literalPools(c.type, presentValues(ds, c.name)))));
  const { tree } = fc.letrec<{ tree: Predicate }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', maxDepth, withCrossShrink: true },
      leaves,
      fc.record({ left: tie('tree'), right: tie('tree') }).map(({ left, right }): Predicate => ({ kind: 'and', left, right })),
      fc.record({ left: tie('tree'), right: tie('tree') }).map(({ left, right }): Predicate => ({ kind: 'or', left, right })),
      tie('tree').map((operand): Predicate => ({ kind: 'not', operand })),
    ),
  }));
  return tree;
}
