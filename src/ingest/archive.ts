import { eq, sql } from "drizzle-orm";
import { builder, type Db } from "../db/client";
import { failUnless } from "../db/lease";
import { rawPayloads } from "../db/schema";
import { nowIso } from "../lib/clock";
import { sha256 } from "../lib/digest";
import { gzip } from "../lib/raw-archive";

/** The newest archived payload of a source with this body, through the digest index (ordered by time, the planner would walk the source's whole archive). */
export const sameBodyQuery = (source: string, digest: string) =>
  sql`SELECT ${rawPayloads.id} AS id, ${rawPayloads.key} AS key FROM ${rawPayloads} INDEXED BY raw_digest_idx
    WHERE ${rawPayloads.source} = ${source} AND ${rawPayloads.digest} = ${digest} ORDER BY ${rawPayloads.fetchedAt} DESC LIMIT 1`;

type ParsedBody = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Stores an upstream body byte for byte in R2 before anything parses it, then parses it as JSON.
 * Returns the statements that go into the transaction of the part read from it: the D1 index row
 * (record count, null when not a JSON array, and SHA-256), or, when the body is identical to one
 * already archived for the source (a market that did not move), a check that keeps that archive: the
 * body is not stored again and the part points at the earlier copy. An unusable body is indexed on
 * its own (`index`). The id is derived from run and part (a part has one archive); the object's key
 * also names the delivery that fetched it (archiveKey).
 */
export async function archiveRaw(
  bucket: R2Bucket,
  db: Db,
  p: ArchivePlace & { bytes: Uint8Array; contentType: string; origin: string; reuse?: boolean },
) {
  const fetchedAt = nowIso();
  const body = parseJson(p.bytes);
  const digest = await sha256(p.bytes);
  const same = p.reuse === false ? undefined : await db.get<{ id: string; key: string }>(sameBodyQuery(p.source, digest));
  // The body was archived before; this fetch still happened now (records without their own time are stamped with it).
  if (same) return { ...same, fetchedAt, body, reused: true, index: null, inPart: [archiveStillThere(same.id)] };
  const id = `${p.runId}-${p.part}`;
  const key = archiveKey(p);
  // Stored gzipped (upstream JSON shrinks four- to tenfold: R2 bills storage by the GB-month); read
  // back through readArchived, which returns the bytes as received. The custom metadata carries what
  // the key cannot (the part, the exact fetch time, live or sample) so that a rebuild from R2 alone
  // (rebuild.ts) indexes the payload as it was; it rides on the put and the rebuild's list, no extra call.
  await bucket.put(key, gzip(p.bytes), {
    httpMetadata: { contentType: p.contentType, contentEncoding: "gzip" },
    customMetadata: { source: p.source, run_id: p.runId, part: p.part, fetched_at: fetchedAt, origin: p.origin },
  });
  const records = body.ok && Array.isArray(body.value) ? body.value.length : null;
  const size = p.bytes.byteLength;
  const index = builder
    .insert(rawPayloads)
    .values({
      id,
      source: p.source,
      runId: p.runId,
      key,
      fetchedAt,
      bytes: size,
      records,
      contentType: p.contentType,
      origin: p.origin,
      digest,
    })
    .onConflictDoUpdate({ target: rawPayloads.id, set: { key, fetchedAt, bytes: size, records, digest } });
  return { id, key, fetchedAt, body, reused: false, index, inPart: [index] };
}

/** A part of a run, and the delivery that fetches it: the day it started and its id. */
export type ArchivePlace = { source: string; runId: string; part: string; writer: ArchiveWriter };
export type ArchiveWriter = { day: string; id: string };

/**
 * Deletes what a delivery archived for its run that no index row names: it was taken over (it died or
 * stalled) or failed before its step committed, and whoever does the step fetches it again. Listed
 * by the run's prefix on the delivery's day; what a step of it did commit is kept.
 */
export async function deleteUnindexed(bucket: R2Bucket, db: Db, p: Omit<ArchivePlace, "part">) {
  const prefix = `raw/${p.source}/${p.writer.day}/${p.runId}-`;
  const own: string[] = [];
  let cursor: string | undefined;
  do {
    const listed = await bucket.list({ prefix, cursor });
    own.push(...listed.objects.map((o) => o.key).filter((k) => k.endsWith(`-${p.writer.id}.json`)));
    cursor = listed.truncated ? listed.cursor : undefined;
  } while (cursor);
  if (!own.length) return 0;
  const indexed = await db.select({ key: rawPayloads.key }).from(rawPayloads).where(eq(rawPayloads.runId, p.runId));
  const keys = new Set(indexed.map((r) => r.key));
  const orphans = own.filter((k) => !keys.has(k));
  if (orphans.length) await bucket.delete(orphans);
  return orphans.length;
}

/** A delivery that archives what it fetches: the day it started and an id of its own (archiveKey). */
export const newArchiveWriter = (): ArchiveWriter => ({ day: nowIso().slice(0, 10), id: crypto.randomUUID().slice(0, 8) });

/**
 * Where a delivery archives the body it fetched: a key of its own, so that a delivery that stalled
 * while another took its page over never writes over the body the other stored (nor the other over
 * its), and a taker can delete what a dead delivery left (it is derived from the delivery's lease).
 */
export const archiveKey = (p: ArchivePlace) => `raw/${p.source}/${p.writer.day}/${p.runId}-${p.part}-${p.writer.id}.json`;

/**
 * Fails, and so rolls back the part's whole transaction, when the archive it reuses is no longer
 * indexed (retention deleted it after this page found it): a part never commits pointing at a
 * deleted archive.
 */
const archiveStillThere = (id: string) => failUnless(sql`EXISTS (SELECT 1 FROM ${rawPayloads} WHERE ${rawPayloads.id} = ${id})`);

/** Whether an archive is still indexed. */
export async function isArchived(db: Db, id: string) {
  return !!(await db.select({ id: rawPayloads.id }).from(rawPayloads).where(eq(rawPayloads.id, id)).get());
}

function parseJson(bytes: Uint8Array): ParsedBody {
  try {
    return { ok: true, value: JSON.parse(new TextDecoder().decode(bytes)) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
