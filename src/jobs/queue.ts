import { deadLetters } from "../db/schema";
import type { Env } from "../env";
import { sweepUploads } from "../ingest/csv-sweep";
import { ingestUpload } from "../ingest/csv-upload";
import { fetchContracts } from "../ingest/fetch-contracts";
import { fetchPage } from "../ingest/fetch-page";
import { completeRun } from "../ingest/finish";
import { abandonRebuild, rebuild } from "../ingest/rebuild";
import { replay } from "../ingest/replay";
import { recordUsage } from "../ingest/runs";
import { nowIso } from "../lib/clock";
import { log } from "../lib/log";
import { measured, subtractUsage } from "../lib/usage";
import { type Services, servicesFor } from "../services";
import { HOLDS_SOURCE_LEASE, type JobMessage, JobMessageSchema } from "./messages";

export const DEAD_LETTER_QUEUE = "coinfuse-dlq";

export async function runJob(s: Services, job: JobMessage) {
  switch (job.type) {
    case "fetch_page":
      return fetchPage(s, job);
    case "fetch_contracts":
      return fetchContracts(s, job);
    case "csv_upload":
      return ingestUpload(s, job);
    case "csv_sweep":
      return sweepUploads(s, job);
    case "replay":
      return replay(s, job);
    case "rebuild":
      return rebuild(s, job);
  }
}

/**
 * Runs one job under its own meter. What it cost goes to its run: with its part, the next page's
 * message or the close where it has one, and whatever is left here. Returns the job's error, if any.
 */
export async function runMeteredJob(s: Services, job: JobMessage) {
  const cost = await measured(async () => {
    try {
      await runJob(s, job);
      return null;
    } catch (e) {
      return e as Error;
    }
  });
  // A failed job is delivered again with what it carried in: that is recorded then, not twice.
  const usage = cost.result && cost.carried ? subtractUsage(cost.usage, cost.carried) : cost.usage;
  try {
    await recordUsage(s.db, job.run_id, usage);
  } catch (e) {
    log("warn", "usage_not_recorded", { run_id: job.run_id, error: (e as Error).message });
  }
  return cost.result;
}

/**
 * Acks or retries each message on its own: one bad message never holds back the others. A
 * message that keeps failing is retried with growing delays, then moves to the dead-letter queue.
 */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env, fetchImpl?: typeof fetch, ctx?: ExecutionContext) {
  if (batch.queue === DEAD_LETTER_QUEUE) return handleDeadLetters(batch, env);
  const s = servicesFor(env, fetchImpl, ctx);
  for (const message of batch.messages) {
    const parsed = JobMessageSchema.safeParse(message.body);
    if (!parsed.success) {
      log("error", "job_invalid", { message_id: message.id, issues: parsed.error.issues.slice(0, 3) });
      message.ack(); // retrying a malformed message cannot help
      continue;
    }
    const job = parsed.data;
    const t0 = performance.now();
    const error = await runMeteredJob(s, job);
    if (!error) {
      message.ack();
      log("info", "job_done", {
        message_id: message.id,
        type: job.type,
        run_id: job.run_id,
        attempts: message.attempts,
        duration_ms: Math.round(performance.now() - t0),
      });
    } else {
      const e = error;
      const delaySeconds = Math.min(300, 2 ** message.attempts);
      log("error", "job_failed", {
        message_id: message.id,
        type: job.type,
        run_id: job.run_id,
        attempts: message.attempts,
        retry_in_s: delaySeconds,
        error: (e as Error).message,
      });
      message.retry({ delaySeconds });
    }
  }
}

/** Messages that exhausted their retries: kept in D1 for /stats, and their run closed as failed. */
async function handleDeadLetters(batch: MessageBatch<unknown>, env: Env) {
  const s = servicesFor(env);
  for (const message of batch.messages) {
    await s.db
      .insert(deadLetters)
      .values({
        messageId: message.id,
        body: JSON.stringify(message.body).slice(0, 10_000),
        attempts: message.attempts,
        receivedAt: nowIso(),
      })
      .onConflictDoNothing();
    const parsed = JobMessageSchema.safeParse(message.body);
    const error = "dead-lettered: the job kept failing after every retry";
    if (parsed.success && parsed.data.type === "rebuild") await abandonRebuild(s, parsed.data, error);
    else if (parsed.success) {
      await completeRun(s, parsed.data.run_id, { error, holdsLease: HOLDS_SOURCE_LEASE.has(parsed.data.type) });
    }
    log("error", "job_dead_lettered", { message_id: message.id, body: message.body });
    message.ack();
  }
}
