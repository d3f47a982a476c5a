/**
 * Predicates in negation normal form: only AND/OR over leaves, NOT pushed down to the leaves
 * (De Morgan), where it becomes the complementary comparison. Under SQL three-valued logic
 * that is exact: a NULL value fails both `x < v` and `NOT (x < v)`, and on non-null values the
 * float order is total (NaN above all).
 *
 * Lists stay lists: `x IN (…)`, and OR-chains of `x = v` on one column, become one `in` leaf;
 * `x NOT IN (…)` and AND-chains of `x != v` one negated `in` leaf. An index answers such a leaf
 * in one pass (covered rows minus nulls minus the union, for the negation) instead of holding
 * one dense row set per value until an AND combines them.
 */
import type { CompareOp, Literal, Predicate } from './ast.js';

export type NonNullLiteral = Exclude<Literal, { kind: 'null' }>;

/** A leaf after NOT push-down; `unknown` is a comparison with NULL (never true, either way). */
export type Leaf =
  | { kind: 'cmp'; column: string; op: CompareOp; value: NonNullLiteral }
  /** `column IN values`, or with `negated`, `column NOT IN values` (values non-null, at least one). */
  | { kind: 'in'; column: string; values: NonNullLiteral[]; negated: boolean }
  | { kind: 'isNull'; column: string }
  | { kind: 'notNull'; column: string }
  | { kind: 'unknown'; column: string };

export type Normalized = { kind: 'and' | 'or'; children: Normalized[] } | { kind: 'leaf'; leaf: Leaf };

const COMPLEMENT: Record<CompareOp, CompareOp> = { '=': '!=', '!=': '=', '<': '>=', '<=': '>', '>': '<=', '>=': '<' };

/** Negation normal form of `p` (of `NOT p` with `negate`). Iterative over AND/OR chains. */
export function normalize(p: Predicate, negate = false): Normalized {
  switch (p.kind) {
    case 'not':
      return normalize(p.operand, !negate);
    case 'and':
    case 'or': {
      // De Morgan: NOT (a AND b) = NOT a OR NOT b.
      const kind = (p.kind === 'and') !== negate ? 'and' : 'or';
      const children: Normalized[] = [];
      const stack: Predicate[] = [p];
      while (stack.length > 0) {
        const q = stack.pop()!;
        if (q.kind === p.kind) stack.push(q.right, q.left);
        else children.push(normalize(q, negate));
      }
      return { kind, children: groupLists(kind, children) };
    }
    case 'compare': {
      if (p.value.kind === 'null') return { kind: 'leaf', leaf: { kind: 'unknown', column: p.column } };
      return { kind: 'leaf', leaf: { kind: 'cmp', column: p.column, op: negate ? COMPLEMENT[p.op] : p.op, value: p.value } };
    }
    case 'between':
      return normalize(
        {
          kind: 'and',
          left: { kind: 'compare', column: p.column, op: '>=', value: p.low },
          right: { kind: 'compare', column: p.column, op: '<=', value: p.high },
        },
        negate !== p.negated,
      );
    case 'in': {
      const negated = negate !== p.negated;
      const values = p.values.filter((v): v is NonNullLiteral => v.kind !== 'null');
      // `x IN (…, NULL)` is TRUE only where x equals a non-null element; `x NOT IN (…, NULL)`
      // is never TRUE (each row is FALSE or UNKNOWN).
      if (values.length === 0 || (negated && values.length < p.values.length)) return { kind: 'leaf', leaf: { kind: 'unknown', column: p.column } };
      return { kind: 'leaf', leaf: { kind: 'in', column: p.column, values, negated } };
    }
    case 'isNull':
      return { kind: 'leaf', leaf: { kind: negate !== p.negated ? 'notNull' : 'isNull', column: p.column } };
  }
}

/**
 * Under OR, the `=` and `IN` leaves on one column become one `in` leaf; under AND, the `!=`
 * and `NOT IN` leaves on one column one negated `in` leaf. Other children keep their order.
 */
function groupLists(kind: 'and' | 'or', children: Normalized[]): Normalized[] {
  const negated = kind === 'and';
  const lists = new Map<string, NonNullLiteral[]>();
  const out: (Normalized | string)[] = [];
  for (const c of children) {
    const leaf = c.kind === 'leaf' ? c.leaf : undefined;
    let values: NonNullLiteral[] | undefined;
    if (leaf?.kind === 'cmp' && leaf.op === (negated ? '!=' : '=')) values = [leaf.value];
    else if (leaf?.kind === 'in' && leaf.negated === negated) values = leaf.values;
    if (!values) {
      out.push(c);
      continue;
    }
    const column = leaf!.column;
    const have = lists.get(column);
    if (have) have.push(...values);
    else {
      lists.set(column, [...values]);
      out.push(column);
    }
  }
  return out.map((c) => {
    if (typeof c !== 'string') return c;
    const values = lists.get(c)!;
    if (values.length === 1) {
      return { kind: 'leaf', leaf: { kind: 'cmp', column: c, op: negated ? '!=' : '=', value: values[0]! } };
    }
    return { kind: 'leaf', leaf: { kind: 'in', column: c, values, negated } };
  });
}

/** Columns the leaves of `n` name. */
export function leafColumns(n: Normalized, out = new Set<string>()): Set<string> {
  if (n.kind === 'leaf') out.add(n.leaf.column);
  else for (const c of n.children) leafColumns(c, out);
  return out;
}
