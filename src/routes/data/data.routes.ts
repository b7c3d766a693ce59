import { createRoute, z } from "@hono/zod-openapi";
import { SOURCES, SourceSchema } from "../../config";
import { SORT_KEYS } from "../../db/read-model";
import { errorResponses, jsonEnvelope, PageQuery } from "../../lib/openapi";
import { AssetDetailSchema, CandleSchema, HistoryPointSchema, PricedAssetSchema } from "../../schemas/assets";
import { ContractQuery } from "../../schemas/contracts";
import { FxMetadataShape, VsCurrencyQuery } from "../../schemas/currencies";

const noControl = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), "must not contain control characters");

const MAX_IDS = 250;

/** The time range of history and candles. */
const RangeQuery = {
  from: z.iso
    .datetime({ offset: true })
    .optional()
    .openapi({ description: "Inclusive lower bound (ISO 8601).", example: "2026-11-01T00:00:00Z" }),
  to: z.iso.datetime({ offset: true }).optional().openapi({ description: "Inclusive upper bound (ISO 8601)." }),
};
const SeriesSource = z.enum([...SOURCES, "consensus"]);

export const AssetUidParam = z.object({
  asset_uid: z
    .string()
    .min(1)
    .max(120)
    .openapi({ param: { name: "asset_uid", in: "path" }, description: "Canonical asset id (or an alias of it).", example: "bitcoin" }),
});

export const ListQuery = z.object({
  ...PageQuery,
  source: SourceSchema.optional().openapi({ description: "Only assets this source quotes." }),
  symbol: noControl(32).optional().openapi({ description: "Exact ticker, case-insensitive.", example: "BTC" }),
  q: noControl(100).optional().openapi({ description: "Prefix search over the symbol and the name.", example: "bitco" }),
  ids: z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined) return undefined;
      const ids = s.split(",").map((x) => x.trim());
      if (ids.some((x) => !x || /[\u0000-\u001f\u007f]/.test(x))) {
        ctx.addIssue({ code: "custom", message: "ids must be non-empty asset_uids or source:source_id, comma-separated" });
        return z.NEVER;
      }
      if (ids.length > MAX_IDS) {
        ctx.addIssue({ code: "custom", message: `ids takes at most ${MAX_IDS} ids, got ${ids.length}` });
        return z.NEVER;
      }
      return ids;
    })
    .openapi({
      type: "string",
      description: `Up to ${MAX_IDS} comma-separated asset_uids (aliases resolve) or source:source_id pairs; unknown ones are left out. Combines with every other filter.`,
      example: "bitcoin,ethereum,coinpaprika:sol-solana",
    }),
  contract: ContractQuery,
  sort: z.enum(SORT_KEYS).default("rank").openapi({ description: "Sort key; unknown values are nulls and sort as the smallest." }),
  order: z.enum(["asc", "desc"]).optional().openapi({ description: "Default: asc for rank, symbol, name; desc otherwise." }),
  ...VsCurrencyQuery,
});

export const list = createRoute({
  method: "get",
  path: "/data",
  tags: ["Data"],
  summary: "List unified assets",
  description:
    "Pages through canonical assets with their consensus price, served from the in-memory read model: any page, sort and filter costs the same.",
  request: { query: ListQuery },
  responses: {
    200: jsonEnvelope(z.array(PricedAssetSchema), "A page of assets", true, FxMetadataShape),
    304: { description: "Not modified (If-None-Match)" },
    ...errorResponses("validation_error"),
  },
});

export const ExportQuery = ListQuery.omit({ page: true, page_size: true }).extend({
  format: z.enum(["csv", "ndjson"]).default("csv").openapi({
    description:
      "`csv` (a header row, one asset a row; with a `vs_currency` other than USD, also `price_<code>`, `market_cap_<code>`, `volume_24h_<code>`) or `ndjson` (one Asset a line).",
  }),
});

export const exportAssets = createRoute({
  method: "get",
  path: "/data/export",
  tags: ["Data"],
  summary: "Every asset matching the /data filters and sort, streamed",
  description: "All pages at once, as a download: CSV with a header row, or newline-delimited JSON `Asset`s.",
  request: { query: ExportQuery },
  responses: {
    200: {
      description: "The assets, streamed",
      content: { "text/csv": { schema: z.string() }, "application/x-ndjson": { schema: z.string() } },
    },
    ...errorResponses("validation_error"),
  },
});

export const detail = createRoute({
  method: "get",
  path: "/data/{asset_uid}",
  tags: ["Data"],
  summary: "One asset with per-source quotes and consensus",
  request: { params: AssetUidParam, query: z.object(VsCurrencyQuery) },
  responses: {
    200: jsonEnvelope(AssetDetailSchema, "The asset", false, FxMetadataShape),
    304: { description: "Not modified" },
    ...errorResponses("validation_error", "not_found"),
  },
});

const historyJson = jsonEnvelope(z.array(HistoryPointSchema), "History points", false, FxMetadataShape);

export const history = createRoute({
  method: "get",
  path: "/data/{asset_uid}/history",
  tags: ["Data"],
  summary: "Price history of an asset, oldest first",
  request: {
    params: AssetUidParam,
    query: z.object({
      source: SeriesSource.optional().openapi({
        description: "One source only, or `consensus`: the median of the sources' points in each bucket.",
      }),
      interval: z.enum(["5m", "1h", "1d"]).optional().openapi({
        description:
          "One point per bucket: `at` is the bucket's start, the price is the bucket's last, with `min_usd`/`max_usd`. An empty bucket is missing. Omitted: every point kept (the finest resolution kept for the range; `consensus` uses 5m buckets).",
      }),
      format: z.enum(["json", "csv"]).default("json").openapi({
        description:
          "`csv`: a download with a header row (with a `vs_currency` other than USD, also `price_<code>`, and `min_<code>`/`max_<code>` with `interval`).",
      }),
      ...RangeQuery,
      limit: z.coerce.number().int().min(1).max(10_000).default(2_000).openapi({ description: "Most recent points to return." }),
      ...VsCurrencyQuery,
    }),
  },
  responses: {
    200: { ...historyJson, content: { ...historyJson.content, "text/csv": { schema: z.string() } } },
    304: { description: "Not modified" },
    ...errorResponses("validation_error", "not_found"),
  },
});

export const ohlc = createRoute({
  method: "get",
  path: "/data/{asset_uid}/ohlc",
  tags: ["Data"],
  summary: "Candles of an asset, oldest first",
  description:
    "Open, high, low and close of the stored points in each bucket, with the last volume and the count of points behind each candle. Rolled-up (hourly, daily) points count as one point each.",
  request: {
    params: AssetUidParam,
    query: z.object({
      interval: z.enum(["1h", "4h", "1d"]).openapi({ description: "Candle width." }),
      source: SeriesSource.default("consensus").openapi({
        description: "`consensus` (the median of the sources in each 5-minute bucket) or one source.",
      }),
      ...RangeQuery,
      ...VsCurrencyQuery,
    }),
  },
  responses: {
    200: jsonEnvelope(z.array(CandleSchema), "Candles", false, FxMetadataShape),
    304: { description: "Not modified" },
    ...errorResponses("validation_error", "not_found"),
  },
});

export type OhlcRoute = typeof ohlc;
export type ListRoute = typeof list;
export type ExportRoute = typeof exportAssets;
export type DetailRoute = typeof detail;
export type HistoryRoute = typeof history;
