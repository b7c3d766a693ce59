import { and, asc, desc, eq, gte, lte, type SQL, sql } from "drizzle-orm";
import type { Source } from "../../config";
import type { MappingMove, UsdAssetDetail, UsdQuote } from "../../schemas/assets";
import { runBatch } from "../batch";
import { col, type Db } from "../client";
import { type ConsensusRules, DEFAULT_CONSENSUS } from "../consensus";
import { blobBytes, bucketOf, decodePoints, QUOTES_PER_BUCKET } from "../history-codec";
import { type AssetFilter, type ReadModel, summarise } from "../read-model";
import {
  assetAliases,
  assetMappings,
  assets,
  historyBuckets,
  mappingMoves,
  quoteBuckets,
  type RESOLUTIONS,
  type StoredQuote,
} from "../schema";
import { assetContractsStatement, type ContractListing, groupContracts } from "./contracts";

/** One page of GET /data, from the in-memory read model: no D1 rows for the page itself, at any depth. */
export function listAssets(model: ReadModel | null, f: AssetFilter) {
  return model ? model.list(f) : { items: [], total: 0 };
}

const targetOf = (uid: string) =>
  sql`COALESCE((SELECT ${assetAliases.assetUid} FROM ${assetAliases} WHERE ${assetAliases.aliasUid} = ${uid}), ${uid})`;

export async function resolveUid(db: Db, uid: string) {
  const row = await db
    .select({ uid: assets.assetUid })
    .from(assets)
    .where(eq(assets.assetUid, targetOf(uid)))
    .get();
  return row?.uid ?? null;
}

/** The mappings of an asset with their slots: where its quotes and history are stored. */
const mappingsOf = (db: Db, uid: string) =>
  db
    .select({
      source: assetMappings.source,
      sourceId: assetMappings.sourceId,
      rule: assetMappings.rule,
      pinned: assetMappings.pinned,
      slot: assetMappings.slot,
    })
    .from(assetMappings)
    .where(eq(assetMappings.assetUid, uid))
    .orderBy(assetMappings.source, assetMappings.sourceId);

/** GET /data/{asset_uid}: the asset (or the asset an alias points to), one quote per source, consensus, mappings, read from D1. */
export async function getAssetDetail(db: Db, uid: string, rules: ConsensusRules = DEFAULT_CONSENSUS): Promise<UsdAssetDetail | null> {
  // One round trip: the alias resolved in SQL, each mapping with its stored quote picked out of its
  // bucket by SQLite with a JSON path (json_each, which reads a row per id in the bucket, only for
  // ids a path cannot quote), and the asset's aliases.
  const target = targetOf(uid);
  const m = assetMappings;
  const [mappingRows, aliasRows, moveRows, contractRows] = await runBatch(db, [
    sql`
      SELECT ${m.source} AS source, ${m.sourceId} AS source_id, ${m.rule} AS rule, ${m.pinned} AS pinned, ${target} AS target,
        (SELECT CASE WHEN instr(${m.sourceId}, '"') = 0 AND instr(${m.sourceId}, '\\') = 0
            THEN json_extract(b.${col(quoteBuckets.quotes)}, '$."' || ${m.sourceId} || '"')
            ELSE (SELECT j.value FROM json_each(b.${col(quoteBuckets.quotes)}) j WHERE j.key = ${m.sourceId}) END
          FROM ${quoteBuckets} b
          WHERE b.${col(quoteBuckets.source)} = ${m.source} AND b.${col(quoteBuckets.bucket)} = ${m.slot} / ${sql.raw(String(QUOTES_PER_BUCKET))}) AS quote
      FROM ${m} WHERE ${m.assetUid} = ${target} ORDER BY ${m.source}, ${m.sourceId}`,
    sql`SELECT ${assetAliases.aliasUid} AS alias FROM ${assetAliases} WHERE ${assetAliases.assetUid} = ${target} ORDER BY 1`,
    movesQuery(sql`${mappingMoves.fromUid} = ${target} OR ${mappingMoves.toUid} = ${target}`, MAX_HISTORY, 0),
    assetContractsStatement(target),
  ]);
  const mappings = mappingRows.results as {
    source: string;
    source_id: string;
    rule: string;
    pinned: number;
    target: string;
    quote: string | null;
  }[];
  const targetUid = mappings[0]?.target;
  // The mapping says whose quote it is (a tick may have stored it just before the id moved).
  const stored = mappings.flatMap((r) =>
    r.quote ? [{ source: r.source, ...(JSON.parse(r.quote) as StoredQuote), assetUid: targetUid }] : [],
  );
  if (!targetUid || !stored.length) return null;
  const aliases = aliasRows.results as { alias: string }[];
  const { summary, latest, consensus } = summarise(targetUid, stored, rules);
  const { spread_pct: _spread, fresh_sources: _fresh, ...asset } = summary;
  const quotes: UsdQuote[] = latest.map((q) => ({
    source: q.source as Source,
    source_id: q.sourceId,
    price_usd: q.priceUsd,
    market_cap_usd: q.marketCapUsd,
    volume_24h_usd: q.volume24hUsd,
    change_24h_pct: q.change24hPct,
    circulating_supply: q.circulatingSupply,
    total_supply: q.totalSupply,
    max_supply: q.maxSupply,
    rank: q.rank,
    source_updated_at: q.sourceUpdatedAt,
    ingested_at: q.ingestedAt,
  }));
  return {
    ...asset,
    quotes,
    consensus,
    mappings: mappings.map((r) => ({ source: r.source as Source, source_id: r.source_id, rule: r.rule, pinned: !!r.pinned })),
    aliases: aliases.map((a) => a.alias),
    contracts: groupContracts(contractRows.results as ContractListing[]),
    mapping_history: (moveRows.results as MoveRow[]).map(toMove),
  };
}

/** The longest period a history row covers (a month of daily points): rows that start this long before `from` may still hold points after it. */
const LONGEST_PERIOD_MS = 31 * 86_400_000;

/** History of an asset, oldest first: every stored point of its mappings in the range, every resolution. */
export async function assetHistory(db: Db, uid: string, f: { source?: Source; from?: string; to?: string }) {
  const mappings = (await mappingsOf(db, uid)).filter((m) => !f.source || m.source === f.source);
  const from = f.from ? Date.parse(f.from) : Number.NEGATIVE_INFINITY;
  const to = f.to ? Date.parse(f.to) : Number.POSITIVE_INFINITY;
  const queries = mappings.map((m) =>
    db
      .select({ resolution: historyBuckets.resolution, periodStart: historyBuckets.periodStart, points: historyBuckets.points })
      .from(historyBuckets)
      .where(
        and(
          eq(historyBuckets.source, m.source),
          eq(historyBuckets.bucket, bucketOf(m.slot)),
          f.from ? gte(historyBuckets.periodStart, new Date(from - LONGEST_PERIOD_MS).toISOString()) : undefined,
          f.to ? lte(historyBuckets.periodStart, f.to) : undefined,
        ),
      )
      .orderBy(asc(historyBuckets.resolution), desc(historyBuckets.periodStart)),
  );
  type Row = {
    source: Source;
    at: string;
    price_usd: number;
    market_cap_usd: number | null;
    volume_24h_usd: number | null;
    resolution: (typeof RESOLUTIONS)[number];
  };
  const points: (Row & { t: number })[] = [];
  const results = queries.length ? await db.batch(queries as [(typeof queries)[0], ...typeof queries]) : [];
  results.forEach((rows, k) => {
    const m = mappings[k];
    for (const r of rows) {
      const start = Date.parse(r.periodStart);
      for (const p of decodePoints(start, bucketOf(m.slot), blobBytes(r.points))) {
        if (p.slot !== m.slot || p.at < from || p.at > to) continue;
        points.push({
          t: p.at,
          source: m.source as Source,
          at: new Date(p.at).toISOString(),
          price_usd: p.priceUsd,
          market_cap_usd: p.marketCapUsd,
          volume_24h_usd: p.volume24hUsd,
          resolution: r.resolution,
        });
      }
    }
  });
  points.sort((a, b) => a.t - b.t || (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  return points.map(({ t: _t, ...p }) => p);
}

/** Moves listed with an asset's detail. */
const MAX_HISTORY = 50;

type MoveRow = {
  source: string;
  source_id: string;
  from_uid: string;
  to_uid: string;
  rule: string;
  evidence: string | null;
  moved_at: string;
};

/** Mapping moves matching `where`, newest first. */
export const movesQuery = (where: SQL, limit: number, offset: number) => {
  const v = mappingMoves;
  return sql`SELECT ${v.source} AS source, ${v.sourceId} AS source_id, ${v.fromUid} AS from_uid, ${v.toUid} AS to_uid, ${v.rule} AS rule,
      ${v.evidence} AS evidence, ${v.movedAt} AS moved_at
    FROM ${v} WHERE ${where} ORDER BY ${v.id} DESC LIMIT ${limit} OFFSET ${offset}`;
};

export const toMove = (r: MoveRow): MappingMove => ({
  source: r.source as Source,
  source_id: r.source_id,
  from: r.from_uid,
  to: r.to_uid,
  rule: r.rule,
  evidence: r.evidence ? (JSON.parse(r.evidence) as Record<string, unknown>) : null,
  moved_at: r.moved_at,
});

/** GET /stats/moves: every mapping move, newest first. */
export async function listMoves(db: Db, page: number, pageSize: number) {
  const [rows, total] = await runBatch(db, [
    movesQuery(sql`true`, pageSize, (page - 1) * pageSize),
    sql`SELECT COUNT(*) AS n FROM ${mappingMoves}`,
  ]);
  return { moves: (rows.results as MoveRow[]).map(toMove), total: (total.results[0] as { n: number }).n };
}
