import type { RouteHandler } from "@hono/zod-openapi";
import { consensusRules, type Source } from "../../config";
import { assetHistory, getAssetDetail, listAssets, resolveUid } from "../../db/queries/assets";
import { idsFilter } from "../../db/queries/contracts";
import { fxMetadata, rateAt, vsCurrency } from "../../db/queries/currencies";
import { csvRow, download } from "../../lib/csv-out";
import { ApiError } from "../../lib/errors";
import { type Currency, converted } from "../../lib/fx";
import { cachedJson, readCacheHeaders } from "../../lib/http-cache";
import { type AppContext, type AppEnv, envelope } from "../../lib/router";
import { type BucketPoint, bucketed, candles, consensusSeries, type SeriesPoint } from "../../lib/series";
import { type Asset, AssetSchema, type PricedAsset } from "../../schemas/assets";
import type { Services } from "../../services";
import type { DetailRoute, ExportRoute, HistoryRoute, ListRoute, OhlcRoute } from "./data.routes";

const DEFAULT_DESC = new Set(["market_cap", "price", "volume", "change_24h"]);
const orderOf = (q: { sort: string; order?: "asc" | "desc" }) => q.order ?? (DEFAULT_DESC.has(q.sort) ? "desc" : "asc");

/** A download in a currency other than USD says which in its name. */
const suffix = (c: Currency) => (c.code === "usd" ? "" : `-${c.code}`);

/** An asset as served: its stored USD fields, then the same amounts in the request's currency. */
const priced = (a: Asset, rate: number): PricedAsset => {
  const { updated_at, ...usd } = a;
  return { ...usd, ...converted(a, rate), updated_at };
};

/**
 * One CSV column per Asset field, in the schema's order, and before `updated_at` the amounts in the
 * currency, named for it (`price_eur`); in USD those would repeat the `*_usd` columns, so there are none.
 */
function exportColumns(code: string): [string, (a: PricedAsset) => unknown][] {
  const usd = (Object.keys(AssetSchema.shape) as (keyof Asset)[]).filter((k) => k !== "updated_at");
  const local = (["price", "market_cap", "volume_24h"] as const).map((k): [string, (a: PricedAsset) => unknown] => [
    `${k}_${code}`,
    (a) => a[k],
  ]);
  return [
    ...usd.map((k): [string, (a: PricedAsset) => unknown] => [k, (a) => a[k]]),
    ...(code === "usd" ? [] : local),
    ["updated_at", (a) => a.updated_at],
  ];
}

/**
 * What a list or an export reads: the snapshot and a contract filter's ids at once, then the
 * currency, whose rates come with the snapshot when this isolate has none.
 */
async function listInputs(s: Services, q: Parameters<typeof idsFilter>[1] & { vs_currency: string }) {
  const [model, ids] = await Promise.all([s.readModel(), idsFilter(s, q)]);
  return { model, ids, currency: await vsCurrency(s, q.vs_currency, model?.rates) };
}

export const exportAssets: RouteHandler<ExportRoute, AppEnv> = async (c) => {
  const q = c.req.valid("query");
  const s = c.get("services");
  const { model, ids, currency } = await listInputs(s, q);
  const filter = { source: q.source, symbol: q.symbol, q: q.q, ids, sort: q.sort, order: orderOf(q) };
  const pages = model ? model.each(filter) : [];
  const headers = readCacheHeaders();
  if (q.format === "ndjson") {
    const lines = (function* () {
      for (const page of pages) yield page.map((a) => `${JSON.stringify(priced(a, currency.usd_rate))}\n`).join("");
    })();
    return download(lines, "application/x-ndjson; charset=utf-8", `coinfuse-assets${suffix(currency)}.ndjson`, headers);
  }
  const columns = exportColumns(currency.code);
  const rows = (function* () {
    yield csvRow(columns.map(([name]) => name));
    for (const page of pages)
      yield page
        .map((a) => {
          const p = priced(a, currency.usd_rate);
          return csvRow(columns.map(([, pick]) => pick(p)));
        })
        .join("");
  })();
  return download(rows, "text/csv; charset=utf-8", `coinfuse-assets${suffix(currency)}.csv`, headers);
};

export const list: RouteHandler<ListRoute, AppEnv> = async (c) => {
  const q = c.req.valid("query");
  const s = c.get("services");
  const { model, ids, currency } = await listInputs(s, q);
  const { items, total } = listAssets(model, {
    page: q.page,
    pageSize: q.page_size,
    source: q.source,
    symbol: q.symbol,
    q: q.q,
    ids,
    sort: q.sort,
    order: orderOf(q),
  });
  const meta = { page: q.page, page_size: q.page_size, total, data_origin: s.config.DATA_ORIGIN, ...fxMetadata(currency) };
  return cachedJson(
    c,
    envelope(
      c,
      items.map((a) => priced(a, currency.usd_rate)),
      meta,
    ),
  );
};

export const detail: RouteHandler<DetailRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const q = c.req.valid("query");
  const s = c.get("services");
  const [currency, asset] = await Promise.all([
    vsCurrency(s, q.vs_currency),
    getAssetDetail(s.readDb, asset_uid, consensusRules(s.config)),
  ]);
  if (!asset) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  const rate = currency.usd_rate;
  const { quotes, consensus, mappings, aliases, contracts, mapping_history, ...summary } = asset;
  const body = {
    ...priced(summary, rate),
    quotes: quotes.map((quote) => ({ ...quote, ...converted(quote, rate) })),
    consensus,
    mappings,
    aliases,
    contracts,
    mapping_history,
  };
  return cachedJson(c, envelope(c, body, fxMetadata(currency)));
};

const toIso = (s?: string) => (s ? new Date(s).toISOString() : undefined);

/**
 * What history and candles share: the asset (or the asset an alias names; 404 when none), the
 * currency (400 when unknown), and the asset's stored points over the range, each priced in that
 * currency with the rate in force at the point's own time.
 */
async function pricedPoints(
  c: AppContext,
  assetUid: string,
  q: { source?: Source | "consensus"; from?: string; to?: string; vs_currency: string },
) {
  const s = c.get("services");
  const db = s.readDb;
  const [currency, uid] = await Promise.all([vsCurrency(s, q.vs_currency), resolveUid(db, assetUid)]);
  if (!uid) throw new ApiError("not_found", `no asset "${assetUid}"`);
  const stored = await assetHistory(db, uid, {
    source: q.source === "consensus" ? undefined : q.source,
    from: toIso(q.from),
    to: toIso(q.to),
  });
  const times = stored.map((p) => Date.parse(p.at));
  const rate = stored.length ? await rateAt(s, currency, times[0], times[times.length - 1]) : () => currency.usd_rate;
  const points: SeriesPoint[] = stored.map((p, i) => ({
    source: p.source,
    at: p.at,
    price_usd: p.price_usd,
    market_cap_usd: p.market_cap_usd,
    volume_24h_usd: p.volume_24h_usd,
    price: p.price_usd * rate(times[i]),
    resolution: p.resolution,
  }));
  return { uid, currency, points };
}

/** History's CSV columns: the stored ones, and the prices in the currency named for it (none in USD, where they would repeat). */
function historyColumns(currency: Currency, interval: boolean): [string, keyof BucketPoint][] {
  const usd: [string, keyof BucketPoint][] = (
    ["source", "at", "price_usd", "market_cap_usd", "volume_24h_usd", "resolution", "min_usd", "max_usd"] as const
  ).map((k) => [k, k]);
  if (currency.code === "usd") return usd;
  const local: [string, keyof BucketPoint][] = [[`price_${currency.code}`, "price"]];
  if (interval) local.push([`min_${currency.code}`, "min"], [`max_${currency.code}`, "max"]);
  return [...usd, ...local];
}

export const history: RouteHandler<HistoryRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const q = c.req.valid("query");
  const { uid, currency, points: stored } = await pricedPoints(c, asset_uid, q);
  const series: (SeriesPoint | BucketPoint)[] =
    q.source === "consensus" ? consensusSeries(stored, q.interval ?? "5m") : q.interval ? bucketed(stored, q.interval) : stored;
  const points = series.slice(Math.max(0, series.length - q.limit));
  if (q.format === "csv") {
    const columns = historyColumns(currency, !!q.interval || q.source === "consensus");
    const rows = [csvRow(columns.map(([name]) => name)), ...points.map((p) => csvRow(columns.map(([, k]) => (p as BucketPoint)[k])))];
    return download(rows, "text/csv; charset=utf-8", `${uid}-history${suffix(currency)}.csv`, readCacheHeaders());
  }
  return cachedJson(c, envelope(c, points, { asset_uid: uid, ...fxMetadata(currency) }));
};

export const ohlc: RouteHandler<OhlcRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const q = c.req.valid("query");
  const { uid, currency, points } = await pricedPoints(c, asset_uid, q);
  const series = q.source === "consensus" ? consensusSeries(points, "5m") : points;
  const meta = { asset_uid: uid, interval: q.interval, source: q.source, ...fxMetadata(currency) };
  return cachedJson(c, envelope(c, candles(series, q.interval), meta));
};
