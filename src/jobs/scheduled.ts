import { desc, eq } from "drizzle-orm";
import { consensusRules, SOURCES, type Source } from "../config";
import { carryLegacyTables } from "../db/legacy";
import { deleteOldSnapshots, publishIfUnreadable } from "../db/read-model";
import { ingestionRuns } from "../db/schema";
import type { Env } from "../env";
import { rollUpFxHistory } from "../ingest/fx";
import { pruneRawArchive, rollUpHistory } from "../ingest/retention";
import { startSourceRun } from "../ingest/start-run";
import { now } from "../lib/clock";
import { log } from "../lib/log";
import { servicesFor } from "../services";

export const RETENTION_CRON = "17 3 * * *";

/**
 * Every tick starts each source whose interval has passed since its last run started; a source
 * still running keeps its lease and is skipped, so overlapping ticks never double the work.
 */
export async function handleScheduled(controller: ScheduledController, env: Env) {
  const s = servicesFor(env);
  if (controller.cron === RETENTION_CRON) {
    const history = await rollUpHistory(s.db);
    const fx = await rollUpFxHistory(s);
    const archive = await pruneRawArchive(s.db, s.env.BUCKET, s.config.RAW_RETENTION_DAYS);
    const snapshots = await deleteOldSnapshots(s.env.BUCKET);
    log("info", "retention", { ...history, ...fx, ...archive, ...snapshots });
    return;
  }
  await publishIfUnreadable(s.db, s.env.BUCKET, consensusRules(s.config), s.env.KV).catch((e) =>
    log("warn", "read_model_publish_failed", { after: "tick", error: String(e) }),
  );
  const legacy = await carryLegacyTables(s.db);
  if (legacy.quotes || legacy.points) log("info", "legacy_carried", legacy);
  const started: Record<string, string> = {};
  for (const source of SOURCES) {
    if (!(await isDue(s.db, source, s.config.SOURCE_INTERVAL_MINUTES[source]))) continue;
    const result = await startSourceRun(s, source, "cron");
    started[source] = result.started ? result.run.runId : `busy (${result.runningRunId})`;
  }
  log("info", "cron_tick", { cron: controller.cron, started });
}

async function isDue(db: ReturnType<typeof servicesFor>["db"], source: Source, minutes: number) {
  const last = await db.query.ingestionRuns.findFirst({
    where: eq(ingestionRuns.source, source),
    orderBy: desc(ingestionRuns.createdAt),
    columns: { createdAt: true, trigger: true },
  });
  if (!last) return true;
  // A few seconds of slack, so a 5-minute interval fires on the 5th tick and not the 6th.
  return now() - Date.parse(last.createdAt) >= minutes * 60_000 - 5_000;
}
