import { eq, sql } from "drizzle-orm";
import { SOURCES, type Source } from "../config";
import { now, nowIso } from "../lib/clock";
import { type Asset, AssetSchema } from "../schemas/assets";
import { col, type Db } from "./client";
import { type ConsensusRules, consensusOf, DEFAULT_CONSENSUS } from "./consensus";
import { allQuoteBuckets } from "./quote-store";
import { assetAliases, assetMappings, mappingMoves, readModel, type StoredQuote } from "./schema";

export const SORT_KEYS = ["rank", "market_cap", "price", "volume", "change_24h", "symbol", "name"] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export type AssetFilter = {
  page: number;
  pageSize: number;
  source?: Source;
  symbol?: string;
  q?: string;
  /** asset_uids (or aliases) and `source:source_id`s; unknown ones are left out. */
  ids?: string[];
  sort: SortKey;
  order: "asc" | "desc";
};

export type SourcedQuote = StoredQuote & { source: string };
export type AssetSummary = Asset & { spread_pct: number | null; fresh_sources: number };

/** The latest quote of each source (newest source time, then the smaller id), in source priority order. */
export function latestPerSource<Q extends SourcedQuote>(quotes: Q[]): Q[] {
  const best = new Map<string, Q>();
  for (const q of quotes) {
    const b = best.get(q.source);
    if (!b || q.sourceUpdatedAt > b.sourceUpdatedAt || (q.sourceUpdatedAt === b.sourceUpdatedAt && q.sourceId < b.sourceId))
      best.set(q.source, q);
  }
  return SOURCES.flatMap((s) => (best.has(s) ? [best.get(s)!] : []));
}

/**
 * An asset as served, from its sources' latest quotes: the consensus price (median of the fresh,
 * not outlying sources; see consensusOf), descriptive fields from the first source that has them
 * (coingecko, then coinpaprika, then csv).
 */
export function summarise(assetUid: string, quotes: SourcedQuote[], rules: ConsensusRules = DEFAULT_CONSENSUS) {
  const latest = latestPerSource(quotes);
  const first = <T>(pick: (q: SourcedQuote) => T | null) => latest.map(pick).find((v) => v !== null && v !== undefined) ?? null;
  const consensus = consensusOf(latest, rules);
  const summary: AssetSummary = {
    asset_uid: assetUid,
    symbol: first((q) => q.symbol || null) ?? "",
    name: first((q) => q.name || null) ?? "",
    rank: first((q) => q.rank),
    price_usd: consensus.price_usd,
    market_cap_usd: first((q) => q.marketCapUsd),
    volume_24h_usd: first((q) => q.volume24hUsd),
    change_24h_pct: first((q) => q.change24hPct),
    spread_pct: consensus.spread_pct,
    fresh_sources: consensus.sources,
    sources: latest.map((q) => q.source as Source),
    source_ids: Object.fromEntries(latest.map((q) => [q.source, q.sourceId])),
    // ISO 8601 UTC strings sort as their times do.
    updated_at:
      latest
        .map((q) => q.sourceUpdatedAt)
        .sort()
        .at(-1) ?? "",
  };
  return { summary, latest, consensus };
}

/** The snapshot as stored in R2: one array per field (compact to parse), aliases, and quote counts per source. */
type Snapshot = {
  version: number;
  built_at: string;
  columns: { [K in keyof AssetSummary]: AssetSummary[K][] };
  aliases: Record<string, string>;
  quotes: Record<string, number>;
};

/** The snapshot's columns: every Asset field, and what the consensus adds. */
const FIELDS = [
  ...(Object.keys(AssetSchema.shape) as (keyof Asset)[]),
  "spread_pct",
  "fresh_sources",
] as const satisfies readonly (keyof AssetSummary)[];

const NUMERIC_SORT = { market_cap: "market_cap_usd", price: "price_usd", volume: "volume_24h_usd", change_24h: "change_24h_pct" } as const;

/**
 * The /data read model in memory: every sort of every scope is an index array built on first use,
 * so a page at any depth is a slice, and no request reads D1 for it.
 */
export class ReadModel {
  readonly size: number;
  private readonly c: Snapshot["columns"];
  private readonly byUid = new Map<string, number>();
  private readonly orders = new Map<string, Int32Array>();
  private readonly ranks = new Map<string, Int32Array>();
  private symbolIndex?: Map<string, number[]>;
  private bySourceId?: Map<string, number>;
  private lowerCase?: { name: string[]; symbol: string[] };

  constructor(readonly snapshot: Snapshot) {
    this.c = snapshot.columns;
    this.size = this.c.asset_uid.length;
    this.c.asset_uid.forEach((uid, i) => {
      this.byUid.set(uid, i);
    });
  }

  get version() {
    return this.snapshot.version;
  }

  asset(i: number): Asset {
    const c = this.c;
    return {
      asset_uid: c.asset_uid[i],
      symbol: c.symbol[i],
      name: c.name[i],
      rank: c.rank[i],
      price_usd: c.price_usd[i],
      market_cap_usd: c.market_cap_usd[i],
      volume_24h_usd: c.volume_24h_usd[i],
      change_24h_pct: c.change_24h_pct[i],
      sources: c.sources[i],
      source_ids: c.source_ids[i],
      updated_at: c.updated_at[i],
    };
  }

  /** Assets whose consensus rests on a single fresh source. */
  singleSourceAssets() {
    return this.c.fresh_sources.reduce((n, f) => n + (f === 1 ? 1 : 0), 0);
  }

  list(f: AssetFilter) {
    const { at, total } = this.matching(f);
    const start = (f.page - 1) * f.pageSize;
    const items: Asset[] = [];
    for (let k = start; k < Math.min(total, start + f.pageSize); k++) items.push(this.asset(at(k)));
    return { items, total };
  }

  /** Every matching asset in order, `chunk` at a time (an export streams these). */
  *each(f: Omit<AssetFilter, "page" | "pageSize">, chunk = 1000) {
    const { at, total } = this.matching(f);
    for (let start = 0; start < total; start += chunk) {
      const out: Asset[] = [];
      for (let k = start; k < Math.min(total, start + chunk); k++) out.push(this.asset(at(k)));
      yield out;
    }
  }

  /** The k-th matching asset in the requested order, and how many match. */
  private matching(f: Omit<AssetFilter, "page" | "pageSize">) {
    let rows: ArrayLike<number>;
    if (f.symbol !== undefined || f.q !== undefined || f.ids !== undefined) {
      const rank = this.rankOf(f.source ?? "all", f.sort);
      rows = Int32Array.from(this.filtered(f)).sort((a, b) => rank[a] - rank[b]);
    } else rows = this.order(f.source ?? "all", f.sort);
    const total = rows.length;
    return { total, at: (k: number) => rows[f.order === "desc" ? total - 1 - k : k] };
  }

  /** Indexes of a scope's assets in ascending order of `sort` (descending is the same read backwards: ties break by uid both ways). */
  private order(scope: string, sort: SortKey) {
    const key = `${scope}:${sort}`;
    let o = this.orders.get(key);
    if (!o) {
      const ids: number[] = [];
      for (let i = 0; i < this.size; i++) if (scope === "all" || this.c.sources[i].includes(scope as Source)) ids.push(i);
      const cmp = this.comparator(sort);
      o = Int32Array.from(ids.sort(cmp));
      this.orders.set(key, o);
    }
    return o;
  }

  /** Position of every asset in order(scope, sort), for sorting a filtered few; built once per key. */
  private rankOf(scope: string, sort: SortKey) {
    const key = `${scope}:${sort}`;
    let rank = this.ranks.get(key);
    if (!rank) {
      const o = this.order(scope, sort);
      rank = new Int32Array(this.size);
      for (let k = 0; k < o.length; k++) rank[o[k]] = k;
      this.ranks.set(key, rank);
    }
    return rank;
  }

  /** Names and symbols in lower case, built once per snapshot for every filter and sort that needs them. */
  private lower() {
    this.lowerCase ??= { name: this.c.name.map((s) => s.toLowerCase()), symbol: this.c.symbol.map((s) => s.toLowerCase()) };
    return this.lowerCase;
  }

  private filtered(f: Omit<AssetFilter, "page" | "pageSize">): number[] {
    const lower = this.lower();
    const inScope = (i: number) => !f.source || this.c.sources[i].includes(f.source);
    const symbol = f.symbol?.toLowerCase();
    const bySymbol = (i: number) => symbol === undefined || lower.symbol[i] === symbol;
    // Prefix match over the name and the symbol, case-insensitive; a blank term matches nothing.
    const term = f.q?.trim().toLowerCase();
    if (term === "") return [];
    const matchesQ = (i: number) => term === undefined || lower.name[i].startsWith(term) || lower.symbol[i].startsWith(term);
    if (f.ids !== undefined) {
      const picked = new Set(f.ids.flatMap((id) => this.indexOfId(id) ?? []));
      return [...picked].filter((i) => inScope(i) && bySymbol(i) && matchesQ(i));
    }
    if (symbol !== undefined) {
      if (!this.symbolIndex) {
        this.symbolIndex = new Map<string, number[]>();
        lower.symbol.forEach((s, i) => {
          const list = this.symbolIndex!.get(s);
          if (list) list.push(i);
          else this.symbolIndex!.set(s, [i]);
        });
      }
      return (this.symbolIndex.get(symbol) ?? []).filter((i) => inScope(i) && matchesQ(i));
    }
    const out: number[] = [];
    for (let i = 0; i < this.size; i++) if (inScope(i) && matchesQ(i)) out.push(i);
    return out;
  }

  /** An asset_uid, an alias of one, or `source:source_id` (a source's id as the asset lists it). */
  private indexOfId(id: string): number | undefined {
    const byUid = this.byUid.get(this.snapshot.aliases[id] ?? id);
    if (byUid !== undefined) return byUid;
    if (!this.bySourceId) {
      this.bySourceId = new Map();
      this.c.source_ids.forEach((ids, i) => {
        for (const [source, sourceId] of Object.entries(ids)) this.bySourceId!.set(`${source}:${sourceId}`, i);
      });
    }
    return this.bySourceId.get(id);
  }

  private comparator(sort: SortKey): (a: number, b: number) => number {
    const uid = this.c.asset_uid;
    const tie = (a: number, b: number) => (uid[a] < uid[b] ? -1 : uid[a] > uid[b] ? 1 : 0);
    if (sort === "symbol" || sort === "name") {
      const keys = this.lower()[sort];
      return (a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : tie(a, b));
    }
    // Unknown values sort as the smallest, except rank, where an unknown rank comes after every known one.
    const values = sort === "rank" ? this.c.rank : this.c[NUMERIC_SORT[sort]];
    const missing = sort === "rank" ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    const v = Float64Array.from(values, (x) => x ?? missing);
    return (a, b) => v[a] - v[b] || tie(a, b);
  }
}

/** Builds the snapshot from every stored quote bucket (the ground truth) and the aliases. */
export async function buildSnapshot(db: Db, version: number, rules: ConsensusRules): Promise<Snapshot> {
  const byAsset = new Map<string, SourcedQuote[]>();
  const quotes: Record<string, number> = {};
  const moved = await currentUidsOfMoved(db);
  for await (const row of allQuoteBuckets(db)) {
    for (const [sourceId, q] of Object.entries(row.quotes)) {
      const uid = moved.get(`${row.source}\u0000${sourceId}`) ?? q.assetUid;
      const list = byAsset.get(uid);
      const sq = { ...q, assetUid: uid, source: row.source };
      if (list) list.push(sq);
      else byAsset.set(uid, [sq]);
      quotes[row.source] = (quotes[row.source] ?? 0) + 1;
    }
  }
  const aliases = await db.select({ alias: assetAliases.aliasUid, uid: assetAliases.assetUid }).from(assetAliases);
  const columns = Object.fromEntries(FIELDS.map((f) => [f, []])) as unknown as Snapshot["columns"];
  for (const [uid, qs] of byAsset) {
    const a = summarise(uid, qs, rules).summary;
    for (const f of FIELDS) (columns[f] as unknown[]).push(a[f]);
  }
  return { version, built_at: nowIso(), columns, aliases: Object.fromEntries(aliases.map((a) => [a.alias, a.uid])), quotes };
}

/**
 * The asset of every pinned or moved id, from the mappings: a tick that resolved such an id from a
 * map copy made before the move may have stored its quote under the old asset, and the mapping wins.
 */
async function currentUidsOfMoved(db: Db) {
  const rows = await db.all<{ source: string; source_id: string; asset_uid: string }>(movedOrPinnedQuery);
  return new Map(rows.map((r) => [`${r.source}\u0000${r.source_id}`, r.asset_uid]));
}

/** Pinned ids through their partial index, moved ids by key: never a pass over the whole map. */
export const movedOrPinnedQuery = sql`
  SELECT ${col(assetMappings.source)}, ${col(assetMappings.sourceId)}, ${col(assetMappings.assetUid)}
  FROM ${assetMappings} INDEXED BY mappings_pinned_idx WHERE ${assetMappings.pinned} = 1
  UNION SELECT m.${col(assetMappings.source)}, m.${col(assetMappings.sourceId)}, m.${col(assetMappings.assetUid)}
  FROM ${mappingMoves} v JOIN ${assetMappings} m
    ON m.${col(assetMappings.source)} = v.${col(mappingMoves.source)} AND m.${col(assetMappings.sourceId)} = v.${col(mappingMoves.sourceId)}`;

const SNAPSHOT_PREFIX = "read-model/";
const snapshotKey = (version: number) => `${SNAPSHOT_PREFIX}v${version}.json`;
const versionOf = (key: string | null) => Number(/v(\d+)\.json$/.exec(key ?? "")?.[1] ?? 0);

/**
 * Rebuilds and publishes the read model. Versions are claimed before reading, and the pointer only
 * moves forward (a snapshot is published only over an older one), so a slow build never replaces a
 * newer snapshot; each write that matters is followed by a build claimed after it, so the published
 * one is at most one run stale. A failed publish leaves the previous snapshot served.
 */
export async function publishReadModel(db: Db, bucket: R2Bucket, rules: ConsensusRules = DEFAULT_CONSENSUS) {
  const [claim] = await db
    .update(readModel)
    .set({ claimed: sql`${readModel.claimed} + 1` })
    .where(eq(readModel.id, 1))
    .returning({ version: readModel.claimed, previous: readModel.key });
  const snapshot = await buildSnapshot(db, claim.version, rules);
  const key = snapshotKey(claim.version);
  await bucket.put(key, JSON.stringify(snapshot), { httpMetadata: { contentType: "application/json" } });
  const published = await db
    .update(readModel)
    .set({ version: claim.version, key, assets: snapshot.columns.asset_uid.length, builtAt: snapshot.built_at })
    .where(sql`${readModel.id} = 1 AND ${readModel.version} < ${claim.version}`)
    .returning({ version: readModel.version });
  if (!published.length) {
    // A newer snapshot was published first: this one was never named, so nobody can be fetching it.
    await bucket.delete(key);
    return null;
  }
  await deleteSnapshotsBefore(bucket, versionOf(claim.previous));
  const model = new ReadModel(snapshot);
  keepNewer(model);
  return model;
}

/**
 * Deletes snapshots older than `version`, the one the pointer named when this publish claimed its
 * own. The pointer has only moved forward since, so what it names now, the one it replaced, any
 * newer one being built, and the one isolates fetched last are all kept.
 */
async function deleteSnapshotsBefore(bucket: R2Bucket, version: number) {
  const listed = await bucket.list({ prefix: SNAPSHOT_PREFIX });
  const stale = listed.objects.map((o) => o.key).filter((k) => versionOf(k) < version);
  if (stale.length) await bucket.delete(stale);
}

/** This isolate's copy moves forward only: an older publish or fetch finishing late never replaces a newer one. */
function keepNewer(model: ReadModel | null) {
  if (model && loaded?.model && loaded.model.version > model.version) {
    loaded = { ...loaded, checkedAt: now() };
    return loaded.model;
  }
  loaded = { model, checkedAt: now() };
  return model;
}

/** How long an isolate serves its copy before asking D1 (one row) whether a newer one was published. */
const RECHECK_MS = 1_000;
let loaded: { model: ReadModel | null; checkedAt: number } | null = null;
let loading: Promise<ReadModel | null> | null = null;

/** The current read model: this isolate's copy, rechecked at most every RECHECK_MS. */
export async function currentReadModel(db: Db, bucket: R2Bucket): Promise<ReadModel | null> {
  if (loaded && now() - loaded.checkedAt < RECHECK_MS) return loaded.model;
  loading ??= (async () => {
    try {
      let model = loaded?.model ?? null;
      // The pointer can move on between reading it and fetching its object (a newer snapshot
      // replaced it): read it again, a few times, rather than serve nothing.
      for (let attempt = 0; attempt < 3; attempt++) {
        const row = await db.query.readModel.findFirst({ where: eq(readModel.id, 1), columns: { version: true, key: true } });
        if (!row?.key) {
          model = null;
          break;
        }
        if (model?.version === row.version) break;
        const object = await bucket.get(row.key);
        if (!object) continue;
        // The old copy is let go before the new one is parsed: at 132k assets a parsed snapshot
        // takes ~55 MB of an isolate's 128 MB, and two at once would not fit.
        model = null;
        loaded = null;
        model = new ReadModel(await object.json<Snapshot>());
        break;
      }
      return keepNewer(model);
    } finally {
      loading = null;
    }
  })();
  return loading;
}
