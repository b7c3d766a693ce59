import { consensusRules, type Source } from "../config";
import type { Statement } from "../db/batch";
import { releaseStatement, sourceLeaseName } from "../db/lease";
import { publishReadModel } from "../db/read-model";
import { nowIso } from "../lib/clock";
import { purgeReadCache } from "../lib/http-cache";
import { log } from "../lib/log";
import { currentMeter } from "../lib/usage";
import type { Services } from "../services";
import { publishMapCache } from "../unify/map-cache";
import { writeCheckpoint } from "./checkpoints";
import { deferRequestsStatement } from "./request-budget";
import { afterClose, type Costed, finishRun, getRun, isFinished, partTotals } from "./runs";

/**
 * Closes a run: the /data read model rebuilt once (when the run wrote anything), checkpoint and map
 * published to KV, then totals, status, lease, usage and `closing` in one D1 transaction, and the edge cache purged.
 */
export async function completeRun(
  s: Services,
  runId: string,
  opts: { error?: string | null; cursor?: string | null; holdsLease: boolean; nextCallAt?: number; closing?: Costed[] },
) {
  const before = await getRun(s.db, runId);
  if (!before || isFinished(before.status)) {
    await afterClose(s.db, opts.closing ?? []);
    return before ?? null;
  }
  const source = before.source as Source;
  const totals = await partTotals(s.db, runId);
  const failed = !!opts.error;
  // D1 holds the rows already; a snapshot or KV that fails to publish only leaves reads one run stale.
  try {
    if (totals.written > 0) await publishReadModel(s.db, s.env.BUCKET, consensusRules(s.config), s.env.KV);
  } catch (e) {
    log("warn", "read_model_publish_failed", { run_id: runId, error: (e as Error).message });
  }
  try {
    await writeCheckpoint(s.env.KV, source, {
      last_run_id: runId,
      ...(!failed ? { last_success_at: nowIso(), cursor: opts.cursor ?? null } : {}),
    });
    if (!failed) await publishMapCache(s.db, s.env.KV, source);
  } catch (e) {
    log("warn", "kv_publish_failed", { run_id: runId, error: (e as Error).message });
  }
  const also: Statement[] = [];
  if (opts.holdsLease) also.push(releaseStatement(sourceLeaseName(source), runId));
  // The run paced its calls in memory; the next run of the source starts from where it left off.
  if (opts.nextCallAt !== undefined) also.push(deferRequestsStatement(source, opts.nextCallAt));
  // This message's cost so far goes in with the close; the queue handler records whatever follows.
  const usage = currentMeter()?.take();
  const run = await finishRun(s.db, runId, opts.error ?? null, { run: before, totals, also, closing: opts.closing, usage });
  if (!run) return null;
  if (totals.written > 0) await purgeReadCache(s.ctx);
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
    d1_rows_written: run.d1_rows_written,
    error: run.error,
  });
  return run;
}
