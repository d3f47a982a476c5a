/** CDK entry point (cdk.json `app`): `npx cdk synth`, `npx cdk deploy -c datasetPrefixes=datasets/sales`. */
import { createScalarIndexApp } from './scalar-index-app.js';

createScalarIndexApp().app.synth();
