/** A whole build through the workflow steps, in this process, with a hook between parts and merge. */
import type { WriterTuning } from '../../lib/indexes/kind.js';
import { buildPart } from '../../lib/workflow/build-part.js';
import { commit } from '../../lib/workflow/commit.js';
import { merge } from '../../lib/workflow/merge.js';
import { plan } from '../../lib/workflow/plan.js';
import type { IndexRequest } from '../../lib/workflow/types.js';

/** plan → every build-part → (`beforeMerge`) → merge → commit. */
export async function runBuild(
  root: string,
  options: { indexes?: IndexRequest[]; groupRows?: number; tuning?: WriterTuning; beforeMerge?: (buildId: string) => Promise<void> } = {},
): Promise<void> {
  const p = await plan({ dataset: root, indexes: options.indexes, groupRows: options.groupRows });
  if (!p.hasWork) return;
  for (const groupId of p.groupIds) await buildPart({ dataset: root, buildId: p.buildId, groupId }, options.tuning);
  await options.beforeMerge?.(p.buildId);
  await commit(await merge({ dataset: root, buildId: p.buildId }, options.tuning));
}
