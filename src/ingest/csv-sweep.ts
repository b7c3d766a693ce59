import { and, inArray, lt, sql } from "drizzle-orm";
import { ingestionRuns, OPEN_RUN_STATUSES, runParts, uploads } from "../db/schema";
import type { JobMessage } from "../jobs/messages";
import { now, nowIso } from "../lib/clock";
import { newId } from "../lib/ids";
import { log } from "../lib/log";
import type { Services } from "../services";
import { completeRun } from "./finish";
import { markRunning, newRunRow, startingRun } from "./runs";

export const UPLOAD_PREFIX = "uploads/";
/** An upload still unfinished after this long lost its message (or its worker): it is re-enqueued and resumes. */
export const STUCK_AFTER_MS = 15 * 60_000;
/** What is taken for a CSV file by its name: an upload without a CSV content type, the sweep, a rebuild. */
export const CSV_OBJECT = /\.(csv|tsv|txt)$/i;

/**
 * The CSV source's run: registers CSV objects that reached R2 by other means (wrangler, the S3
 * API) and re-enqueues uploads whose ingestion stalled. Each registered object gets its own run.
 */
export async function sweepUploads(s: Services, msg: Extract<JobMessage, { type: "csv_sweep" }>) {
  await markRunning(s.db, msg.run_id);
  let found = 0;
  let cursor: string | undefined;
  do {
    const page = await s.env.BUCKET.list({ prefix: UPLOAD_PREFIX, cursor, limit: 1000 });
    const objects = page.objects.filter((o) => CSV_OBJECT.test(o.key));
    cursor = page.truncated ? page.cursor : undefined;
    if (!objects.length) continue;
    // A page lists up to 1,000 keys: one JSON parameter, as D1 binds at most 100.
    const listed = JSON.stringify(objects.map((o) => o.key));
    const known = new Set(
      (await s.db.select({ key: uploads.key }).from(uploads).where(sql`${uploads.key} IN (SELECT value FROM json_each(${listed}))`)).map(
        (r) => r.key,
      ),
    );
    for (const o of objects.filter((o) => !known.has(o.key))) {
      await registerUpload(s, { key: o.key, filename: o.key.split("/").pop() ?? o.key, bytes: o.size, etag: o.etag });
      found++;
    }
  } while (cursor);

  const stuck = await s.db
    .select()
    .from(uploads)
    .where(and(inArray(uploads.status, [...OPEN_RUN_STATUSES]), lt(uploads.updatedAt, new Date(now() - STUCK_AFTER_MS).toISOString())));
  for (const u of stuck) {
    if (u.runId) await s.env.JOBS.send({ type: "csv_upload", run_id: u.runId, upload_id: u.uploadId });
  }
  if (found || stuck.length) log("info", "csv_sweep", { run_id: msg.run_id, registered: found, resumed: stuck.length });
  await s.db
    .insert(runParts)
    .values({ runId: msg.run_id, part: "sweep", fetched: found, accepted: 0, rejected: 0, written: 0, finishedAt: nowIso() })
    .onConflictDoNothing();
  await completeRun(s, msg.run_id, { holdsLease: true, cursor: nowIso() });
}

/** Records an upload and its run, then enqueues its ingestion. */
export async function registerUpload(s: Services, o: { key: string; filename: string; bytes: number; etag: string; uploadId?: string }) {
  const run = newRunRow("csv", "upload", "live");
  const uploadId = o.uploadId ?? newId("upl");
  const at = nowIso();
  await startingRun(s.db, run.runId, () => enqueueUpload(s, o, run, uploadId, at));
  return { uploadId, runId: run.runId };
}

async function enqueueUpload(
  s: Services,
  o: { key: string; filename: string; bytes: number; etag: string },
  run: ReturnType<typeof newRunRow>,
  uploadId: string,
  at: string,
) {
  await s.db.batch([
    s.db.insert(ingestionRuns).values(run),
    s.db
      .insert(uploads)
      .values({
        uploadId,
        key: o.key,
        filename: o.filename,
        bytes: o.bytes,
        etag: o.etag,
        runId: run.runId,
        status: "queued",
        createdAt: at,
        updatedAt: at,
      })
      .onConflictDoUpdate({ target: uploads.uploadId, set: { runId: run.runId, bytes: o.bytes, etag: o.etag, updatedAt: at } }),
  ]);
  await s.env.JOBS.send({ type: "csv_upload", run_id: run.runId, upload_id: uploadId });
}
