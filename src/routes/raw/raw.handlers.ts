import type { RouteHandler } from "@hono/zod-openapi";
import { and, count, desc, eq } from "drizzle-orm";
import { rawPayloads } from "../../db/schema";
import { ApiError } from "../../lib/errors";
import { readArchived } from "../../lib/raw-archive";
import { type AppEnv, envelope } from "../../lib/router";
import type { BodyRoute, ListRoute } from "./raw.routes";

export const list: RouteHandler<ListRoute, AppEnv> = async (c) => {
  const { source } = c.req.valid("param");
  const { page, page_size } = c.req.valid("query");
  const db = c.get("services").db;
  const [rows, [{ total }]] = await db.batch([
    db
      .select()
      .from(rawPayloads)
      .where(eq(rawPayloads.source, source))
      .orderBy(desc(rawPayloads.fetchedAt), desc(rawPayloads.id))
      .limit(page_size)
      .offset((page - 1) * page_size),
    db.select({ total: count() }).from(rawPayloads).where(eq(rawPayloads.source, source)),
  ]);
  const data = rows.map((r) => ({
    id: r.id,
    source,
    run_id: r.runId,
    fetched_at: r.fetchedAt,
    bytes: r.bytes,
    records: r.records,
    content_type: r.contentType,
    origin: r.origin === "recorded" ? ("recorded" as const) : ("live" as const),
  }));
  return c.json(envelope(c, data, { page, page_size, total }), 200);
};

export const body: RouteHandler<BodyRoute, AppEnv> = async (c) => {
  const { source, raw_id } = c.req.valid("param");
  const row = await c
    .get("services")
    .db.query.rawPayloads.findFirst({ where: and(eq(rawPayloads.source, source), eq(rawPayloads.id, raw_id)) });
  const body = row ? await readArchived(c.get("services").env.BUCKET, row.key) : null;
  if (!row || !body) throw new ApiError("not_found", `no archived ${source} payload "${raw_id}"`);
  return new Response(body, {
    headers: {
      "content-type": row.contentType,
      "content-length": String(row.bytes),
      etag: `"${row.digest ?? row.id}"`,
      "cache-control": "public, max-age=86400, immutable",
    },
  }) as never;
};
