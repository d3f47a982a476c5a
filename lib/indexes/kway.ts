/**
 * A streaming k-way merge over sorted cursors. Each cursor holds at most one decoded record
 * batch, so memory is bounded by the number of inputs times one batch.
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
 * `rowsOf`. Reports each batch's size to `held` while it is live.
 */
export class BatchCursor<B, R> implements Cursor<R> {
  row: R | undefined;
  private rows: R[] = [];
  private pos = 0;
  private liveBytes = 0;

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

  private async nextBatch(): Promise<void> {
    for (;;) {
      this.held.release(this.liveBytes);
      this.liveBytes = 0;
      this.rows = [];
      const next = await this.batches.next();
      if (next.done) {
        this.row = undefined;
        return;
      }
      this.liveBytes = this.sizeOf(next.value);
      this.held.add(this.liveBytes);
      this.rows = this.rowsOf(next.value);
      this.pos = 0;
      if (this.rows.length > 0) {
        this.row = this.rows[0];
        return;
      }
    }
  }
}
