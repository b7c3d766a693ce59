import { type SQL, sql } from "drizzle-orm";
import type { Source } from "../../config";
import type { Asset, AssetDetail, Quote } from "../../schemas/assets";
import { runBatch } from "../batch";
import type { Db } from "../client";

export const SORT_COLUMNS = {
  rank: "rank_key",
  market_cap: "market_cap_usd",
  price: "price_usd",
  volume: "volume_24h_usd",
  change_24h: "change_24h_pct",
  symbol: "symbol_key",
  name: "name_key",
} as const;
export type SortKey = keyof typeof SORT_COLUMNS;

export type AssetFilter = {
  page: number;
  pageSize: number;
  source?: Source;
  symbol?: string;
  q?: string;
  sort: SortKey;
  order: "asc" | "desc";
};

type AssetRow = {
  asset_uid: string;
  symbol: string;
  name: string;
  rank: number | null;
  price_usd: number | null;
  market_cap_usd: number | null;
  volume_24h_usd: number | null;
  change_24h_pct: number | null;
  spread_pct: number | null;
  sources: string;
  source_ids: string;
  updated_at: string;
};

export function toAsset(r: AssetRow): Asset {
  return {
    asset_uid: r.asset_uid,
    symbol: r.symbol,
    name: r.name,
    rank: r.rank,
    price_usd: r.price_usd,
    market_cap_usd: r.market_cap_usd,
    volume_24h_usd: r.volume_24h_usd,
    change_24h_pct: r.change_24h_pct,
    sources: JSON.parse(r.sources),
    source_ids: JSON.parse(r.source_ids),
    updated_at: r.updated_at,
  };
}

/**
 * One page of GET /data. Every filter and sort is a range of one asset_listing index (scope leads
 * each), so a page reads about page_size rows; `total` comes from listing_totals when unfiltered.
 * Both statements travel in one D1 batch.
 */
export async function listAssets(db: Db, f: AssetFilter) {
  const scope = f.source ?? "all";
  const where: SQL[] = [sql`l.scope = ${scope}`];
  if (f.symbol !== undefined) where.push(sql`l.symbol_key = ${f.symbol.toLowerCase()}`);
  if (f.q !== undefined) {
    const term = f.q.trim().toLowerCase();
    if (!term) return { items: [] as Asset[], total: 0, rowsRead: 0 };
    // Prefix ranges of two indexes; U+10FFFF sorts after every other character.
    const end = `${term}\u{10FFFF}`;
    where.push(sql`((l.name_key >= ${term} AND l.name_key < ${end}) OR (l.symbol_key >= ${term} AND l.symbol_key < ${end}))`);
  }
  const cond = sql.join(where, sql` AND `);
  const filtered = f.symbol !== undefined || f.q !== undefined;
  const dir = sql.raw(f.order === "desc" ? "DESC" : "ASC");
  // A filtered page is small: select it through the filter's index and sort it (unary + keeps
  // SQLite from walking the whole sort index instead). Unfiltered pages walk the sort index.
  const col = sql.raw(`${filtered ? "+" : ""}l.${SORT_COLUMNS[f.sort]}`);
  const page = sql`
    SELECT a.asset_uid, a.symbol, a.name, a.rank, a.price_usd, a.market_cap_usd, a.volume_24h_usd, a.change_24h_pct,
      a.spread_pct, a.sources, a.source_ids, a.updated_at
    FROM asset_listing l JOIN assets a ON a.asset_uid = l.asset_uid
    WHERE ${cond}
    ORDER BY ${col} ${dir}, ${sql.raw(filtered ? "+" : "")}l.asset_uid ${dir}
    LIMIT ${f.pageSize} OFFSET ${(f.page - 1) * f.pageSize}`;
  const total = filtered
    ? sql`SELECT COUNT(*) AS total FROM asset_listing l WHERE ${cond}`
    : sql`SELECT total FROM listing_totals WHERE scope = ${scope}`;
  const [rows, count] = await runBatch(db, [page, total]);
  return {
    items: (rows.results as AssetRow[]).map(toAsset),
    total: (count.results[0]?.total as number) ?? 0,
    rowsRead: rows.meta.rows_read + count.meta.rows_read,
  };
}

type QuoteRow = {
  source: Source;
  source_id: string;
  price_usd: number;
  market_cap_usd: number | null;
  volume_24h_usd: number | null;
  change_24h_pct: number | null;
  circulating_supply: number | null;
  total_supply: number | null;
  max_supply: number | null;
  rank: number | null;
  source_updated_at: string;
  ingested_at: string;
};

export function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return null;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** GET /data/{asset_uid}: the asset (or the asset an alias points to), one quote per source, consensus, mappings. */
export async function getAssetDetail(db: Db, uid: string): Promise<AssetDetail | null> {
  const target = sql`COALESCE((SELECT asset_uid FROM asset_aliases WHERE alias_uid = ${uid}), ${uid})`;
  const [assetRes, quoteRes, mappingRes, aliasRes] = await runBatch(db, [
    sql`SELECT * FROM assets WHERE asset_uid = ${target}`,
    sql`
      SELECT source, source_id, price_usd, market_cap_usd, volume_24h_usd, change_24h_pct, circulating_supply,
        total_supply, max_supply, rank, source_updated_at, ingested_at
      FROM source_quotes WHERE asset_uid = ${target}
      ORDER BY source, source_updated_at DESC, source_id`,
    sql`SELECT source, source_id, rule, pinned FROM asset_mappings WHERE asset_uid = ${target} ORDER BY source, source_id`,
    sql`SELECT alias_uid FROM asset_aliases WHERE asset_uid = ${target} ORDER BY alias_uid`,
  ]);
  const assetRows = assetRes.results as AssetRow[];
  const quoteRows = quoteRes.results as QuoteRow[];
  const mappingRows = mappingRes.results as { source: Source; source_id: string; rule: string; pinned: number }[];
  const aliasRows = aliasRes.results as { alias_uid: string }[];
  const row = assetRows[0];
  if (!row) return null;
  const quotes: Quote[] = [];
  for (const q of quoteRows) if (!quotes.some((x) => x.source === q.source)) quotes.push(q);
  const prices = quotes.map((q) => q.price_usd);
  const mid = median(prices);
  return {
    ...toAsset(row),
    quotes,
    consensus: {
      price_usd: mid,
      spread_pct: mid ? ((Math.max(...prices) - Math.min(...prices)) / mid) * 100 : null,
      sources: quotes.length,
    },
    mappings: mappingRows.map((m) => ({ source: m.source, source_id: m.source_id, rule: m.rule, pinned: !!m.pinned })),
    aliases: aliasRows.map((a) => a.alias_uid),
  };
}

export async function resolveUid(db: Db, uid: string) {
  const row = await db.get<{ uid: string }>(sql`
    SELECT asset_uid AS uid FROM assets WHERE asset_uid = COALESCE((SELECT asset_uid FROM asset_aliases WHERE alias_uid = ${uid}), ${uid})`);
  return row?.uid ?? null;
}

export async function assetHistory(db: Db, uid: string, f: { source?: Source; from?: string; to?: string; limit: number }) {
  const where: SQL[] = [sql`asset_uid = ${uid}`];
  if (f.source) where.push(sql`source = ${f.source}`);
  if (f.from) where.push(sql`at >= ${f.from}`);
  if (f.to) where.push(sql`at <= ${f.to}`);
  return db.all<{
    source: Source;
    at: string;
    price_usd: number;
    market_cap_usd: number | null;
    volume_24h_usd: number | null;
    resolution: "raw" | "hour" | "day";
  }>(sql`
    SELECT source, at, price_usd, market_cap_usd, volume_24h_usd, resolution FROM (
      SELECT source, at, price_usd, market_cap_usd, volume_24h_usd, resolution FROM quote_history
      WHERE ${sql.join(where, sql` AND `)} ORDER BY at DESC LIMIT ${f.limit}
    ) ORDER BY at, source`);
}
