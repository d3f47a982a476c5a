/** MergeAndCommit task: merge every part into new index files and commit a new version. */
import { mergeAndCommitStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

// Lambda reads and writes S3 only: a local path would name this sandbox's own disk.
const settings = { ...stepSettingsFromEnv(), s3Only: true };

export const handler = step('merge', async (event, { metrics }) => {
  const out = await mergeAndCommitStep(event, settings);
  if (out.committed) {
    // The dashboard's "fragments indexed" and "bytes written": the new index files of this commit.
    metrics.addMetric('FragmentsIndexed', 'Count', out.fragmentsAdded);
    metrics.addMetric('IndexBytesWritten', 'Bytes', out.indexes.reduce((n, i) => n + i.bytes, 0));
  }
  return out;
});
