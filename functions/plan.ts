/** Plan task: register new fragments and write the group list for the Distributed Map. */
import { planStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

const settings = stepSettingsFromEnv();

export const handler = step('plan', async (event, { metrics }) => {
  const out = await planStep(event, settings);
  metrics.addMetric('FragmentsRegistered', 'Count', out.fragmentsAdded);
  return out;
});
