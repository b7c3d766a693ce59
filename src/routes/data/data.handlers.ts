import type { RouteHandler } from "@hono/zod-openapi";
import { assetHistory, getAssetDetail, listAssets, resolveUid } from "../../db/queries/assets";
import { ApiError } from "../../lib/errors";
import { cachedJson } from "../../lib/http-cache";
import { type AppEnv, envelope } from "../../lib/router";
import type { DetailRoute, HistoryRoute, ListRoute } from "./data.routes";

const DEFAULT_DESC = new Set(["market_cap", "price", "volume", "change_24h"]);

export const list: RouteHandler<ListRoute, AppEnv> = async (c) => {
  const q = c.req.valid("query");
  const order = q.order ?? (DEFAULT_DESC.has(q.sort) ? "desc" : "asc");
  const { items, total } = await listAssets(c.get("services").db, c.get("services").env.BUCKET, {
    page: q.page,
    pageSize: q.page_size,
    source: q.source,
    symbol: q.symbol,
    q: q.q,
    sort: q.sort,
    order,
  });
  return cachedJson(
    c,
    envelope(c, items, { page: q.page, page_size: q.page_size, total, data_origin: c.get("services").config.DATA_ORIGIN }),
  ) as never;
};

export const detail: RouteHandler<DetailRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const asset = await getAssetDetail(c.get("services").db, asset_uid);
  if (!asset) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  return cachedJson(c, envelope(c, asset)) as never;
};

export const history: RouteHandler<HistoryRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const q = c.req.valid("query");
  const uid = await resolveUid(c.get("services").db, asset_uid);
  if (!uid) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  const toIso = (s?: string) => (s ? new Date(s).toISOString() : undefined);
  const points = await assetHistory(c.get("services").db, uid, { source: q.source, from: toIso(q.from), to: toIso(q.to), limit: q.limit });
  return cachedJson(c, envelope(c, points, { asset_uid: uid })) as never;
};
