import { sql } from "drizzle-orm";
import { blob, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { USAGE_KEYS, type UsageKey } from "../lib/usage";
import type { CurrencyType } from "../sources/fx";
import type { SourceQuote } from "../sources/source-quote";

export const RUN_STATUSES = ["queued", "running", "succeeded", "partial", "failed"] as const;
type Status = (typeof RUN_STATUSES)[number];
/** A run still going: its messages do work, and what they cost is added to it. */
export const OPEN_RUN_STATUSES = ["queued", "running"] as const satisfies readonly Status[];
/** A run that is over: later deliveries of its messages change nothing. */
export const FINISHED_RUN_STATUSES = ["succeeded", "partial", "failed"] as const satisfies readonly Status[];
/** A finished run that stored what it fetched (`partial`: with some records rejected). */
export const SUCCEEDED_RUN_STATUSES = ["succeeded", "partial"] as const satisfies readonly Status[];
export const RUN_TRIGGERS = ["cron", "manual", "upload", "replay"] as const;
export const RESOLUTIONS = ["raw", "hour", "day"] as const;
export type Resolution = (typeof RESOLUTIONS)[number];

/** A source id's latest quote as stored in its bucket: the normalised quote, its asset, and when and by which run it was stored. */
export type StoredQuote = Omit<SourceQuote, "source"> & { assetUid: string; slot: number; ingestedAt: string; runId: string };

/** What a run cost (SPEC `usage`), one integer column per key. */
const usageColumn = (key: UsageKey) => integer(`usage_${key}`).notNull().default(0);
const usageColumns = Object.fromEntries(USAGE_KEYS.map((k) => [k, usageColumn(k)])) as { [K in UsageKey]: ReturnType<typeof usageColumn> };

/** One row per canonical coin: its identity. Prices live in quote_buckets; the /data read model is a snapshot. */
export const assets = sqliteTable("assets", {
  assetUid: text().primaryKey(),
  createdAt: text().notNull(),
});

/** An asset_uid that once was served and now points at another asset (after a merge or a pin). */
export const assetAliases = sqliteTable("asset_aliases", {
  aliasUid: text().primaryKey(),
  assetUid: text().notNull(),
  createdAt: text().notNull(),
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
    /** This id's place in its source's quote and history buckets (see QUOTES_PER_BUCKET); never reused. */
    slot: integer().notNull(),
    createdAt: text().notNull(),
    updatedAt: text().notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.source, t.sourceId] }),
    uniqueIndex("mappings_slot_idx").on(t.source, t.slot),
    index("mappings_asset_idx").on(t.assetUid),
    index("mappings_symbol_idx").on(t.symbolKey),
    index("mappings_name_idx").on(t.nameKey),
    index("mappings_id_idx").on(t.idKey),
    // Pins are few and read on every unification; a partial index keeps that read off the whole map.
    index("mappings_pinned_idx").on(t.source, t.sourceId).where(sql`${t.pinned} = 1`),
  ],
);

/**
 * Every mapping decided again: it left `fromUid` for `toUid` on `rule`, with the scored evidence
 * (unify/evidence.ts) as JSON. The id orders moves; the KV map copy carries the last one it holds.
 */
export const mappingMoves = sqliteTable(
  "mapping_moves",
  {
    id: integer().primaryKey(),
    source: text().notNull(),
    sourceId: text().notNull(),
    fromUid: text().notNull(),
    toUid: text().notNull(),
    rule: text().notNull(),
    evidence: text({ mode: "json" }),
    movedAt: text().notNull(),
  },
  (t) => [index("moves_from_idx").on(t.fromUid), index("moves_to_idx").on(t.toUid)],
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

/**
 * The contracts (chain, address) each provider lists for its ids: reference data, refreshed every
 * IDENTITY_REFRESH_HOURS. Keyed by the listing, so an asset's contracts (and evidence for a set
 * of ids) are read by (source, source_id) prefix; lookups by contract go through (chain, address).
 * `platform` is the provider's own name for the chain: a refresh replaces one platform's list.
 */
export const sourceContracts = sqliteTable(
  "source_contracts",
  {
    source: text().notNull(),
    sourceId: text().notNull(),
    chain: text().notNull(),
    address: text().notNull(),
    platform: text().notNull(),
    /** false: the provider lists the contract as no longer active (kept for lookups, not evidence). */
    active: integer({ mode: "boolean" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.source, t.sourceId, t.chain, t.address] }), index("contracts_address_idx").on(t.chain, t.address)],
);

/**
 * One row per provider platform whose contracts are stored, with the digest of the list last
 * stored: a refresh whose list for a platform is unchanged reads this row and writes nothing.
 */
export const contractPlatforms = sqliteTable(
  "contract_platforms",
  {
    source: text().notNull(),
    platform: text().notNull(),
    /** The chain its rows are stored under (a platform mapped to another chain since moves its rows). */
    chain: text().notNull(),
    /** SHA-256 of the sorted list last stored; null while a listed platform's contracts are still to be fetched. */
    digest: text(),
    contracts: integer().notNull(),
    updatedAt: text().notNull(),
  },
  (t) => [primaryKey({ columns: [t.source, t.platform] })],
);

/**
 * Ids of a provider whose contracts changed and whose mappings are still to be decided again (a JSON
 * array a row, one row a change): written in the transaction that changes the contracts, deleted
 * once they were decided, so a worker that dies in between leaves them to the next contract step or
 * replay of the source. It holds only what is pending, so it is read whole by source, with no index.
 */
export const contractRedecisions = sqliteTable("contract_redecisions", {
  // Never reused (AUTOINCREMENT): a clear deletes the rows it read by id, never one recorded since.
  id: integer().primaryKey({ autoIncrement: true }),
  source: text().notNull(),
  ids: text({ mode: "json" }).$type<string[]>().notNull(),
});

/** Each provider's last contract refresh: when it finished, and what failed (a failed refresh is tried again sooner). */
export const contractRefreshes = sqliteTable("contract_refreshes", {
  source: text().primaryKey(),
  runId: text().notNull(),
  finishedAt: text().notNull(),
  error: text(),
});

/** What unification compares of a stored quote, in this order (quote_buckets.figures). */
export const FIGURES = ["priceUsd", "rank", "marketCapUsd"] as const satisfies (keyof StoredQuote)[];
export type Figures = [priceUsd: number | null, rank: number | null, marketCapUsd: number | null];

/**
 * Latest quotes, packed: one row per source and bucket of QUOTES_PER_BUCKET slots, holding each
 * id's latest quote keyed by source id. A steady tick rewrites one row per bucket, not per coin.
 * `figures` repeats each id's FIGURES, written with `quotes` in the same row: unification reads
 * them for every candidate, and picking them out of `quotes` meant parsing about ten times the JSON.
 */
export const quoteBuckets = sqliteTable(
  "quote_buckets",
  {
    source: text().notNull(),
    bucket: integer().notNull(),
    quotes: text({ mode: "json" }).$type<Record<string, StoredQuote>>().notNull(),
    figures: text({ mode: "json" }).$type<Record<string, Figures>>().notNull().default({}),
    updatedAt: text().notNull(),
  },
  (t) => [primaryKey({ columns: [t.source, t.bucket] })],
);

/**
 * Price history, packed: one row per source, bucket, resolution and period (an hour of raw
 * points, a day of hourly points, a month of daily ones); `points` is history-codec's binary.
 */
export const historyBuckets = sqliteTable(
  "history_buckets",
  {
    source: text().notNull(),
    bucket: integer().notNull(),
    resolution: text({ enum: RESOLUTIONS }).notNull(),
    periodStart: text().notNull(),
    points: blob({ mode: "buffer" }).notNull(),
    count: integer().notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.source, t.bucket, t.resolution, t.periodStart] }),
    index("history_period_idx").on(t.resolution, t.periodStart),
  ],
);

/** The published /data read model: which snapshot object in R2 is current, and the version counter. */
export const readModel = sqliteTable("read_model", {
  id: integer().primaryKey(),
  claimed: integer().notNull(),
  version: integer().notNull(),
  key: text(),
  assets: integer().notNull(),
  builtAt: text(),
});

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
    ...usageColumns,
  },
  (t) => [
    index("runs_created_idx").on(t.createdAt),
    index("runs_source_idx").on(t.source, t.createdAt),
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
    /** The archived payload the part was read from (an identical earlier body is archived once). */
    rawId: text(),
    /** What the part cost, added to its run when the run closes. */
    ...usageColumns,
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
    /** SHA-256 of the body: a body identical to an archived one is not stored again. */
    digest: text(),
  },
  (t) => [
    index("raw_source_idx").on(t.source, t.fetchedAt),
    index("raw_run_idx").on(t.runId),
    index("raw_digest_idx").on(t.source, t.digest),
  ],
);

/** Exclusive, expiring locks: one ingestion per source, and the unification critical section. */
export const leases = sqliteTable("leases", {
  name: text().primaryKey(),
  holder: text().notNull(),
  expiresAt: integer().notNull(),
});

/**
 * Always empty: a fenced batch inserts a NULL here when its lease is no longer held, and the NOT NULL
 * constraint rolls the whole batch back (SQLite has no conditional RAISE outside triggers).
 */
export const leaseFence = sqliteTable("lease_fence", {
  held: integer().notNull(),
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

/** A source's latest rate of one currency: units per 1 USD (`r`), fetched at `t` (ms), and what the source calls it. */
export type StoredRate = { r: number; t: number; n?: string; u?: string; k?: CurrencyType };

/**
 * Each HTTP source's latest FX rates, one row per source: every currency it has quoted with its
 * latest rate and when that was fetched (a currency a later payload lacks keeps its older rate and
 * time, and ages out of the consensus). `rev` counts writes, so a writer commits only over what it read.
 */
export const fxRates = sqliteTable("fx_rates", {
  source: text().primaryKey(),
  rates: text({ mode: "json" }).$type<Record<string, StoredRate>>().notNull(),
  fetchedAt: text().notNull(),
  rev: integer().notNull(),
});

/**
 * FX points as fetched, columnar so that one currency's series is read with json_extract: `t` the
 * times (ms), `r[code]` the rates at those times (null where that fetch lacked the code), `w` how
 * many fetches a rolled-up point stands for (absent: 1 each).
 */
export type FxPoints = { t: number[]; r: Record<string, (number | null)[]>; w?: number[] };

/**
 * FX history, packed and rolled up as price history is: one row per source, resolution and period
 * (an hour of fetches, a day of hourly means, a month of daily ones). `rev` counts writes.
 */
export const fxHistory = sqliteTable(
  "fx_history",
  {
    source: text().notNull(),
    resolution: text({ enum: RESOLUTIONS }).notNull(),
    periodStart: text().notNull(),
    points: text({ mode: "json" }).$type<FxPoints>().notNull(),
    rev: integer().notNull(),
  },
  (t) => [primaryKey({ columns: [t.source, t.resolution, t.periodStart] })],
);
