import type { RouteHandler } from "@hono/zod-openapi";
import { consensusRules } from "../../config";
import { assetHistory, getAssetDetail, listAssets, resolveUid } from "../../db/queries/assets";
import { currentReadModel } from "../../db/read-model";
import { csvRow, download } from "../../lib/csv-out";
import { ApiError } from "../../lib/errors";
import { cachedJson, readCacheHeaders } from "../../lib/http-cache";
import { type AppEnv, envelope } from "../../lib/router";
import { type BucketPoint, bucketed, candles, consensusSeries, type SeriesPoint } from "../../lib/series";
import { type Asset, AssetSchema } from "../../schemas/assets";
import type { DetailRoute, ExportRoute, HistoryRoute, ListRoute, OhlcRoute } from "./data.routes";

const DEFAULT_DESC = new Set(["market_cap", "price", "volume", "change_24h"]);
const orderOf = (q: { sort: string; order?: "asc" | "desc" }) => q.order ?? (DEFAULT_DESC.has(q.sort) ? "desc" : "asc");

/** One CSV column per Asset field, in the schema's order. */
const EXPORT_COLUMNS = Object.keys(AssetSchema.shape) as (keyof Asset)[];

export const exportAssets: RouteHandler<ExportRoute, AppEnv> = async (c) => {
  const q = c.req.valid("query");
  const s = c.get("services");
  const model = await currentReadModel(s.readDb, s.env.BUCKET, s.env.KV);
  const filter = { source: q.source, symbol: q.symbol, q: q.q, ids: q.ids, sort: q.sort, order: orderOf(q) };
  const pages = model ? model.each(filter) : [];
  const headers = readCacheHeaders();
  if (q.format === "ndjson") {
    const lines = (function* () {
      for (const page of pages) yield page.map((a) => `${JSON.stringify(a)}\n`).join("");
    })();
    return download(lines, "application/x-ndjson; charset=utf-8", "coinfuse-assets.ndjson", headers) as never;
  }
  const rows = (function* () {
    yield csvRow(EXPORT_COLUMNS);
    for (const page of pages) yield page.map((a) => csvRow(EXPORT_COLUMNS.map((k) => a[k]))).join("");
  })();
  return download(rows, "text/csv; charset=utf-8", "coinfuse-assets.csv", headers) as never;
};

export const list: RouteHandler<ListRoute, AppEnv> = async (c) => {
  const q = c.req.valid("query");
  const order = orderOf(q);
  const s = c.get("services");
  const { items, total } = await listAssets(s.readDb, s.env.BUCKET, s.env.KV, {
    page: q.page,
    pageSize: q.page_size,
    source: q.source,
    symbol: q.symbol,
    q: q.q,
    ids: q.ids,
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
  const s = c.get("services");
  const asset = await getAssetDetail(s.readDb, asset_uid, consensusRules(s.config));
  if (!asset) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  return cachedJson(c, envelope(c, asset)) as never;
};

export const history: RouteHandler<HistoryRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const q = c.req.valid("query");
  const db = c.get("services").readDb;
  const uid = await resolveUid(db, asset_uid);
  if (!uid) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  const stored = await assetHistory(db, uid, {
    source: q.source === "consensus" ? undefined : q.source,
    from: toIso(q.from),
    to: toIso(q.to),
  });
  const series: (SeriesPoint | BucketPoint)[] =
    q.source === "consensus" ? consensusSeries(stored, q.interval ?? "5m") : q.interval ? bucketed(stored, q.interval) : stored;
  const points = series.slice(Math.max(0, series.length - q.limit));
  if (q.format === "csv") {
    const rows = [csvRow(HISTORY_COLUMNS), ...points.map((p) => csvRow(HISTORY_COLUMNS.map((k) => (p as BucketPoint)[k])))];
    return download(rows, "text/csv; charset=utf-8", `${uid}-history.csv`, readCacheHeaders()) as never;
  }
  return cachedJson(c, envelope(c, points, { asset_uid: uid })) as never;
};

const HISTORY_COLUMNS = ["source", "at", "price_usd", "market_cap_usd", "volume_24h_usd", "resolution", "min_usd", "max_usd"] as const;
const toIso = (s?: string) => (s ? new Date(s).toISOString() : undefined);

export const ohlc: RouteHandler<OhlcRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const q = c.req.valid("query");
  const db = c.get("services").readDb;
  const uid = await resolveUid(db, asset_uid);
  if (!uid) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  const stored = await assetHistory(db, uid, {
    source: q.source === "consensus" ? undefined : q.source,
    from: toIso(q.from),
    to: toIso(q.to),
  });
  const series = q.source === "consensus" ? consensusSeries(stored, "5m") : stored;
  return cachedJson(c, envelope(c, candles(series, q.interval), { asset_uid: uid, interval: q.interval, source: q.source })) as never;
};
