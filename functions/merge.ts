/** MergeAndCommit task: merge every part into new index files and commit a new version. */
import { mergeAndCommitStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

// Lambda reads and writes S3 only: a local path would name this sandbox's own disk.
const settings = { ...stepSettingsFromEnv(), s3Only: true };

export const handler = step('merge', (event) => mergeAndCommitStep(event, settings));
