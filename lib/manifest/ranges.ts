/**
 * Sets of fragment ids as sorted, disjoint, non-adjacent half-open ranges `[start, end)`.
 * Ids are assigned in order, so what a build registers, what a segment covers, and what a
 * lifecycle rule deletes are mostly runs: a manifest stays small however many fragments a
 * dataset holds, and set operations cost the number of runs, not of ids.
 */

export type IdRange = [number, number];
export type IdRanges = IdRange[];

/** Ranges of a list of ids (any order, duplicates allowed). */
export function rangesOf(ids: Iterable<number>): IdRanges {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const out: IdRanges = [];
  for (const id of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === id) last[1] = id + 1;
    else out.push([id, id + 1]);
  }
  return out;
}

/** Every id, ascending. */
export function* idsOf(r: IdRanges): Generator<number> {
  for (const [s, e] of r) for (let id = s; id < e; id++) yield id;
}

export function countOf(r: IdRanges): number {
  let n = 0;
  for (const [s, e] of r) n += e - s;
  return n;
}

export function has(r: IdRanges, id: number): boolean {
  let lo = 0;
  let hi = r.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (r[mid]![1] <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo < r.length && r[lo]![0] <= id;
}

/** The ranges in canonical form (sorted, merged); throws on a malformed range. */
export function normalizeRanges(r: readonly IdRange[]): IdRanges {
  for (const [s, e] of r) if (!(Number.isInteger(s) && Number.isInteger(e) && s >= 0 && e > s)) throw new RangeError(`bad id range [${s}, ${e})`);
  const sorted = r.map(([s, e]): IdRange => [s, e]).sort((a, b) => a[0] - b[0]);
  const out: IdRanges = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** True when `r` is already canonical: each range non-empty, sorted, disjoint and not touching the next. */
export function isCanonical(r: readonly IdRange[]): boolean {
  for (let i = 0; i < r.length; i++) {
    const [s, e] = r[i]!;
    if (!(Number.isInteger(s) && Number.isInteger(e) && s >= 0 && e > s)) return false;
    if (i > 0 && s <= r[i - 1]![1]) return false;
  }
  return true;
}

export function union(a: IdRanges, b: IdRanges): IdRanges {
  return normalizeRanges([...a, ...b]);
}

export function intersect(a: IdRanges, b: IdRanges): IdRanges {
  const out: IdRanges = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const s = Math.max(a[i]![0], b[j]![0]);
    const e = Math.min(a[i]![1], b[j]![1]);
    if (s < e) out.push([s, e]);
    if (a[i]![1] < b[j]![1]) i++;
    else j++;
  }
  return normalizeRanges(out);
}

/** Ids in `a` and not in `b`. */
export function subtract(a: IdRanges, b: IdRanges): IdRanges {
  const out: IdRanges = [];
  let j = 0;
  for (const [s0, e] of a) {
    let s = s0;
    while (j < b.length && b[j]![1] <= s) j++;
    let k = j;
    while (s < e && k < b.length && b[k]![0] < e) {
      const [bs, be] = b[k]!;
      if (bs > s) out.push([s, bs]);
      s = Math.max(s, be);
      k++;
    }
    if (s < e) out.push([s, e]);
  }
  return out;
}

export function overlaps(a: IdRanges, b: IdRanges): boolean {
  return intersect(a, b).length > 0;
}
