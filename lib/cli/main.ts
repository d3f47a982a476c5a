/**
 * `scalar-index build | query | inspect | scan | compact | vacuum` (contract.md). Exit codes: 0 success, 2 usage error
 * (bad flags, malformed predicate), 1 any other failure with one line naming the culprit.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { PredicateSyntaxError, ScalarIndexError, UsageError } from '../errors.js';
import { INDEX_TYPES } from '../indexes/kind.js';
import type { Progress } from '../workflow/plan.js';
import type { CompactionSummary } from '../workflow/compact.js';
import type { IndexRequest } from '../workflow/types.js';
import type { VacuumResult } from '../workflow/vacuum.js';
import { DEFAULT_KEEP_VERSIONS, DEFAULT_VACUUM_OLDER_THAN, parseDuration } from '../workflow/vacuum-settings.js';

export { useThroughputGc } from '../runtime.js';

// Each command loads its own code when it runs (`await import`): the workflow engine, Arrow,
// roaring and zod cost hundreds of milliseconds to load, and `--help` or a query needs few
// of them. bench/startup.bench.ts measures it.

function positiveInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError(`${name} must be a whole number of at least 1, got '${value}'`);
    }
    return Number(value);
  };
}

function nonNegativeInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError(`${name} must be a whole number of at least 0, got '${value}'`);
    }
    return Number(value);
  };
}

function columnList(value: string): string[] {
  const columns = value.split(',').map((c) => c.trim());
  if (columns.some((c) => c.length === 0)) throw new InvalidArgumentError(`expected comma-separated column names, got '${value}'`);
  return columns;
}

function indexSpec(value: string, previous: IndexRequest[] = []): IndexRequest[] {
  const at = value.lastIndexOf(':');
  const column = value.slice(0, at);
  const type = value.slice(at + 1);
  if (at <= 0 || !(INDEX_TYPES as string[]).includes(type)) {
    throw new InvalidArgumentError(`expected <column>:<${INDEX_TYPES.join('|')}>, got '${value}'`);
  }
  return [...previous, { column, type: type as IndexRequest['type'] }];
}

/** Progress on stderr: a bar on a TTY, one line per step otherwise. */
async function progressReporter(enabled: boolean): Promise<{ progress: Progress; stop(): void }> {
  if (!enabled) return { progress: () => {}, stop() {} };
  if (process.stderr.isTTY) {
    const { default: cliProgress } = await import('cli-progress');
    const bar = new cliProgress.SingleBar(
      { stream: process.stderr, format: ' {step} [{bar}] {value}/{total} {detail}', hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    let current = '';
    return {
      progress: (e) => {
        if (e.total === undefined) {
          if (current) bar.stop();
          current = '';
          process.stderr.write(`${e.step}…\n`);
          return;
        }
        if (e.step !== current) {
          if (current) bar.stop();
          current = e.step;
          bar.start(e.total, e.done ?? 0, { step: e.step, detail: e.detail ?? '' });
        } else bar.update(e.done ?? 0, { detail: e.detail ?? '' });
      },
      stop: () => bar.stop(),
    };
  }
  let last = '';
  return {
    progress: (e) => {
      const line = e.total === undefined ? `${e.step}…` : `${e.step} ${e.done ?? 0}/${e.total}${e.step === 'scan' && e.detail ? ` ${e.detail}` : ''}`;
      if (line !== last && (e.total === undefined || e.done === 0 || e.done === e.total || e.step === 'parts' || e.step === 'scan')) process.stderr.write(`${line}\n`);
      last = line;
    },
    stop() {},
  };
}

/**
 * Progress for commands that are often quick (scan): nothing until `delayMs` after the first
 * event, then at most one event per `delayMs`, and the last one (done = total) once anything
 * was shown.
 */
export function afterDelay(progress: Progress, delayMs: number, now: () => number = Date.now): Progress {
  let first: number | undefined;
  let last = 0;
  let shown = false;
  return (e) => {
    const t = now();
    first ??= t;
    const final = e.total !== undefined && e.done === e.total;
    if (shown ? final || t - last >= delayMs : t - first >= delayMs) {
      progress(e);
      shown = true;
      last = t;
    }
  };
}

export function createProgram(): Command {
  const program = new Command('scalar-index')
    .description('Zone-map and bitmap scalar indexes over Arrow fragments: build them, query them, inspect them.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('build')
    .description('register new fragments under <dataset>/data/ and create or update indexes to cover them')
    .argument('<dataset>', 'dataset directory or file:// URI')
    .option('--index <column:type>', `index to create or update; type is ${INDEX_TYPES.join(' or ')} (repeatable; default: every index already defined)`, indexSpec)
    .option('--rows-per-zone <n>', 'rows per zone for new zone-map indexes (default 8192)', positiveInt('--rows-per-zone'))
    .option('--group-rows <n>', 'rows per fragment group, the unit of parallel work (default 4194304)', positiveInt('--group-rows'))
    .option('--concurrency <n>', 'fragment groups built at once: this thread and worker threads (default: one per core)', positiveInt('--concurrency'))
    .option('--skip-bad-fragments', 'record unreadable fragments, or ones lacking an indexed column or holding another type, as failed (listed by inspect and in every query\'s unindexedFragments) instead of failing the build')
    .option('--json', 'print a JSON summary on stdout')
    .addOption(new Option('--quiet', 'no progress on stderr'))
    .action(async (dataset: string, opts: { index?: IndexRequest[]; rowsPerZone?: number; groupRows?: number; concurrency?: number; skipBadFragments?: boolean; json?: boolean; quiet?: boolean }) => {
      const indexes = opts.index?.map((r) => (r.type === 'zonemap' && opts.rowsPerZone !== undefined ? { ...r, rowsPerZone: opts.rowsPerZone } : r));
      if (opts.rowsPerZone !== undefined && !indexes?.some((r) => r.type === 'zonemap')) {
        throw new UsageError('--rows-per-zone needs at least one --index <column>:zonemap');
      }
      const reporter = await progressReporter(!opts.quiet);
      const started = Date.now();
      try {
        const { build } = await import('../workflow/build.js');
        const summary = await build({ dataset, indexes, groupRows: opts.groupRows, concurrency: opts.concurrency, skipBadFragments: opts.skipBadFragments, progress: reporter.progress });
        reporter.stop();
        for (const f of summary.fragmentsFailed) process.stderr.write(`skipped bad fragment ${f.path}: ${f.reason}\n`);
        for (const f of summary.fragmentsRemoved) process.stderr.write(`fragment ${f.path} (id ${f.id}) is gone from data/: recorded as removed\n`);
        for (const f of summary.fragmentsReplaced) process.stderr.write(`${f.reason}: registered again as a new fragment\n`);
        if (opts.json) {
          const { changed: _changed, ...contract } = summary;
          process.stdout.write(`${JSON.stringify(contract)}\n`);
          return;
        }
        if (!summary.changed) {
          process.stdout.write(`nothing to do: version ${summary.version} already covers every fragment\n`);
        } else {
          process.stdout.write(`committed version ${summary.version}: ${summary.fragmentsAdded} new fragment(s) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
        }
        for (const ix of summary.indexes) {
          process.stdout.write(`  ${ix.name.padEnd(24)} ${ix.type.padEnd(8)} ${String(ix.fragmentsCovered).padStart(6)} fragments  ${String(ix.segments).padStart(3)} segment(s)  ${formatBytes(ix.bytes)}\n`);
        }
        if (summary.compaction.committed > 0) process.stdout.write(`  compacted: ${summary.compaction.committed} merge(s), ${formatBytes(summary.compaction.bytesWritten)} written\n`);
        if (summary.compaction.error) process.stderr.write(`compaction failed (the build is committed; the next build tries again): ${summary.compaction.error}\n`);
      } finally {
        reporter.stop();
      }
    });

  program
    .command('query')
    .description('answer a predicate from the indexes: candidate row ranges per fragment')
    .argument('<dataset>', 'dataset directory or file:// URI')
    .requiredOption('--where <predicate>', `SQL WHERE subset, e.g. "region = 'EU' AND price BETWEEN 10 AND 20"`)
    .option('--registered-only', 'answer over the fragments the latest version registers, without listing data/ (files added, deleted or rewritten since the last build are not accounted for)')
    .option('--json', 'print the JSON answer on stdout')
    .action(async (dataset: string, opts: { where: string; json?: boolean; registeredOnly?: boolean }) => {
      const { query } = await import('../query/evaluate.js');
      const r = await query(dataset, opts.where, { registeredOnly: opts.registeredOnly });
      if (opts.json) {
        const { stats: _stats, ...contract } = r;
        process.stdout.write(`${JSON.stringify(contract)}\n`);
        return;
      }
      const total = r.fragments.length;
      process.stdout.write(`${r.exact ? 'exact' : 'candidates (re-check needed)'}: ${r.rows} row(s) in ${total} fragment(s)`);
      process.stdout.write(r.indexesUsed.length ? ` using ${r.indexesUsed.join(', ')}\n` : ' (no index applies)\n');
      for (const f of r.fragments.slice(0, 20)) {
        const shown = f.ranges.slice(0, 8).map(([a, b]) => (b - a === 1 ? `${a}` : `${a}-${b - 1}`));
        process.stdout.write(`  [${f.id}] ${f.path}: ${shown.join(', ')}${f.ranges.length > 8 ? `, … (${f.ranges.length} ranges)` : ''}\n`);
      }
      if (total > 20) process.stdout.write(`  … and ${total - 20} more fragment(s)\n`);
      if (r.unindexedFragments.length) {
        const shown = r.unindexedFragments.slice(0, 20).map((f) => `${f.path} (${f.reason})`);
        const more = r.unindexedFragments.length > 20 ? `, … and ${r.unindexedFragments.length - 20} more` : '';
        process.stdout.write(`not answered by an index, scan in full: ${shown.join(', ')}${more}\n`);
      }
      process.stdout.write(
        r.discovery === 'listed'
          ? `version ${r.version}; every fragment file under data/ is accounted for\n`
          : `version ${r.version}, registered fragments only: files added, deleted or rewritten since are not accounted for\n`,
      );
    });

  program
    .command('inspect')
    .description('show registered fragments and defined indexes of the latest version')
    .argument('<dataset>', 'dataset directory or file:// URI')
    .option('--json', 'print JSON on stdout')
    .action(async (dataset: string, opts: { json?: boolean }) => {
      const { inspect, formatInspect } = await import('./inspect.js');
      const info = await inspect(dataset);
      process.stdout.write(opts.json ? `${JSON.stringify(info)}\n` : formatInspect(info));
    });

  program
    .command('scan')
    .description('return the rows that match a predicate: candidates from the indexes, re-checked row by row; fragments no index covers are read in full')
    .argument('<dataset>', 'dataset directory, file:// or s3:// URI')
    .requiredOption('--where <predicate>', `SQL WHERE subset, e.g. "region = 'EU' AND price BETWEEN 10 AND 20"`)
    .option('--columns <a,b,…>', 'columns to return, in this order (default: all)', columnList)
    .addOption(new Option('--format <format>', 'output format: an Arrow IPC stream, newline-delimited JSON or CSV').choices(['arrow', 'ndjson', 'csv']).default('ndjson'))
    .option('--limit <n>', 'stop after this many rows', nonNegativeInt('--limit'))
    .option('--output <file>', 'write to this file (it appears only once complete) instead of stdout')
    .option('--registered-only', 'scan the fragments the latest version registers, without listing data/ (files added or rewritten since the last build are not seen)')
    .addOption(new Option('--quiet', 'no progress on stderr'))
    .action(async (dataset: string, opts: { where: string; columns?: string[]; format: 'arrow' | 'ndjson' | 'csv'; limit?: number; output?: string; registeredOnly?: boolean; quiet?: boolean }) => {
      const reporter = await progressReporter(!opts.quiet);
      try {
        const { runScanCommand } = await import('./scan.js');
        // Progress only for scans that take a while.
        const progress = afterDelay(reporter.progress, 1000);
        await runScanCommand(dataset, { where: opts.where, columns: opts.columns, format: opts.format, limit: opts.limit, output: opts.output, registeredOnly: opts.registeredOnly, progress });
      } finally {
        reporter.stop();
      }
    });

  program
    .command('compact')
    .description('merge index segments (and fragment table chunks) as the size-tiered policy says, or every segment of an index into one with --full')
    .argument('<dataset>', 'dataset directory, file:// or s3:// URI')
    .option('--index <name>', 'only this index (repeatable; default: every index)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--full', 'merge all segments of each index into one, whatever the policy says')
    .option('--json', 'print a JSON summary on stdout')
    .addOption(new Option('--quiet', 'no progress on stderr'))
    .action(async (dataset: string, opts: { index?: string[]; full?: boolean; json?: boolean; quiet?: boolean }) => {
      const reporter = await progressReporter(!opts.quiet);
      let r: CompactionSummary;
      try {
        const { compactDataset } = await import('../workflow/compact.js');
        r = await compactDataset(dataset, { indexes: opts.index, full: opts.full, progress: reporter.progress });
      } finally {
        reporter.stop();
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      if (r.compactions.length === 0) process.stdout.write(`nothing to compact at version ${r.version}\n`);
      for (const c of r.compactions) {
        const what = c.index ?? 'fragment table';
        process.stdout.write(c.committed ? `  ${what}: merged ${c.inputs} into 1 (${formatBytes(c.bytesWritten)} written)\n` : `  ${what}: gave up (${c.gaveUp})\n`);
      }
      for (const ix of r.indexes) process.stdout.write(`  ${ix.name.padEnd(24)} ${String(ix.segments).padStart(4)} segment(s)  ${formatBytes(ix.bytes)}\n`);
    });

  program
    .command('vacuum')
    .description('delete orphaned builds, unreferenced index directories and manifest versions past retention under <dataset>/_index/')
    .argument('<dataset>', 'dataset directory, file:// or s3:// URI')
    .option('--older-than <duration>', `never delete anything younger than this: 7d, 12h, 30m, 0s (default ${DEFAULT_VACUUM_OLDER_THAN})`, durationArg)
    .option('--keep-versions <n>', `always keep at least this many of the most recent versions (default ${DEFAULT_KEEP_VERSIONS})`, positiveInt('--keep-versions'))
    .option('--dry-run', 'list what would be deleted and delete nothing')
    .option('--json', 'print a JSON summary on stdout')
    .addOption(new Option('--quiet', 'no progress on stderr'))
    .action(async (dataset: string, opts: { olderThan?: number; keepVersions?: number; dryRun?: boolean; json?: boolean; quiet?: boolean }) => {
      const reporter = await progressReporter(!opts.quiet);
      let r: VacuumResult;
      try {
        const { vacuum } = await import('../workflow/vacuum.js');
        r = await vacuum({ dataset, olderThan: opts.olderThan, keepVersions: opts.keepVersions, dryRun: opts.dryRun, progress: reporter.progress });
      } finally {
        reporter.stop();
      }
      if (opts.json) {
        const { deleted, bytes, dryRun } = r;
        process.stdout.write(`${JSON.stringify({ deleted, bytes, dryRun, objects: r.objects, retainedVersions: r.retainedVersions })}\n`);
        return;
      }
      process.stdout.write(formatVacuum(r));
    });
  return program;
}

function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** The human summary of a vacuum: counts and bytes, and with --dry-run every item that would go. */
export function formatVacuum(r: VacuumResult): string {
  const { versions, indexDirs, builds, fragmentChunks, temp } = r.deleted;
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const lines = [
    `${verb} ${versions.length} version(s), ${indexDirs.length} index dir(s), ${builds.length} build(s), ${fragmentChunks.length} fragment table chunk(s), ${temp.length} leftover temp file(s): ${r.objects} object(s), ${formatBytes(r.bytes)}`,
  ];
  const kept = r.retainedVersions;
  if (kept.length > 0) lines.push(`kept ${kept.length} version(s): ${kept.length === 1 ? kept[0] : `${kept[0]}–${kept[kept.length - 1]}`} (latest ${kept[kept.length - 1]})`);
  if (r.dryRun) {
    if (versions.length > 0) lines.push(`  versions ${versions.length === 1 ? versions[0] : `${versions[0]}–${versions[versions.length - 1]}`}`);
    for (const d of indexDirs) lines.push(`  ${d}`);
    for (const b of builds) lines.push(`  ${b}`);
    for (const c of fragmentChunks) lines.push(`  ${c}`);
    for (const t of temp) lines.push(`  ${t}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Run the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // The SDK warns on every run that its 2027 releases will need Node 22. That is not news to
  // someone running a query, and it would bury our one-line errors; Lambda runs Node 22.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const program = createProgram();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version requests exit 0; parse errors were already printed by commander.
      return err.exitCode === 0 ? 0 : 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`scalar-index: ${message.split('\n')[0]}\n`);
    if (err instanceof UsageError || err instanceof PredicateSyntaxError) return 2;
    if (!(err instanceof ScalarIndexError) && process.env.SCALAR_INDEX_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 1;
  }
}
