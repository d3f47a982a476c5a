/**
 * MergeAndCommit task: make each index's new segment from the parts and commit it. The same
 * function runs the workflow's compactions: an input with a `task` (`{dataset, task}`) merges
 * the segments the size-tiered policy named.
 */
import { compactStep, mergeAndCommitStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

// Lambda reads and writes S3 only: a local path would name this sandbox's own disk.
const settings = { ...stepSettingsFromEnv(), s3Only: true };

export const handler = step('merge', async (event, { metrics }) => {
  if (typeof event === 'object' && event !== null && 'task' in event) {
    // The state machine catches a failed compaction (the build is committed already), so this
    // metric, and the alarm on it, is what tells anyone that segments are piling up.
    const out = await compactStep(event, settings).catch((err: unknown) => {
      metrics.addMetric('CompactionsFailed', 'Count', 1);
      throw err;
    });
    metrics.addMetric('CompactionsCommitted', 'Count', out.committed);
    metrics.addMetric('IndexBytesWritten', 'Bytes', out.bytesWritten);
    return out;
  }
  const out = await mergeAndCommitStep(event, settings);
  if (out.committed) {
    // The dashboard's "fragments indexed" and "bytes written": the new index files of this commit.
    metrics.addMetric('FragmentsIndexed', 'Count', out.fragmentsAdded);
    metrics.addMetric('IndexBytesWritten', 'Bytes', out.indexes.reduce((n, i) => n + i.bytes, 0));
  }
  return out;
});
