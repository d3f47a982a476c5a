/**
 * The predicate AST shared by the parser, the evaluator and the tests' oracle.
 *
 * Literals are kept as written (numbers as their decimal text) so that 64-bit columns compare
 * exactly: the literal is coerced to a column's type only when the column is known.
 */

export type Literal =
  | { kind: 'null' }
  | { kind: 'bool'; value: boolean }
  /**
   * `text` is a normalised decimal: optional leading `-`, digits, optional `.digits`, optional
   * exponent `e[+-]digits`; or exactly `NaN`, `Infinity` or `-Infinity`.
   */
  | { kind: 'number'; text: string }
  | { kind: 'string'; value: string };

export type CompareOp = '=' | '!=' | '<' | '<=' | '>' | '>=';

export type Predicate =
  | { kind: 'compare'; column: string; op: CompareOp; value: Literal }
  | { kind: 'between'; column: string; low: Literal; high: Literal; negated: boolean }
  | { kind: 'in'; column: string; values: Literal[]; negated: boolean }
  | { kind: 'isNull'; column: string; negated: boolean }
  | { kind: 'and'; left: Predicate; right: Predicate }
  | { kind: 'or'; left: Predicate; right: Predicate }
  | { kind: 'not'; operand: Predicate };

/** Columns a predicate mentions, in first-seen order. */
export function predicateColumns(p: Predicate, out: string[] = []): string[] {
  switch (p.kind) {
    case 'and':
    case 'or':
      predicateColumns(p.left, out);
      predicateColumns(p.right, out);
      break;
    case 'not':
      predicateColumns(p.operand, out);
      break;
    default:
      if (!out.includes(p.column)) out.push(p.column);
  }
  return out;
}
