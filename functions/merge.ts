/** MergeAndCommit task: merge every part into new index files and commit a new version. */
import { mergeAndCommitStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

const settings = stepSettingsFromEnv();

export const handler = step('merge', (event) => mergeAndCommitStep(event, settings));
