/** Plan task: register new fragments and write the group list for the Distributed Map. */
import { planStep } from '../lib/workflow/steps.js';
import { step, stepSettingsFromEnv } from './shared.js';

const settings = stepSettingsFromEnv();

export const handler = step('plan', (event) => planStep(event, settings));
