/** Plan task: register new fragments and write the group list for the Distributed Map. */
import { planStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

// Lambda reads and writes S3 only: a local path would name this sandbox's own disk.
const settings = { ...stepSettingsFromEnv(), s3Only: true };

export const handler = step('plan', async (event, { metrics }) => {
  const out = await planStep(event, settings);
  metrics.addMetric('FragmentsRegistered', 'Count', out.fragmentsAdded);
  return out;
});
