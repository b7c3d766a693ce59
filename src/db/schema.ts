import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

export const RUN_STATUSES = ["queued", "running", "succeeded", "partial", "failed"] as const;
export const RUN_TRIGGERS = ["cron", "manual", "upload", "replay"] as const;

/** One row per canonical coin; the consensus figures are recomputed whenever one of its quotes changes. */
export const assets = sqliteTable("assets", {
  assetUid: text().primaryKey(),
  symbol: text().notNull(),
  name: text().notNull(),
  rank: integer(),
  priceUsd: real(),
  marketCapUsd: real(),
  volume24hUsd: real("volume_24h_usd"),
  change24hPct: real("change_24h_pct"),
  spreadPct: real(),
  sources: text().notNull().default("[]"),
  sourceIds: text().notNull().default("{}"),
  createdAt: text().notNull(),
  updatedAt: text().notNull(),
});

/** An asset_uid that once was served and now points at another asset (after a merge or a pin). */
export const assetAliases = sqliteTable("asset_aliases", {
  aliasUid: text().primaryKey(),
  assetUid: text().notNull(),
  createdAt: text().notNull(),
});

/**
 * Read model of GET /data: one row per asset under scope "all" and one per source that quotes it,
 * so that every filter + sort pair is a range scan of one index. NULL sort values are stored as NULL
 * except rank, whose NULL sorts last through a large sentinel.
 */
export const assetListing = sqliteTable(
  "asset_listing",
  {
    scope: text().notNull(),
    assetUid: text().notNull(),
    rankKey: integer().notNull(),
    marketCapUsd: real(),
    priceUsd: real(),
    volume24hUsd: real("volume_24h_usd"),
    change24hPct: real("change_24h_pct"),
    symbolKey: text().notNull(),
    nameKey: text().notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.scope, t.assetUid] }),
    index("listing_rank_idx").on(t.scope, t.rankKey, t.assetUid),
    index("listing_market_cap_idx").on(t.scope, t.marketCapUsd, t.assetUid),
    index("listing_price_idx").on(t.scope, t.priceUsd, t.assetUid),
    index("listing_volume_idx").on(t.scope, t.volume24hUsd, t.assetUid),
    index("listing_change_idx").on(t.scope, t.change24hPct, t.assetUid),
    index("listing_symbol_idx").on(t.scope, t.symbolKey, t.assetUid),
    index("listing_name_idx").on(t.scope, t.nameKey, t.assetUid),
  ],
);

/** Row counts of asset_listing per scope, maintained on write so that `total` costs one row read. */
export const listingTotals = sqliteTable("listing_totals", {
  scope: text().primaryKey(),
  total: integer().notNull(),
});

/** The record of the unification map: which asset a (source, source_id) belongs to, and why. */
export const assetMappings = sqliteTable(
  "asset_mappings",
  {
    source: text().notNull(),
    sourceId: text().notNull(),
    assetUid: text().notNull(),
    rule: text().notNull(),
    pinned: integer({ mode: "boolean" }).notNull().default(false),
    symbolKey: text().notNull(),
    nameKey: text().notNull(),
    idKey: text().notNull(),
    name: text().notNull(),
    createdAt: text().notNull(),
    updatedAt: text().notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.source, t.sourceId] }),
    index("mappings_asset_idx").on(t.assetUid),
    index("mappings_symbol_idx").on(t.symbolKey),
    index("mappings_name_idx").on(t.nameKey),
    index("mappings_id_idx").on(t.idKey),
    // Pins are few and read on every unification; a partial index keeps that read off the whole map.
    index("mappings_pinned_idx").on(t.source, t.sourceId).where(sql`${t.pinned} = 1`),
  ],
);

/** Records that could belong to more than one asset; reported, never guessed silently. */
export const ambiguousMatches = sqliteTable(
  "ambiguous_matches",
  {
    source: text().notNull(),
    sourceId: text().notNull(),
    assetUid: text().notNull(),
    candidates: text().notNull(),
    reason: text().notNull(),
    seenAt: text().notNull(),
  },
  (t) => [primaryKey({ columns: [t.source, t.sourceId] })],
);

/** Latest quote per (source, source_id). */
export const sourceQuotes = sqliteTable(
  "source_quotes",
  {
    source: text().notNull(),
    sourceId: text().notNull(),
    assetUid: text().notNull(),
    symbol: text().notNull(),
    name: text().notNull(),
    rank: integer(),
    priceUsd: real().notNull(),
    marketCapUsd: real(),
    volume24hUsd: real("volume_24h_usd"),
    change24hPct: real("change_24h_pct"),
    circulatingSupply: real(),
    totalSupply: real(),
    maxSupply: real(),
    sourceUpdatedAt: text().notNull(),
    ingestedAt: text().notNull(),
    runId: text().notNull(),
  },
  (t) => [primaryKey({ columns: [t.source, t.sourceId] }), index("quotes_asset_idx").on(t.assetUid)],
);

/** Price points: `raw` as ingested, rolled up to `hour` and `day` by the retention job. */
export const quoteHistory = sqliteTable(
  "quote_history",
  {
    source: text().notNull(),
    sourceId: text().notNull(),
    resolution: text({ enum: ["raw", "hour", "day"] }).notNull(),
    at: text().notNull(),
    assetUid: text().notNull(),
    priceUsd: real().notNull(),
    marketCapUsd: real(),
    volume24hUsd: real("volume_24h_usd"),
  },
  (t) => [
    primaryKey({ columns: [t.source, t.sourceId, t.resolution, t.at] }),
    index("history_asset_idx").on(t.assetUid, t.at),
    index("history_resolution_idx").on(t.resolution, t.at),
  ],
);

export const ingestionRuns = sqliteTable(
  "ingestion_runs",
  {
    runId: text().primaryKey(),
    source: text().notNull(),
    trigger: text({ enum: RUN_TRIGGERS }).notNull(),
    status: text({ enum: RUN_STATUSES }).notNull(),
    createdAt: text().notNull(),
    startedAt: text(),
    finishedAt: text(),
    durationMs: integer(),
    fetched: integer().notNull().default(0),
    accepted: integer().notNull().default(0),
    rejected: integer().notNull().default(0),
    written: integer().notNull().default(0),
    error: text(),
    origin: text().notNull().default("live"),
  },
  (t) => [
    index("runs_created_idx").on(t.createdAt),
    index("runs_source_idx").on(t.source, t.createdAt),
    index("runs_status_idx").on(t.status, t.createdAt),
    index("runs_source_status_idx").on(t.source, t.status, t.createdAt),
  ],
);

/** Per-message progress of a run (an upstream page, a CSV chunk, a replayed payload); recorded once. */
export const runParts = sqliteTable(
  "run_parts",
  {
    runId: text().notNull(),
    part: text().notNull(),
    fetched: integer().notNull(),
    accepted: integer().notNull(),
    rejected: integer().notNull(),
    written: integer().notNull(),
    finishedAt: text().notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.part] })],
);

export const rejectedRecords = sqliteTable(
  "rejected_records",
  {
    runId: text().notNull(),
    recordKey: text().notNull(),
    source: text().notNull(),
    row: integer(),
    sourceId: text(),
    reason: text().notNull(),
    createdAt: text().notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.recordKey] }), index("rejected_row_idx").on(t.runId, t.row)],
);

export const uploads = sqliteTable(
  "uploads",
  {
    uploadId: text().primaryKey(),
    key: text().notNull(),
    filename: text().notNull(),
    bytes: integer().notNull(),
    etag: text().notNull(),
    runId: text(),
    status: text({ enum: RUN_STATUSES }).notNull(),
    accepted: integer().notNull().default(0),
    rejected: integer().notNull().default(0),
    /** Resume point: the byte offset of the next unread row and the number of data rows before it. */
    byteOffset: integer().notNull().default(0),
    rowsDone: integer().notNull().default(0),
    header: text(),
    createdAt: text().notNull(),
    updatedAt: text().notNull(),
  },
  (t) => [uniqueIndex("uploads_key_idx").on(t.key), index("uploads_etag_idx").on(t.filename, t.etag)],
);

export const rawPayloads = sqliteTable(
  "raw_payloads",
  {
    id: text().primaryKey(),
    source: text().notNull(),
    runId: text().notNull(),
    key: text().notNull(),
    fetchedAt: text().notNull(),
    bytes: integer().notNull(),
    records: integer(),
    contentType: text().notNull(),
    origin: text().notNull().default("live"),
  },
  (t) => [index("raw_source_idx").on(t.source, t.fetchedAt), index("raw_run_idx").on(t.runId)],
);

/** Exclusive, expiring locks: one ingestion per source, and the unification critical section. */
export const leases = sqliteTable("leases", {
  name: text().primaryKey(),
  holder: text().notNull(),
  expiresAt: integer().notNull(),
});

/** Per-source request budget shared by every isolate: the earliest time the next call may start. */
export const requestBudgets = sqliteTable("request_budgets", {
  source: text().primaryKey(),
  nextAt: integer().notNull(),
});

export const deadLetters = sqliteTable("dead_letters", {
  messageId: text().primaryKey(),
  body: text().notNull(),
  attempts: integer().notNull(),
  receivedAt: text().notNull(),
});
