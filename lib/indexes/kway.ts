/**
 * A streaming k-way merge over sorted cursors. Each cursor holds at most two decoded record
 * batches (the current one and the one read ahead), so memory is bounded by the number of
 * inputs times two batches.
 */

export interface Cursor<R> {
  /** The current row, or undefined when exhausted. */
  readonly row: R | undefined;
  /** Move to the next row, loading the next batch when the current one is used up. */
  advance(): Promise<void>;
}

/** Binary min-heap of cursors ordered by their current row; ties break by input order. */
export class CursorHeap<R> {
  private readonly heap: { c: Cursor<R>; i: number }[] = [];

  constructor(private readonly compare: (a: R, b: R) => number) {}

  push(c: Cursor<R>, inputIndex: number): void {
    if (c.row === undefined) return;
    this.heap.push({ c, i: inputIndex });
    this.up(this.heap.length - 1);
  }

  get size(): number {
    return this.heap.length;
  }

  peek(): Cursor<R> | undefined {
    return this.heap[0]?.c;
  }

  /** Remove the smallest cursor, returning it with its input index. */
  pop(): { c: Cursor<R>; i: number } | undefined {
    const top = this.heap[0];
    if (!top) return undefined;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.down(0);
    }
    return top;
  }

  private less(a: { c: Cursor<R>; i: number }, b: { c: Cursor<R>; i: number }): boolean {
    const d = this.compare(a.c.row!, b.c.row!);
    return d < 0 || (d === 0 && a.i < b.i);
  }

  private up(k: number): void {
    const h = this.heap;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!this.less(h[k]!, h[p]!)) break;
      [h[k], h[p]] = [h[p]!, h[k]!];
      k = p;
    }
  }

  private down(k: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * k + 1;
      const r = l + 1;
      let m = k;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === k) return;
      [h[k], h[m]] = [h[m]!, h[k]!];
      k = m;
    }
  }
}

/** Tracks bytes of batches held by live cursors, and the peak. */
export class HeldBytes {
  current = 0;
  peak = 0;
  maxBatch = 0;
  add(n: number): void {
    this.current += n;
    if (n > this.maxBatch) this.maxBatch = n;
    if (this.current > this.peak) this.peak = this.current;
  }
  release(n: number): void {
    this.current -= n;
  }
  /** Count `extra` bytes held only for this instant (an output buffer) toward the peak. */
  observe(extra: number): void {
    if (this.current + extra > this.peak) this.peak = this.current + extra;
  }
}

/**
 * A cursor over the rows of a sequence of batches, converting each batch to rows with
 * `rowsOf`. The next batch is read while this one's rows are merged (one ahead: reads overlap
 * the merge's CPU work). Reports each batch's size to `held` from when it arrives until the
 * cursor moves past it, so a cursor holds at most two batches.
 */
export class BatchCursor<B, R> implements Cursor<R> {
  row: R | undefined;
  private rows: R[] = [];
  private pos = 0;
  private liveBytes = 0;
  private ahead?: Promise<{ batch: B; bytes: number } | undefined>;

  constructor(
    private readonly batches: AsyncIterator<B>,
    private readonly rowsOf: (batch: B) => R[],
    private readonly sizeOf: (batch: B) => number,
    private readonly held: HeldBytes,
  ) {}

  /** Load the first row. */
  async start(): Promise<this> {
    await this.nextBatch();
    return this;
  }

  async advance(): Promise<void> {
    this.pos++;
    if (this.pos < this.rows.length) {
      this.row = this.rows[this.pos];
      return;
    }
    await this.nextBatch();
  }

  private read(): Promise<{ batch: B; bytes: number } | undefined> {
    const p = this.batches.next().then((next) => {
      if (next.done) return undefined;
      const bytes = this.sizeOf(next.value);
      this.held.add(bytes);
      return { batch: next.value, bytes };
    });
    // A failed read ahead is reported when the cursor gets to it; if the merge stops earlier
    // for another reason, it is not an unhandled rejection.
    p.catch(() => undefined);
    return p;
  }

  private async nextBatch(): Promise<void> {
    for (;;) {
      this.held.release(this.liveBytes);
      this.liveBytes = 0;
      this.rows = [];
      const next = await (this.ahead ?? this.read());
      this.ahead = undefined;
      if (!next) {
        this.row = undefined;
        return;
      }
      this.liveBytes = next.bytes;
      this.rows = this.rowsOf(next.batch);
      this.pos = 0;
      this.ahead = this.read();
      if (this.rows.length > 0) {
        this.row = this.rows[0];
        return;
      }
    }
  }
}
