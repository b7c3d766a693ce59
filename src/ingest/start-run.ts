import { eq } from "drizzle-orm";
import { HTTP_SOURCES, type HttpSource, type Source } from "../config";
import { acquireLease, leaseStatement, releaseLease, SOURCE_LEASE_MS, sourceLeaseName } from "../db/lease";
import { ingestionRuns } from "../db/schema";
import type { JobMessage } from "../jobs/messages";
import { log } from "../lib/log";
import type { Trigger } from "../schemas/runs";
import type { Services } from "../services";
import { contractsDue, firstContractsMessage } from "./fetch-contracts";
import { closeAbandoned, getRun, newRunRow, runIsOpen, startingRun } from "./runs";

/**
 * The source lease's heartbeat, sent with each message of a run: extended once less than half of it
 * is left (so not every message writes a row), and never taken back by a run that is over.
 */
export const sourceHeartbeat = (source: Source, runId: string) =>
  leaseStatement(sourceLeaseName(source), runId, SOURCE_LEASE_MS, runIsOpen(runId), SOURCE_LEASE_MS / 2);

export type StartResult = { started: true; run: typeof ingestionRuns.$inferSelect } | { started: false; runningRunId: string | null };

/**
 * Takes the source's lease (so no two runs of one source overlap), records the run as queued and
 * enqueues its first message. The lease is held by the run id until the run finishes or expires.
 */
export async function startSourceRun(s: Services, source: Source, trigger: Trigger): Promise<StartResult> {
  const row = newRunRow(source, trigger, s.config.DATA_ORIGIN);
  // A run that did not start has no row to charge: its recordUsage changes nothing.
  const taken = await startingRun(s.db, row.runId, () => takeLeaseAndEnqueue(s, source, trigger, row));
  if (!taken.started) return { started: false, runningRunId: taken.holder };
  return { started: true, run: (await getRun(s.db, row.runId))! };
}

/** Started when the run was queued; otherwise the run of the source that holds the lease (as read before trying). */
async function takeLeaseAndEnqueue(
  s: Services,
  source: Source,
  trigger: Trigger,
  row: ReturnType<typeof newRunRow>,
): Promise<{ started: boolean; holder: string | null }> {
  const previous = await s.db.query.leases.findFirst({ where: (l, { eq }) => eq(l.name, sourceLeaseName(source)) });
  if (!(await acquireLease(s.db, sourceLeaseName(source), row.runId, SOURCE_LEASE_MS)))
    return { started: false, holder: previous?.holder ?? null };
  await closeAbandoned(s.db, previous?.holder, row.runId);
  try {
    await s.db.insert(ingestionRuns).values(row);
    const http = (HTTP_SOURCES as readonly string[]).includes(source) ? (source as HttpSource) : null;
    // A run whose contract lists are due fetches them first, then its pages (fetch-contracts.ts).
    const first: JobMessage = !http
      ? { type: "csv_sweep", run_id: row.runId }
      : (await contractsDue(s.db, http, s.config.IDENTITY_REFRESH_HOURS))
        ? firstContractsMessage(row.runId, http)
        : { type: "fetch_page", run_id: row.runId, source: http, page: 1 };
    await s.env.JOBS.send(first);
  } catch (e) {
    await releaseLease(s.db, sourceLeaseName(source), row.runId);
    await s.db
      .update(ingestionRuns)
      .set({ status: "failed", error: "could not enqueue the run" })
      .where(eq(ingestionRuns.runId, row.runId));
    throw e;
  }
  log("info", "run_queued", { run_id: row.runId, source, trigger });
  return { started: true, holder: row.runId };
}
