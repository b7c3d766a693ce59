import { z } from "@hono/zod-openapi";
import { SOURCES, SourceSchema } from "../config";
import { ContractSchema } from "./contracts";

const money = z.number().nullable();

export const SourceIdsSchema = z.object({
  coingecko: z.string().optional(),
  coinpaprika: z.string().optional(),
  csv: z.string().optional(),
});

export const AssetSchema = z.object({
  asset_uid: z.string().openapi({ example: "bitcoin" }),
  symbol: z.string().openapi({ example: "BTC" }),
  name: z.string().openapi({ example: "Bitcoin" }),
  rank: z.number().int().nullable(),
  price_usd: money.openapi({ description: "Consensus price: the median of each source's latest price." }),
  market_cap_usd: money,
  volume_24h_usd: money,
  change_24h_pct: money,
  sources: z.array(SourceSchema),
  source_ids: SourceIdsSchema,
  updated_at: z.string(),
});

/** Amounts in the request's `vs_currency`: the USD field times the rate in force. */
const inCurrency = (what: string) =>
  money.openapi({ description: `${what} in \`vs_currency\` (default \`usd\`): the \`*_usd\` value times the rate in \`metadata.fx\`.` });
const Converted = { price: inCurrency("The consensus price"), market_cap: inCurrency("Market cap"), volume_24h: inCurrency("24 h volume") };

/** An asset as served: the stored (USD) fields and the same amounts in `vs_currency`. */
export const PricedAssetSchema = AssetSchema.extend(Converted).openapi("Asset");

export const QuoteSchema = z
  .object({
    source: SourceSchema,
    source_id: z.string(),
    price_usd: z.number(),
    market_cap_usd: money,
    volume_24h_usd: money,
    change_24h_pct: money,
    circulating_supply: money,
    total_supply: money,
    max_supply: money,
    rank: z.number().int().nullable(),
    source_updated_at: z.string(),
    ingested_at: z.string(),
  })
  .extend(Converted)
  .openapi("Quote");

export const MappingSchema = z
  .object({ source: SourceSchema, source_id: z.string(), rule: z.string(), pinned: z.boolean() })
  .openapi("Mapping");

export const ConsensusSchema = z.object({
  price_usd: money.openapi({ description: "Median of the latest prices of the sources not excluded." }),
  spread_pct: money.openapi({ description: "(max - min) / median x 100 over those prices." }),
  sources: z.number().int().openapi({ description: "Sources in the consensus." }),
  excluded: z.array(z.object({ source: SourceSchema, reason: z.enum(["stale", "outlier"]) })).openapi({
    description:
      "Sources left out: `stale` (more than STALE_AFTER_MINUTES older than the asset's freshest quote) or `outlier` (with three or more fresh sources, further than OUTLIER_PCT from the median of the others).",
  }),
});

export const MappingMoveSchema = z
  .object({
    source: SourceSchema,
    source_id: z.string(),
    from: z.string().openapi({ description: "The asset the mapping left (still answering, as the asset or as an alias)." }),
    to: z.string().openapi({ description: "The asset it joined." }),
    rule: z.string().openapi({ description: "The rule that placed it there, or `new_asset` when it became an asset of its own." }),
    evidence: z.record(z.string(), z.unknown()).nullable().openapi({
      description: "The scored evidence of the pair that placed it: `score`, `signals` (one score per signal), `with` (source:source_id).",
    }),
    moved_at: z.string(),
  })
  .openapi("MappingMove");

export const AssetDetailSchema = PricedAssetSchema.extend({
  quotes: z.array(QuoteSchema),
  consensus: ConsensusSchema,
  mappings: z.array(MappingSchema),
  aliases: z.array(z.string()),
  contracts: z.array(ContractSchema).openapi({
    description: "The contracts (chain, address) the asset's ids list, each with the sources that list it (SPEC §3 reference data).",
  }),
  mapping_history: z.array(MappingMoveSchema).openapi({
    description: "Mappings this asset gained or lost when stronger evidence decided them again, newest first (up to 50).",
  }),
}).openapi("AssetDetail");

export const HistoryPointSchema = z
  .object({
    source: z.enum([...SOURCES, "consensus"]),
    at: z.string(),
    price_usd: z.number(),
    market_cap_usd: money,
    volume_24h_usd: money,
    resolution: z
      .enum(["raw", "hour", "day"])
      .openapi({ description: "The stored resolution (with `interval`: the coarsest in the bucket)." }),
    min_usd: z.number().optional().openapi({ description: "With `interval`: the bucket's lowest price." }),
    max_usd: z.number().optional().openapi({ description: "With `interval`: the bucket's highest price." }),
    price: z.number().openapi({ description: "`price_usd` in `vs_currency`, converted with the rate in force at the point's own time." }),
    min: z
      .number()
      .optional()
      .openapi({ description: "With `interval`: the bucket's lowest price in `vs_currency` (each point at its own rate)." }),
    max: z.number().optional().openapi({ description: "With `interval`: the bucket's highest price in `vs_currency`." }),
  })
  .openapi("HistoryPoint");

export const CandleSchema = z
  .object({
    t: z.string().openapi({ description: "The bucket's start." }),
    open: z.number().openapi({ description: "Prices are in `vs_currency`, each point converted at the rate in force at its time." }),
    high: z.number(),
    low: z.number(),
    close: z.number(),
    volume_24h_usd: money.openapi({ description: "The last 24 h volume in the bucket." }),
    points: z.number().int().openapi({ description: "Stored points behind the candle." }),
  })
  .openapi("Candle");

/** An asset as the read model stores it: USD only (amounts in another currency are computed per request). */
export type Asset = z.infer<typeof AssetSchema>;
export type PricedAsset = z.infer<typeof PricedAssetSchema>;
export type Quote = z.infer<typeof QuoteSchema>;
export type AssetDetail = z.infer<typeof AssetDetailSchema>;
export type MappingMove = z.infer<typeof MappingMoveSchema>;

type ConvertedKeys = keyof typeof Converted;
/** A quote and an asset's detail as stored (USD only), before the amounts in `vs_currency` are added. */
export type UsdQuote = Omit<Quote, ConvertedKeys>;
export type UsdAssetDetail = Omit<AssetDetail, ConvertedKeys | "quotes"> & { quotes: UsdQuote[] };
