/** BuildPart task (one per Distributed Map item): index one fragment group into part files. */
import { buildPartStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

// Lambda reads and writes S3 only: a local path would name this sandbox's own disk.
const settings = { ...stepSettingsFromEnv(), s3Only: true };

export const handler = step('build-part', async (event, { metrics }) => {
  const out = await buildPartStep(event, settings);
  metrics.addMetric('RowsIndexed', 'Count', out.rows);
  return out;
});
