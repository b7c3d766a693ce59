import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { rawPayloads } from "../db/schema";
import { nowIso } from "../lib/clock";

/**
 * Stores an upstream body byte for byte in R2, and indexes it in D1, before anything parses it.
 * The id is derived from run and part, so a redelivered message overwrites its own archive.
 */
export async function archiveRaw(
  bucket: R2Bucket,
  db: Db,
  p: { source: string; runId: string; part: string; bytes: Uint8Array; contentType: string; origin: string },
) {
  const fetchedAt = nowIso();
  const id = `${p.runId}-${p.part}`;
  const key = `raw/${p.source}/${fetchedAt.slice(0, 10)}/${id}.json`;
  await bucket.put(key, p.bytes, { httpMetadata: { contentType: p.contentType }, customMetadata: { source: p.source, run_id: p.runId } });
  await db
    .insert(rawPayloads)
    .values({
      id,
      source: p.source,
      runId: p.runId,
      key,
      fetchedAt,
      bytes: p.bytes.byteLength,
      contentType: p.contentType,
      origin: p.origin,
    })
    .onConflictDoUpdate({ target: rawPayloads.id, set: { key, fetchedAt, bytes: p.bytes.byteLength } });
  return { id, key, fetchedAt };
}

export async function setRawRecordCount(db: Db, id: string, records: number) {
  await db.update(rawPayloads).set({ records }).where(eq(rawPayloads.id, id));
}
