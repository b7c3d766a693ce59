import type { RouteHandler } from "@hono/zod-openapi";
import { and, asc, eq, ne } from "drizzle-orm";
import type { Db } from "../../db/client";
import { rejectedRecords, uploads } from "../../db/schema";
import { CSV_OBJECT, registerUpload, UPLOAD_PREFIX } from "../../ingest/csv-sweep";
import { nowIso } from "../../lib/clock";
import { ApiError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import { log } from "../../lib/log";
import { type AppEnv, envelope } from "../../lib/router";
import type { Upload } from "../../schemas/runs";
import { CSV_TYPES, type GetRoute, type PutRoute } from "./uploads.routes";

export const put: RouteHandler<PutRoute, AppEnv> = async (c) => {
  const { filename } = c.req.valid("param");
  const max = c.get("services").config.MAX_UPLOAD_BYTES;
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  const csvByName = CSV_OBJECT.test(filename);
  if (type ? !CSV_TYPES.includes(type) && !(type === "application/octet-stream" && csvByName) : !csvByName) {
    throw new ApiError("unsupported_media_type", `expected a CSV body (text/csv), got ${type || "no content type"}`);
  }
  const declared = Number(c.req.header("content-length") ?? Number.NaN);
  if (declared > max) throw new ApiError("payload_too_large", `the body is ${declared} bytes; the limit is ${max}`);
  // Without a length the body is read with a cap, so an unbounded stream cannot exhaust memory.
  const body = Number.isFinite(declared) && c.req.raw.body ? c.req.raw.body : await readCapped(c.req.raw, max);
  const s = c.get("services");
  const uploadId = newId("upl");
  const key = `${UPLOAD_PREFIX}${uploadId}/${filename}`;
  const at = nowIso();
  // The row exists before the object, so the cron sweep never mistakes an API upload for a foreign one.
  await s.db.insert(uploads).values({ uploadId, key, filename, bytes: 0, etag: "", status: "queued", createdAt: at, updatedAt: at });
  const stored = await s.env.BUCKET.put(key, body, { httpMetadata: { contentType: "text/csv" }, customMetadata: { filename } }).catch(
    (e: Error) => {
      log("error", "upload_store_failed", { request_id: c.get("requestId"), key, error: e.message });
      return null;
    },
  );
  if (!stored) {
    await s.db.delete(uploads).where(eq(uploads.uploadId, uploadId));
    throw new ApiError("unavailable", "the upload could not be stored; nothing was kept, try again");
  }
  const same = await s.db.query.uploads.findFirst({
    where: and(eq(uploads.filename, filename), eq(uploads.etag, stored.etag), ne(uploads.status, "failed"), ne(uploads.uploadId, uploadId)),
  });
  if (same) {
    await Promise.all([s.env.BUCKET.delete(key), s.db.delete(uploads).where(eq(uploads.uploadId, uploadId))]);
    return c.json(envelope(c, await uploadView(s.db, same.uploadId)), 202);
  }
  await registerUpload(s, { uploadId, key, filename, bytes: stored.size, etag: stored.etag });
  return c.json(envelope(c, await uploadView(s.db, uploadId)), 202);
};

export const get: RouteHandler<GetRoute, AppEnv> = async (c) => {
  const { upload_id } = c.req.valid("param");
  return c.json(envelope(c, await uploadView(c.get("services").db, upload_id)), 200);
};

async function uploadView(db: Db, uploadId: string): Promise<Upload> {
  const u = await db.query.uploads.findFirst({ where: eq(uploads.uploadId, uploadId) });
  if (!u) throw new ApiError("not_found", `no upload "${uploadId}"`);
  const rows = u.runId
    ? await db
        .select({ row: rejectedRecords.row, reason: rejectedRecords.reason })
        .from(rejectedRecords)
        .where(eq(rejectedRecords.runId, u.runId))
        .orderBy(asc(rejectedRecords.row))
        .limit(100)
    : [];
  return {
    upload_id: u.uploadId,
    key: u.key,
    filename: u.filename,
    bytes: u.bytes,
    status: u.status,
    run_id: u.runId,
    records: { accepted: u.accepted, rejected: u.rejected },
    rejected_rows: rows.map((r) => ({ row: r.row ?? 0, reason: r.reason })),
    created_at: u.createdAt,
  };
}

async function readCapped(req: Request, max: number) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body?.getReader();
  while (reader) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new ApiError("payload_too_large", `the body exceeds the limit of ${max} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const ch of chunks) {
    out.set(ch, at);
    at += ch.byteLength;
  }
  return out;
}
