import { type SQL, sql } from "drizzle-orm";
import { SOURCES } from "../config";
import type { Rejection, SourceQuote } from "../sources/source-quote";

export type ResolvedQuote = SourceQuote & { assetUid: string };

/** Unknown ranks sort after every known one. */
export const RANK_SENTINEL = 2_147_483_647;

const quoteRows = (quotes: ResolvedQuote[]) =>
  JSON.stringify(
    quotes.map((q) => [
      q.sourceId,
      q.assetUid,
      q.symbol,
      q.name,
      q.rank,
      q.priceUsd,
      q.marketCapUsd,
      q.volume24hUsd,
      q.change24hPct,
      q.circulatingSupply,
      q.totalSupply,
      q.maxSupply,
      q.sourceUpdatedAt,
    ]),
  );

const col = (i: number) => sql.raw(`json_extract(j.value, '$[${i}]')`);

/**
 * Statements that store one chunk of quotes. Rows travel as one JSON parameter read with
 * json_each, which sidesteps D1's limit of 100 bound parameters per statement. A quote whose
 * source timestamp is not newer than the stored one is neither rewritten nor added to history.
 * Returns the statements; the quote upsert is at index `upsertIndex` (its `changes` = rows written).
 */
export function quoteStatements(source: string, runId: string, quotes: ResolvedQuote[], now: string) {
  const rows = quoteRows(quotes);
  const history = sql`
    INSERT INTO quote_history (source, source_id, resolution, at, asset_uid, price_usd, market_cap_usd, volume_24h_usd)
    SELECT ${source}, ${col(0)}, 'raw', ${col(12)}, ${col(1)}, ${col(5)}, ${col(6)}, ${col(7)}
    FROM json_each(${rows}) j
    WHERE NOT EXISTS (
      SELECT 1 FROM source_quotes q
      WHERE q.source = ${source} AND q.source_id = ${col(0)} AND q.source_updated_at >= ${col(12)})
    ON CONFLICT DO NOTHING`;
  const upsert = sql`
    INSERT INTO source_quotes (source, source_id, asset_uid, symbol, name, rank, price_usd, market_cap_usd,
      volume_24h_usd, change_24h_pct, circulating_supply, total_supply, max_supply, source_updated_at, ingested_at, run_id)
    SELECT ${source}, ${col(0)}, ${col(1)}, ${col(2)}, ${col(3)}, ${col(4)}, ${col(5)}, ${col(6)},
      ${col(7)}, ${col(8)}, ${col(9)}, ${col(10)}, ${col(11)}, ${col(12)}, ${now}, ${runId}
    FROM json_each(${rows}) j WHERE true
    ON CONFLICT (source, source_id) DO UPDATE SET
      asset_uid = excluded.asset_uid, symbol = excluded.symbol, name = excluded.name, rank = excluded.rank,
      price_usd = excluded.price_usd, market_cap_usd = excluded.market_cap_usd, volume_24h_usd = excluded.volume_24h_usd,
      change_24h_pct = excluded.change_24h_pct, circulating_supply = excluded.circulating_supply,
      total_supply = excluded.total_supply, max_supply = excluded.max_supply,
      source_updated_at = excluded.source_updated_at, ingested_at = excluded.ingested_at, run_id = excluded.run_id
    WHERE excluded.source_updated_at > source_quotes.source_updated_at`;
  // Assets whose quotes this run wrote, within this chunk.
  const touched = sql`SELECT DISTINCT q.asset_uid FROM source_quotes q
    WHERE q.source = ${source} AND q.run_id = ${runId}
      AND q.source_id IN (SELECT json_extract(value, '$[0]') FROM json_each(${rows}))`;
  return { statements: [history, upsert, ...refreshAssetStatements(touched, now)], upsertIndex: 1 };
}

export function rejectionStatement(source: string, runId: string, rejected: Rejection[], now: string) {
  const rows = JSON.stringify(rejected.map((r) => [r.recordKey, r.row, r.sourceId, r.reason.slice(0, 500)]));
  return sql`
    INSERT INTO rejected_records (run_id, record_key, source, row, source_id, reason, created_at)
    SELECT ${runId}, ${col(0)}, ${source}, ${col(1)}, ${col(2)}, ${col(3)}, ${now}
    FROM json_each(${rows}) j WHERE true
    ON CONFLICT DO NOTHING`;
}

/** The value of the first source (coingecko, coinpaprika, csv) that has one, as an aggregate. */
const byPriority = (col: string) => sql.raw(`COALESCE(${[0, 1, 2].map((p) => `MAX(CASE WHEN pri = ${p} THEN ${col} END)`).join(", ")})`);

/**
 * Recomputes the asset rows and their /data read model for the assets selected by `target`
 * (a subquery yielding asset_uid): consensus price = median of each source's latest price,
 * spread = (max - min) / median x 100, descriptive fields from the first source that has them
 * (coingecko, then coinpaprika, then csv).
 */
export function refreshAssetStatements(target: SQL, now: string): SQL[] {
  const targetCte = sql`target(uid) AS (${target})`;
  const upsertAssets = sql`
    INSERT INTO assets (asset_uid, symbol, name, rank, price_usd, market_cap_usd, volume_24h_usd, change_24h_pct,
      spread_pct, sources, source_ids, created_at, updated_at)
    WITH ${targetCte},
    latest AS (
      SELECT q.asset_uid, q.source, q.source_id, q.symbol, q.name, q.rank, q.price_usd, q.market_cap_usd,
        q.volume_24h_usd, q.change_24h_pct, q.source_updated_at,
        CASE q.source WHEN 'coingecko' THEN 0 WHEN 'coinpaprika' THEN 1 ELSE 2 END AS pri
      FROM source_quotes q
      WHERE q.asset_uid IN (SELECT uid FROM target)
        AND NOT EXISTS (SELECT 1 FROM source_quotes o WHERE o.asset_uid = q.asset_uid AND o.source = q.source
          AND (o.source_updated_at > q.source_updated_at OR (o.source_updated_at = q.source_updated_at AND o.source_id < q.source_id)))
    ),
    -- One latest quote per source, so at most three rows per asset: the median and the
    -- first-by-priority values are plain aggregates (no window sorts).
    agg AS (
      SELECT asset_uid,
        COALESCE(${byPriority("NULLIF(symbol, '')")}, MAX(symbol)) AS symbol,
        ${byPriority("name")} AS name,
        ${byPriority("rank")} AS rank,
        CASE COUNT(*) WHEN 1 THEN MAX(price_usd) WHEN 2 THEN AVG(price_usd) ELSE SUM(price_usd) - MIN(price_usd) - MAX(price_usd) END AS median,
        MAX(price_usd) - MIN(price_usd) AS price_range,
        ${byPriority("market_cap_usd")} AS mcap,
        ${byPriority("volume_24h_usd")} AS vol,
        ${byPriority("change_24h_pct")} AS chg,
        '[' || rtrim(
          CASE WHEN MAX(pri = 0) THEN '"coingecko",' ELSE '' END ||
          CASE WHEN MAX(pri = 1) THEN '"coinpaprika",' ELSE '' END ||
          CASE WHEN MAX(pri = 2) THEN '"csv",' ELSE '' END, ',') || ']' AS sources,
        json_group_object(source, source_id) AS source_ids,
        MAX(source_updated_at) AS updated_at
      FROM latest GROUP BY asset_uid
    )
    SELECT asset_uid, symbol, name, rank, median, mcap, vol, chg, price_range / median * 100, sources, source_ids, ${now}, updated_at
    FROM agg WHERE true
    ON CONFLICT (asset_uid) DO UPDATE SET symbol = excluded.symbol, name = excluded.name, rank = excluded.rank,
      price_usd = excluded.price_usd, market_cap_usd = excluded.market_cap_usd, volume_24h_usd = excluded.volume_24h_usd,
      change_24h_pct = excluded.change_24h_pct, spread_pct = excluded.spread_pct, sources = excluded.sources,
      source_ids = excluded.source_ids, updated_at = excluded.updated_at`;
  // Upserted, not deleted and reinserted: an index entry is rewritten only when its key changed.
  const upsertListing = sql`
    INSERT INTO asset_listing (scope, asset_uid, ${LISTING_KEYS.columns})
    WITH ${targetCte},
    scoped AS (
      SELECT 'all' AS scope, a.* FROM assets a WHERE a.asset_uid IN (SELECT uid FROM target)
      UNION ALL
      SELECT s.value, a.* FROM assets a, json_each(a.sources) s WHERE a.asset_uid IN (SELECT uid FROM target)
    )
    SELECT scope, asset_uid, COALESCE(rank, ${RANK_SENTINEL}), market_cap_usd, price_usd, volume_24h_usd, change_24h_pct,
      lower(symbol), lower(name)
    FROM scoped WHERE price_usd IS NOT NULL
    ON CONFLICT (scope, asset_uid) DO UPDATE SET ${LISTING_KEYS.set} WHERE ${LISTING_KEYS.changed}`;
  // Rows of a scope the asset left (a pin moved its only quote of that source) or of an asset without a price.
  const pruneListing = sql`
    WITH ${targetCte}
    DELETE FROM asset_listing
    WHERE scope IN ${LISTING_SCOPES} AND asset_uid IN (SELECT uid FROM target)
      AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.asset_uid = asset_listing.asset_uid AND a.price_usd IS NOT NULL
        AND (asset_listing.scope = 'all' OR EXISTS (SELECT 1 FROM json_each(a.sources) s WHERE s.value = asset_listing.scope)))`;
  return [upsertAssets, upsertListing, pruneListing];
}

const SCOPES = ["all", ...SOURCES];
/** Every scope of asset_listing, spelled out so that deletes by asset are range scans of its primary key. */
export const LISTING_SCOPES = sql.raw(`(${SCOPES.map((x) => `'${x}'`).join(", ")})`);

/** The listing's sort keys: the column list, the upsert's SET, and whether any of them changed. */
const LISTING_KEYS = (() => {
  const keys = ["rank_key", "market_cap_usd", "price_usd", "volume_24h_usd", "change_24h_pct", "symbol_key", "name_key"];
  return {
    columns: sql.raw(keys.join(", ")),
    set: sql.raw(keys.map((k) => `${k} = excluded.${k}`).join(", ")),
    changed: sql.raw(keys.map((k) => `asset_listing.${k} IS NOT excluded.${k}`).join(" OR ")),
  };
})();

/** `total` of GET /data for each scope: a count of each scope's index range. */
export function totalsStatement() {
  return sql`
    INSERT OR REPLACE INTO listing_totals (scope, total)
    SELECT s.scope, (SELECT COUNT(*) FROM asset_listing l WHERE l.scope = s.scope)
    FROM (SELECT value AS scope FROM json_each(${JSON.stringify(SCOPES)})) s`;
}
