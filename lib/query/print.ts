import type { Literal, Predicate } from './ast.js';

function quoteColumn(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function printLiteral(l: Literal): string {
  switch (l.kind) {
    case 'null':
      return 'NULL';
    case 'bool':
      return l.value ? 'TRUE' : 'FALSE';
    case 'number':
      return l.text;
    case 'string':
      return `'${l.value.replaceAll("'", "''")}'`;
  }
}

/*
 * An AND/OR child of another operator is always parenthesised, even where precedence would make
 * the parentheses redundant (`a OR (b AND c)`): people read these in logs and error messages.
 * The one exception is the left operand of the same operator, because the parser builds
 * `a AND b AND c` as and(and(a, b), c); printing that chain flat keeps long chains readable and
 * lets the printer walk it in a loop instead of recursing once per link.
 */
function printOperand(p: Predicate): string {
  return p.kind === 'and' || p.kind === 'or' ? `(${printNode(p)})` : printNode(p);
}

function printNode(p: Predicate): string {
  switch (p.kind) {
    case 'compare':
      return `${quoteColumn(p.column)} ${p.op} ${printLiteral(p.value)}`;
    case 'between':
      return `${quoteColumn(p.column)} ${p.negated ? 'NOT ' : ''}BETWEEN ${printLiteral(p.low)} AND ${printLiteral(p.high)}`;
    case 'in':
      return `${quoteColumn(p.column)} ${p.negated ? 'NOT ' : ''}IN (${p.values.map(printLiteral).join(', ')})`;
    case 'isNull':
      return `${quoteColumn(p.column)} IS ${p.negated ? 'NOT ' : ''}NULL`;
    case 'not':
      return `NOT ${printOperand(p.operand)}`;
    case 'and':
    case 'or': {
      const rights: Predicate[] = [];
      let node: Predicate = p;
      while (node.kind === p.kind) {
        rights.push(node.right);
        node = node.left;
      }
      const keyword = p.kind === 'and' ? ' AND ' : ' OR ';
      return [node, ...rights.reverse()].map(printOperand).join(keyword);
    }
  }
}

/**
 * Renders a predicate AST as text that {@link parsePredicate} reads back to an equal AST.
 *
 * Every column name is double-quoted (so keywords and any unicode are safe as names), strings
 * are single-quoted with `''` for a quote, and nested AND/OR are parenthesised. Number literal
 * texts are printed verbatim, so the round trip is exact only when they are in the normalised
 * form the parser produces; an AST the parser could never produce (an empty `IN` list, an empty
 * column name) prints as text the parser rejects.
 *
 * @example
 * ```ts
 * printPredicate({
 *   kind: 'or',
 *   left: { kind: 'compare', column: 'price', op: '<', value: { kind: 'number', text: '-2.5' } },
 *   right: { kind: 'isNull', column: 'say "hi"', negated: true },
 * });
 * // => `"price" < -2.5 OR "say ""hi""" IS NOT NULL`
 * ```
 */
export function printPredicate(p: Predicate): string {
  return printNode(p);
}
