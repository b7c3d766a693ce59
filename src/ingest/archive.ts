import type { Db } from "../db/client";
import { rawPayloads } from "../db/schema";
import { nowIso } from "../lib/clock";

type ParsedBody = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Stores an upstream body byte for byte in R2 before anything parses it, then parses it as JSON
 * and indexes it in D1 with its record count (one row write, null when it is not a JSON array).
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
  const body = parseJson(p.bytes);
  const records = body.ok && Array.isArray(body.value) ? body.value.length : null;
  const size = p.bytes.byteLength;
  await db
    .insert(rawPayloads)
    .values({ id, source: p.source, runId: p.runId, key, fetchedAt, bytes: size, records, contentType: p.contentType, origin: p.origin })
    .onConflictDoUpdate({ target: rawPayloads.id, set: { key, fetchedAt, bytes: size, records } });
  return { id, key, fetchedAt, body };
}

function parseJson(bytes: Uint8Array): ParsedBody {
  try {
    return { ok: true, value: JSON.parse(new TextDecoder().decode(bytes)) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
