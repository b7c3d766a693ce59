import { sql } from "drizzle-orm";
import { groupBy } from "../lib/group-by";
import type { Db } from "./client";
import { bucketOf, type Point } from "./history-codec";
import { fencedBatch, type HeldLease } from "./lease";
import { historyStatements, quoteBucketStatements, readQuoteBuckets, withQuotesLease } from "./quote-store";
import { RESOLUTIONS, type Resolution, type StoredQuote } from "./schema";

/**
 * Migration 0003 renamed the per-coin tables of earlier builds to legacy_source_quotes and
 * legacy_quote_history. This carries their rows into the packed buckets a slice per transaction
 * (each slice's rows are deleted with it, so a crash resumes where it stopped) and drops the
 * tables once empty. A newer stored quote always wins over a carried one.
 */
const QUOTES_PER_SLICE = 2_000;
const POINTS_PER_SLICE = 20_000;

let carried = false;

export async function carryLegacyTables(db: Db, maxSlices = 50) {
  if (carried) return { quotes: 0, points: 0, done: true };
  const tables = new Set(
    (await db.all<{ name: string }>(sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'legacy_%'`)).map((t) => t.name),
  );
  let slices = maxSlices;
  /** Carries one table slice by slice (rows without a mapping have nowhere to go), dropping it once empty. */
  const drain = async (table: string, perSlice: number, carry: (db: Db) => Promise<number>) => {
    let n = 0;
    if (!tables.has(table)) return n;
    await db.run(sql`DELETE FROM ${sql.identifier(table)} AS t WHERE NOT EXISTS (
      SELECT 1 FROM asset_mappings m WHERE m.source = t.source AND m.source_id = t.source_id)`);
    while (slices-- > 0) {
      const got = await carry(db);
      n += got;
      if (got < perSlice) {
        await db.run(sql`DROP TABLE ${sql.identifier(table)}`);
        tables.delete(table);
        break;
      }
    }
    return n;
  };
  // Quotes first: a carried point is kept only under a carried (or newer) quote's slot.
  const quotes = await drain("legacy_source_quotes", QUOTES_PER_SLICE, carryQuotes);
  const points = tables.has("legacy_source_quotes") ? 0 : await drain("legacy_quote_history", POINTS_PER_SLICE, carryHistory);
  carried = tables.size === 0;
  return { quotes, points, done: carried };
}

type LegacyQuote = {
  rowid: number;
  source: string;
  source_id: string;
  /** The mapping's asset now, which the carried quote belongs to (the legacy row's may be older). */
  mapped_uid: string;
  symbol: string;
  name: string;
  rank: number | null;
  price_usd: number;
  market_cap_usd: number | null;
  volume_24h_usd: number | null;
  change_24h_pct: number | null;
  circulating_supply: number | null;
  total_supply: number | null;
  max_supply: number | null;
  source_updated_at: string;
  ingested_at: string;
  run_id: string;
  slot: number;
};

async function carryQuotes(db: Db) {
  const rows = await db.all<LegacyQuote>(sql`
    SELECT q.rowid, q.*, m.asset_uid AS mapped_uid, m.slot FROM legacy_source_quotes q JOIN asset_mappings m ON m.source = q.source AND m.source_id = q.source_id
    ORDER BY q.rowid LIMIT ${QUOTES_PER_SLICE}`);
  for (const [source, list] of groupBy(rows, (r) => r.source)) {
    await withQuotesLease(db, source, async (lease) => {
      const buckets = await readQuoteBuckets(
        db,
        source,
        list.map((r) => bucketOf(r.slot)),
      );
      const dirty = new Set<number>();
      for (const r of list) {
        const b = bucketOf(r.slot);
        const bucket = buckets.get(b) ?? {};
        const old = bucket[r.source_id];
        if (old && old.sourceUpdatedAt >= r.source_updated_at) continue;
        bucket[r.source_id] = toStored(r);
        buckets.set(b, bucket);
        dirty.add(b);
      }
      const now = new Date().toISOString();
      await fencedBatch(
        db,
        [lease],
        [
          ...quoteBucketStatements(source, new Map([...dirty].map((b) => [b, buckets.get(b)!])), now),
          sql`DELETE FROM legacy_source_quotes WHERE rowid IN (SELECT value FROM json_each(${JSON.stringify(list.map((r) => r.rowid))}))`,
        ],
      );
    });
  }
  return rows.length;
}

const toStored = (r: LegacyQuote): StoredQuote => ({
  sourceId: r.source_id,
  symbol: r.symbol,
  name: r.name,
  rank: r.rank,
  priceUsd: r.price_usd,
  marketCapUsd: r.market_cap_usd,
  volume24hUsd: r.volume_24h_usd,
  change24hPct: r.change_24h_pct,
  circulatingSupply: r.circulating_supply,
  totalSupply: r.total_supply,
  maxSupply: r.max_supply,
  sourceUpdatedAt: r.source_updated_at,
  assetUid: r.mapped_uid,
  slot: r.slot,
  ingestedAt: r.ingested_at,
  runId: r.run_id,
});

type LegacyPoint = {
  rowid: number;
  source: string;
  resolution: Resolution;
  at: string;
  price_usd: number;
  market_cap_usd: number | null;
  volume_24h_usd: number | null;
  slot: number;
};

async function carryHistory(db: Db) {
  const rows = await db.all<LegacyPoint>(sql`
    SELECT h.rowid, h.source, h.resolution, h.at, h.price_usd, h.market_cap_usd, h.volume_24h_usd, m.slot
    FROM legacy_quote_history h JOIN asset_mappings m ON m.source = h.source AND m.source_id = h.source_id
    ORDER BY h.rowid LIMIT ${POINTS_PER_SLICE}`);
  const groups = new Map<string, { source: string; resolution: Resolution; points: Point[] }>();
  for (const r of rows) {
    if (!RESOLUTIONS.includes(r.resolution)) continue;
    const k = `${r.source}|${r.resolution}`;
    const g = groups.get(k) ?? { source: r.source, resolution: r.resolution, points: [] };
    g.points.push({
      slot: r.slot,
      at: Date.parse(r.at),
      priceUsd: r.price_usd,
      marketCapUsd: r.market_cap_usd,
      volume24hUsd: r.volume_24h_usd,
    });
    groups.set(k, g);
  }
  const sources = [...new Set(rows.map((r) => r.source))].sort();
  // Every source's lease, in a fixed order, for the one transaction that writes and deletes.
  const run = async (i: number, held: HeldLease[]): Promise<void> => {
    if (i < sources.length) return withQuotesLease(db, sources[i], (lease) => run(i + 1, [...held, lease]));
    const writes = (await Promise.all([...groups.values()].map((g) => historyStatements(db, g.source, g.resolution, g.points)))).flat();
    await fencedBatch(db, held, [
      ...writes,
      sql`DELETE FROM legacy_quote_history WHERE rowid IN (SELECT value FROM json_each(${JSON.stringify(rows.map((r) => r.rowid))}))`,
    ]);
  };
  await run(0, []);
  return rows.length;
}

/** Tests re-create legacy tables after this isolate carried them once. */
export function forgetLegacyCarried() {
  carried = false;
}
