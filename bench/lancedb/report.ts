/**
 * Figures, targets, the markdown table and the SVG chart of the LanceDB benchmark. Every
 * figure is a median over runs; every ratio is the median of per-run ratios (run i of ours
 * against run i of LanceDB, taken back to back), not a ratio of medians.
 */

export interface SideBuild {
  ms: number[];
  rssMB: number[];
  startRssMB: number[];
  bytes: number;
}

export interface BuildResult {
  key: string;
  label: string;
  chart: string;
  /** Wanted ours/LanceDB rows/s. */
  target?: number;
  ours: SideBuild;
  lance?: SideBuild & { indexes: string[] };
}

export interface QueryResult {
  name: string;
  where: string;
  exact: boolean;
  ours: { ms: number[]; firstMs: number; rows: number; indexesUsed: string[] };
  lance: { ms: number[]; firstMs: number; rows: number; indexesUsed: string[]; plan: string };
  agreement: { ok: boolean; detail: string };
}

export interface SizeReport {
  rows: number;
  fragments: number;
  lanceIngestMs: number;
  rowAddressCheck: string;
  builds: BuildResult[];
  queries: QueryResult[];
  queryRss: { oursMB: number; lanceMB: number };
}

export interface Report {
  date: string;
  machine: { cpu: string; cores: number; node: string; platform: string; loadavg: number[] };
  versions: { lancedb: string; lanceApacheArrow: string };
  ours: string;
  runs: number;
  queryRuns: number;
  sizes: SizeReport[];
  seconds: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median of a[i] / b[i]. */
export function pairedRatio(a: number[], b: number[]): number {
  return median(a.map((x, i) => x / b[i]!));
}

const rowsPerS = (rows: number, ms: number[]) => median(ms.map((m) => rows / (m / 1000)));

export const sizeLabel = (rows: number) => (rows >= 1e6 && rows % 1e6 === 0 ? `${rows / 1e6}M` : rows.toLocaleString('en-US'));

function fmtRate(v: number): string {
  return v >= 1e6 ? `${(v / 1e6).toFixed(v >= 1e8 ? 0 : 1)}M` : `${(v / 1e3).toFixed(0)}k`;
}
const fmtMs = (v: number) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
const fmtMB = (v: number) => `${v.toFixed(0)} MB`;
const fmtBytes = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)} MB` : `${(v / 1e3).toFixed(0)} kB`);
const fmtX = (v: number) => `${v < 10 ? v.toFixed(2) : v.toFixed(1)}×`;

export interface TargetCheck {
  what: string;
  rows: number;
  /** ours/LanceDB */
  ratio: number;
  want: '≥' | '≤';
  target: number;
  met: boolean;
  /** How far off, in words, when missed. */
  missedBy?: string;
}

export function targets(report: Report): TargetCheck[] {
  const out: TargetCheck[] = [];
  const check = (what: string, rows: number, ratio: number, want: '≥' | '≤', target: number, unit: string) => {
    const met = want === '≥' ? ratio >= target : ratio <= target;
    const missedBy = met
      ? undefined
      : want === '≥'
        ? `${fmtX(ratio)} against ${fmtX(target)}: ${(((target - ratio) / target) * 100).toFixed(0)}% short`
        : `ours ${fmtX(ratio)} LanceDB's ${unit}: ${((ratio / target - 1) * 100).toFixed(0)}% over`;
    out.push({ what, rows, ratio, want, target, met, missedBy });
  };
  for (const s of report.sizes) {
    for (const b of s.builds) {
      if (b.target !== undefined && b.lance) check(`${b.label} build rows/s`, s.rows, pairedRatio(b.lance.ms, b.ours.ms), '≥', b.target, 'rows/s');
    }
    const both = s.builds.find((b) => b.key === 'bitmap-both');
    if (both?.lance) check('peak RSS, full bitmap build', s.rows, pairedRatio(both.ours.rssMB, both.lance.rssMB), '≤', 1, 'peak RSS');
    check('peak RSS, query process', s.rows, s.queryRss.oursMB / s.queryRss.lanceMB, '≤', 1, 'peak RSS');
    const point = s.queries.find((q) => q.where === 'cat_i32 = 7');
    if (point) check('bitmap point query latency (`cat_i32 = 7`)', s.rows, pairedRatio(point.ours.ms, point.lance.ms), '≤', 1, 'latency');
  }
  return out;
}

/** The numbers behind the tables, also stored in the JSON. */
export function summarize(report: Report) {
  return {
    builds: report.sizes.flatMap((s) =>
      s.builds.map((b) => ({
        rows: s.rows,
        key: b.key,
        label: b.label,
        chart: b.chart,
        oursMs: median(b.ours.ms),
        oursRowsPerS: rowsPerS(s.rows, b.ours.ms),
        lanceMs: b.lance ? median(b.lance.ms) : undefined,
        lanceRowsPerS: b.lance ? rowsPerS(s.rows, b.lance.ms) : undefined,
        ratio: b.lance ? pairedRatio(b.lance.ms, b.ours.ms) : undefined,
        oursRssMB: median(b.ours.rssMB),
        lanceRssMB: b.lance ? median(b.lance.rssMB) : undefined,
        rssRatio: b.lance ? pairedRatio(b.ours.rssMB, b.lance.rssMB) : undefined,
        oursIndexBytes: b.ours.bytes,
        lanceIndexBytes: b.lance?.bytes,
      })),
    ),
    queries: report.sizes.flatMap((s) =>
      s.queries.map((q) => ({
        rows: s.rows,
        where: q.where,
        name: q.name,
        oursMs: median(q.ours.ms),
        lanceMs: median(q.lance.ms),
        ratio: pairedRatio(q.ours.ms, q.lance.ms),
        oursRows: q.ours.rows,
        lanceRows: q.lance.rows,
        exact: q.exact,
        lanceIndex: q.lance.indexesUsed.join(', '),
        agreement: q.agreement,
      })),
    ),
    targets: targets(report),
  };
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderMarkdown(report: Report, svgName: string): string {
  const sum = summarize(report);
  const sizes = report.sizes.map((s) => s.rows);
  const load = report.machine.loadavg.map((l) => l.toFixed(1)).join(' / ');
  const out: string[] = [];
  out.push(`### LanceDB side by side (${report.date.slice(0, 10)})`);
  out.push('');
  out.push(
    `${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}, load average at start ${load}; ` +
      `LanceDB ${report.versions.lancedb} (Node binding of the Rust Lance core). Identical data: ${sizes.map(sizeLabel).join(', ')} rows in ` +
      `1M-row fragments, written as our Arrow files and as one LanceDB table with one Lance fragment per file (every row's \`_rowaddr\` checked against our fragment ids). ` +
      `Builds: median of ${report.runs} runs, each in a fresh process; queries: median of up to ${report.queryRuns} warm runs (at least 3). ` +
      `Ratios are ours/LanceDB, the median of per-run ratios. Ours: ${report.ours}.`,
  );
  out.push('');
  out.push(`![Index build throughput, ours vs LanceDB](${svgName})`);
  out.push('');

  const targetRows = new Map<string, Map<number, TargetCheck>>();
  for (const t of sum.targets) {
    if (!targetRows.has(t.what)) targetRows.set(t.what, new Map());
    targetRows.get(t.what)!.set(t.rows, t);
  }
  out.push('**Targets** (ours/LanceDB)');
  out.push('');
  out.push(
    table(
      ['target', ...sizes.map(sizeLabel)],
      [...targetRows].map(([what, bySize]) => {
        const first = [...bySize.values()][0]!;
        return [
          `${what} ${first.want} ${fmtX(first.target)}`,
          ...sizes.map((r) => {
            const t = bySize.get(r);
            if (!t) return '';
            return t.met ? `${fmtX(t.ratio)} met` : `**${fmtX(t.ratio)} missed** (${t.missedBy})`;
          }),
        ];
      }),
    ),
  );
  out.push('');
  out.push('**Builds** (rows/s: higher is better; peak RSS of the whole process: lower is better)');
  out.push('');
  out.push(
    table(
      ['index', 'dataset rows', 'ours', 'LanceDB', 'ours/LanceDB', 'peak RSS ours', 'peak RSS LanceDB', 'index size ours / LanceDB'],
      sum.builds.map((b) => [
        b.label,
        sizeLabel(b.rows),
        `${fmtRate(b.oursRowsPerS)} rows/s (${(b.oursMs / 1000).toFixed(2)} s)`,
        b.lanceRowsPerS === undefined ? '—' : `${fmtRate(b.lanceRowsPerS)} rows/s (${(b.lanceMs! / 1000).toFixed(2)} s)`,
        b.ratio === undefined ? '—' : fmtX(b.ratio),
        fmtMB(b.oursRssMB),
        b.lanceRssMB === undefined ? '—' : fmtMB(b.lanceRssMB),
        `${fmtBytes(b.oursIndexBytes)} / ${b.lanceIndexBytes === undefined ? '—' : fmtBytes(b.lanceIndexBytes)}`,
      ]),
    ),
  );
  out.push('');
  out.push('**Queries** (warm latency, lower is better; LanceDB returns `_rowaddr` of the matching rows, ours the row ranges)');
  out.push('');
  out.push(
    table(
      ['query', 'dataset rows', 'ours', 'LanceDB', 'ours/LanceDB', 'rows returned ours / LanceDB', 'LanceDB index', 'agreement'],
      sum.queries.map((q) => [
        `\`${q.where}\``,
        sizeLabel(q.rows),
        `${fmtMs(q.oursMs)} ms`,
        `${fmtMs(q.lanceMs)} ms`,
        fmtX(q.ratio),
        `${q.oursRows.toLocaleString('en-US')}${q.exact ? '' : ' candidates'} / ${q.lanceRows.toLocaleString('en-US')}`,
        q.lanceIndex,
        q.agreement.ok ? (q.exact ? 'identical' : 'ours ⊇ LanceDB') : `**MISMATCH**: ${q.agreement.detail}`,
      ]),
    ),
  );
  out.push('');
  out.push(
    `Peak RSS of the query processes: ${report.sizes.map((s) => `${sizeLabel(s.rows)}: ours ${fmtMB(s.queryRss.oursMB)}, LanceDB ${fmtMB(s.queryRss.lanceMB)}`).join('; ')}.`,
  );
  out.push('');
  return `${out.join('\n')}`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Horizontal grouped bars: build rows/s per index and size, ours against LanceDB. */
export function renderSvg(report: Report): string {
  const sum = summarize(report);
  const groups = sum.builds.map((b) => ({
    label: `${b.chart} · ${sizeLabel(b.rows)}`,
    ours: b.oursRowsPerS,
    lance: b.lanceRowsPerS,
    ratio: b.ratio,
  }));
  const colors = { ours: '#2b6cb0', lance: '#dd6b20' };
  const left = 230;
  const barH = 14;
  const gap = 12;
  const plotW = 520;
  const right = 110;
  const top = 64;
  const groupH = 2 * barH + 2 + gap;
  const width = left + plotW + right;
  const height = top + groups.length * groupH + 40;
  const step = niceStep(Math.max(...groups.flatMap((g) => [g.ours, g.lance ?? 0])) / 5);
  const max = Math.ceil(Math.max(...groups.flatMap((g) => [g.ours, g.lance ?? 0])) / step) * step;
  const x = (v: number) => left + (v / max) * plotW;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  parts.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  parts.push(`<text x="${left}" y="20" font-size="15" font-weight="bold">Index build throughput, rows/s (higher is better)</text>`);
  parts.push(
    `<text x="${left}" y="38" fill="#555">median of ${report.runs} runs · ${esc(report.machine.cpu)}, ${report.machine.cores} cores · LanceDB ${esc(report.versions.lancedb)} · ours from ${report.ours.includes('tsc') ? 'compiled JS' : 'TS sources (tsx)'} · ${report.date.slice(0, 10)}</text>`,
  );
  parts.push(`<rect x="${left}" y="46" width="12" height="10" fill="${colors.ours}"/><text x="${left + 16}" y="55">ours (serverless-scalar-index, build())</text>`);
  parts.push(`<rect x="${left + 250}" y="46" width="12" height="10" fill="${colors.lance}"/><text x="${left + 266}" y="55">LanceDB createIndex</text>`);
  for (let v = 0; v <= max + step / 2; v += step) {
    const gx = x(v);
    parts.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${height - 30}" stroke="#e2e2e2"/>`);
    parts.push(`<text x="${gx}" y="${height - 16}" text-anchor="middle" fill="#555">${fmtRate(v)}</text>`);
  }
  groups.forEach((g, i) => {
    const y = top + i * groupH;
    parts.push(`<text x="${left - 8}" y="${y + barH + 4}" text-anchor="end">${esc(g.label)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${x(g.ours) - left}" height="${barH}" fill="${colors.ours}"/>`);
    parts.push(`<text x="${x(g.ours) + 4}" y="${y + barH - 3}" fill="#222">${fmtRate(g.ours)}${g.ratio === undefined ? '' : ` (${fmtX(g.ratio)})`}</text>`);
    if (g.lance === undefined) {
      parts.push(`<text x="${left + 4}" y="${y + 2 * barH - 1}" fill="#888" font-style="italic">LanceDB: no zone-map index</text>`);
    } else {
      parts.push(`<rect x="${left}" y="${y + barH + 2}" width="${x(g.lance) - left}" height="${barH}" fill="${colors.lance}"/>`);
      parts.push(`<text x="${x(g.lance) + 4}" y="${y + 2 * barH - 1}" fill="#222">${fmtRate(g.lance)}</text>`);
    }
  });
  parts.push(`<line x1="${left}" y1="${top - 4}" x2="${left}" y2="${height - 30}" stroke="#333"/>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
