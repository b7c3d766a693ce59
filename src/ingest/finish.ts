import type { Source } from "../config";
import { runBatch } from "../db/batch";
import type { Services } from "../jobs/context";
import { log } from "../lib/log";
import { publishMapCache } from "../unify/map-cache";
import { writeCheckpoint } from "./checkpoints";
import { releaseLease, sourceLeaseName } from "./lease";
import { finishRun } from "./runs";
import { totalsStatement } from "./store";

/** Closes a run: totals and status in D1, lease released, checkpoint and map published to KV. */
export async function completeRun(
  s: Services,
  runId: string,
  opts: { error?: string | null; cursor?: string | null; holdsLease: boolean },
) {
  // `total` of GET /data is recounted once per run rather than on every read.
  await runBatch(s.db, [totalsStatement()]);
  const run = await finishRun(s.db, runId, opts.error ?? null);
  if (!run) return null;
  const source = run.source as Source;
  if (opts.holdsLease) await releaseLease(s.db, sourceLeaseName(source), runId);
  log(run.status === "failed" ? "warn" : "info", "run_finished", {
    run_id: runId,
    source,
    trigger: run.trigger,
    status: run.status,
    duration_ms: run.durationMs,
    fetched: run.fetched,
    accepted: run.accepted,
    rejected: run.rejected,
    written: run.written,
    error: run.error,
  });
  // KV is a published copy; failing to write it must not fail the run that D1 already recorded.
  try {
    await writeCheckpoint(s.env.KV, source, {
      last_run_id: runId,
      ...(run.status !== "failed" ? { last_success_at: run.finishedAt, cursor: opts.cursor ?? null } : {}),
    });
    if (run.status !== "failed") await publishMapCache(s.db, s.env.KV, source);
  } catch (e) {
    log("warn", "kv_publish_failed", { run_id: runId, error: (e as Error).message });
  }
  return run;
}
