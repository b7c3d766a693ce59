import { createRoute, z } from "@hono/zod-openapi";
import { SourceSchema } from "../../config";
import { SORT_KEYS } from "../../db/read-model";
import { errorResponses, jsonEnvelope, PageQuery } from "../../lib/openapi";
import { AssetDetailSchema, AssetSchema, HistoryPointSchema } from "../../schemas/assets";

const noControl = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), "must not contain control characters");

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
  q: noControl(100).optional().openapi({ description: "Prefix search over the symbol and the words of the name.", example: "bitco" }),
  sort: z.enum(SORT_KEYS).default("rank").openapi({ description: "Sort key; unknown values are nulls and sort as the smallest." }),
  order: z.enum(["asc", "desc"]).optional().openapi({ description: "Default: asc for rank, symbol, name; desc otherwise." }),
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
    200: jsonEnvelope(z.array(AssetSchema), "A page of assets", true),
    304: { description: "Not modified (If-None-Match)" },
    ...errorResponses("validation_error"),
  },
});

export const detail = createRoute({
  method: "get",
  path: "/data/{asset_uid}",
  tags: ["Data"],
  summary: "One asset with per-source quotes and consensus",
  request: { params: AssetUidParam },
  responses: {
    200: jsonEnvelope(AssetDetailSchema, "The asset"),
    304: { description: "Not modified" },
    ...errorResponses("validation_error", "not_found"),
  },
});

export const history = createRoute({
  method: "get",
  path: "/data/{asset_uid}/history",
  tags: ["Data"],
  summary: "Price history of an asset, oldest first",
  request: {
    params: AssetUidParam,
    query: z.object({
      source: SourceSchema.optional().openapi({ description: "One source only." }),
      from: z.iso
        .datetime({ offset: true })
        .optional()
        .openapi({ description: "Inclusive lower bound (ISO 8601).", example: "2026-11-01T00:00:00Z" }),
      to: z.iso.datetime({ offset: true }).optional().openapi({ description: "Inclusive upper bound (ISO 8601)." }),
      limit: z.coerce.number().int().min(1).max(10_000).default(2_000).openapi({ description: "Most recent points to return." }),
    }),
  },
  responses: {
    200: jsonEnvelope(z.array(HistoryPointSchema), "History points"),
    304: { description: "Not modified" },
    ...errorResponses("validation_error", "not_found"),
  },
});

export type ListRoute = typeof list;
export type DetailRoute = typeof detail;
export type HistoryRoute = typeof history;
