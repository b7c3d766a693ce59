import { eq, sql } from "drizzle-orm";
import { SOURCES, type Source } from "../config";
import type { Behind } from "../lib/behind";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import type { Asset } from "../schemas/assets";
import { col, type Db } from "./client";
import { type ConsensusRules, consensusOf, DEFAULT_CONSENSUS } from "./consensus";
import { latestFxRates } from "./fx-store";
import { allQuoteBuckets } from "./quote-store";
import { assetAliases, assetMappings, mappingMoves, readModel, type StoredQuote } from "./schema";
import {
  encodeSections,
  lowerBound,
  packSnapshot,
  SNAPSHOT_FORMAT,
  type Snapshot,
  type SnapshotHeader,
  SnapshotSections,
  type TextList,
  textSections,
  type Uints,
  uintSection,
} from "./snapshot-format";

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

const SEP = "\u0001";
/**
 * A row's text fields, in this order: its uid, symbol and name, then its id at each source ("" where
 * it has none, SAME_AS_UID where it is the uid, as a source's id often is).
 */
const TEXT_FIELDS = 3;
/** Stands for the row's uid in a source id field; text fields never hold control characters (source-quote.ts). */
const SAME_AS_UID = "\u0002";

const NUMERIC = { market_cap: "market_cap_usd", price: "price_usd", volume: "volume_24h_usd", change_24h: "change_24h_pct" } as const;
const MONEY = ["price_usd", "market_cap_usd", "volume_24h_usd", "change_24h_pct"] as const;
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** What `asset(i)` reads of row i: stored by row blocks, so a page inflates the blocks of its rows only. */
const ROW_SECTIONS = [...MONEY, "rank", "updated", "rows.offsets", "rows.text"];

/**
 * Encodes assets as a snapshot (snapshot-format.ts): rows in uid order, numeric columns, every
 * sort order of every asset, each source's ids in order, and the aliases in order, so a loaded
 * snapshot answers any page, filter or lookup by slicing and binary search.
 */
export function encodeSnapshot(
  meta: Omit<SnapshotHeader, "size" | "sections" | "bytes" | "by_row">,
  input: AssetSummary[],
  aliasPairs: [string, string][],
): Snapshot {
  const assets = [...input].sort((a, b) => byString(a.asset_uid, b.asset_uid));
  const n = assets.length;
  const column = (pick: (a: AssetSummary) => number | null) => Float64Array.from(assets, (a) => pick(a) ?? Number.NaN);
  const money = MONEY.map((f) => ({ name: f, kind: "f64" as const, data: column((a) => a[f]) }));
  const rank = Int32Array.from(assets, (a) => a.rank ?? -1);
  const flags = Uint8Array.from(assets, (a) =>
    SOURCES.reduce((bits, src, k) => bits | (a.sources.includes(src) ? 1 << k : 0), Math.min(a.fresh_sources, 7) << SOURCES.length),
  );
  const times = [...new Set(assets.map((a) => a.updated_at))].sort(byString);
  const timeIndex = new Map(times.map((t, i) => [t, i]));
  const updated = assets.map((a) => timeIndex.get(a.updated_at)!);

  const lowerName = assets.map((a) => a.name.toLowerCase());
  const lowerSymbol = assets.map((a) => a.symbol.toLowerCase());
  const orders = SORT_KEYS.map((sort) => {
    const ids = Array.from({ length: n }, (_, i) => i);
    // Rows are in uid order, so the row index breaks every tie by uid.
    if (sort === "symbol" || sort === "name") {
      const keys = sort === "name" ? lowerName : lowerSymbol;
      ids.sort((x, y) => byString(keys[x], keys[y]) || x - y);
    } else {
      // Unknown values sort as the smallest, except rank, where an unknown rank comes after every known one.
      const v =
        sort === "rank"
          ? Float64Array.from(rank, (r) => (r < 0 ? Number.POSITIVE_INFINITY : r))
          : Float64Array.from(assets, (a) => a[NUMERIC[sort]] ?? Number.NEGATIVE_INFINITY);
      ids.sort((x, y) => v[x] - v[y] || x - y);
    }
    return uintSection(`order:${sort}`, ids);
  });
  const sourceIds = SOURCES.map((src) => {
    const rows = assets.flatMap((a, i) => (a.source_ids[src] ? [i] : []));
    rows.sort((x, y) => byString(assets[x].source_ids[src]!, assets[y].source_ids[src]!));
    return uintSection(`ids:${src}`, rows);
  });
  const rowOf = new Map(assets.map((a, i) => [a.asset_uid, i]));
  const aliases = aliasPairs.filter(([, uid]) => rowOf.has(uid)).sort((x, y) => byString(x[0], y[0]));
  return encodeSections(
    { ...meta, size: n },
    [
      ...money,
      { name: "rank", kind: "i32", data: rank },
      { name: "flags", kind: "u8", data: flags },
      uintSection("updated", updated),
      ...textSections("times", times),
      ...textSections(
        "rows",
        assets.map((a) =>
          [
            a.asset_uid,
            a.symbol,
            a.name,
            ...SOURCES.map((src) => (a.source_ids[src] === a.asset_uid ? SAME_AS_UID : (a.source_ids[src] ?? ""))),
          ].join(SEP),
        ),
      ),
      ...orders,
      ...sourceIds,
      ...textSections(
        "aliases",
        aliases.map(([alias]) => alias),
      ),
      uintSection(
        "alias_rows",
        aliases.map(([, uid]) => rowOf.get(uid)!),
      ),
    ],
    ROW_SECTIONS,
  );
}

const SOURCE_BIT = Object.fromEntries(SOURCES.map((src, k) => [src, 1 << k])) as Record<Source, number>;

/**
 * The /data read model in memory: typed-array views over one fetched snapshot. A page at any
 * depth is a slice of a stored order, a filter a binary search, and only the served rows are
 * decoded; no request reads D1 for it.
 */
export class ReadModel {
  readonly size: number;
  readonly version: number;
  /** Stored quotes per source when it was built. */
  readonly quotes: Record<string, number>;
  /** The latest FX rates when it was built, and when that was: what an isolate prices its first /data request with. */
  readonly rates: { rows: SnapshotHeader["fx"]; at: number };
  private readonly s: SnapshotSections;
  private readonly times: TextList;
  private readonly flags: Uint8Array;
  /** Orders of one source's assets and each order's inverse, derived from the stored orders on first use (one pass). */
  private readonly scoped = new Map<string, Int32Array>();
  private readonly positions = new Map<SortKey, Int32Array>();
  private singleSource?: number;

  constructor(sections: SnapshotSections) {
    this.s = sections;
    const h = this.s.header;
    this.size = h.size;
    this.version = h.version;
    this.quotes = h.quotes;
    this.rates = { rows: h.fx, at: Date.parse(h.built_at) };
    this.times = this.s.text("times");
    this.flags = this.s.u8("flags");
  }

  /** Bytes of the snapshot's sections (what this copy holds once every member is inflated). */
  get bytes() {
    return this.s.header.bytes;
  }

  /** Inflates what no request has read yet, between requests (snapshot-format.ts). */
  complete() {
    return this.s.complete();
  }

  /** Bytes this copy derived from the snapshot on first use and keeps beside it: source-scoped orders and order positions. */
  get derivedBytes() {
    let n = 0;
    for (const a of [...this.scoped.values(), ...this.positions.values()]) n += a.byteLength;
    return n;
  }

  /** Row i's text fields, from its row block. */
  private fields(i: number, { first, views } = this.s.block(i)) {
    const f = views
      .text("rows")
      .get(i - first)
      .split(SEP);
    for (let k = TEXT_FIELDS; k < f.length; k++) if (f[k] === SAME_AS_UID) f[k] = f[0];
    return f;
  }

  asset(i: number): Asset {
    const block = this.s.block(i);
    const { first, views } = block;
    const f = this.fields(i, block);
    const j = i - first;
    const money = (field: (typeof MONEY)[number]) => {
      const x = views.f64(field)[j];
      return Number.isNaN(x) ? null : x;
    };
    const rank = views.i32("rank")[j];
    const sources = SOURCES.filter((src) => this.flags[i] & SOURCE_BIT[src]);
    return {
      asset_uid: f[0],
      symbol: f[1],
      name: f[2],
      rank: rank < 0 ? null : rank,
      price_usd: money("price_usd"),
      market_cap_usd: money("market_cap_usd"),
      volume_24h_usd: money("volume_24h_usd"),
      change_24h_pct: money("change_24h_pct"),
      sources,
      source_ids: Object.fromEntries(sources.map((src) => [src, f[TEXT_FIELDS + SOURCES.indexOf(src)]])),
      updated_at: this.times.get(views.uint("updated").get(j)),
    };
  }

  /** Assets whose consensus rests on a single fresh source. */
  singleSourceAssets() {
    if (this.singleSource === undefined) {
      let count = 0;
      for (let i = 0; i < this.size; i++) if (this.flags[i] >> SOURCES.length === 1) count++;
      this.singleSource = count;
    }
    return this.singleSource;
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
  private matching(f: Omit<AssetFilter, "page" | "pageSize">): { total: number; at: (k: number) => number } {
    if (f.symbol !== undefined || f.q !== undefined || f.ids !== undefined) return this.filtered(f);
    const rows = this.order(f.source, f.sort);
    const total = rows.length;
    const desc = f.order === "desc";
    return rows instanceof Int32Array
      ? { total, at: (k: number) => rows[desc ? total - 1 - k : k] }
      : { total, at: (k: number) => rows.get(desc ? total - 1 - k : k) };
  }

  /** A stored order, or its rows of one source (one pass, kept). Descending is the same read backwards: ties break by uid both ways. */
  private order(source: Source | undefined, sort: SortKey): Uints | Int32Array {
    const all = this.s.uint(`order:${sort}`);
    if (!source) return all;
    const key = `${source}:${sort}`;
    let o = this.scoped.get(key);
    if (!o) {
      const bit = SOURCE_BIT[source];
      let count = 0;
      for (let k = 0; k < all.length; k++) if (this.flags[all.get(k)] & bit) count++;
      o = new Int32Array(count);
      let j = 0;
      for (let k = 0; k < all.length; k++) {
        const i = all.get(k);
        if (this.flags[i] & bit) o[j++] = i;
      }
      this.scoped.set(key, o);
    }
    return o;
  }

  /** Where each row stands in a stored order (its inverse, one pass, kept): sorts a filtered few and tests range membership. */
  private position(sort: SortKey) {
    let p = this.positions.get(sort);
    if (!p) {
      const o = this.s.uint(`order:${sort}`);
      p = new Int32Array(this.size);
      for (let k = 0; k < o.length; k++) p[o.get(k)] = k;
      this.positions.set(sort, p);
    }
    return p;
  }

  /**
   * The positions [from, to) of the name or symbol order whose lower-cased field starts with
   * `prefix` (or equals it, `exact`): two binary searches, decoding a row per probe.
   */
  private range(sort: "name" | "symbol", prefix: string, exact: boolean) {
    const order = this.s.uint(`order:${sort}`);
    const field = sort === "name" ? 2 : 1;
    const key = (pos: number) => this.fields(order.get(pos))[field].toLowerCase();
    const from = lowerBound(order.length, key, prefix);
    const to = lowerBound(order.length, key, exact ? `${prefix}\u0000` : `${prefix}\uffff`);
    return { sort, from, to, order };
  }

  /**
   * Rows matching `symbol`, `q` and `ids`, in the requested order. Candidates come from binary
   * searches (or the ids); every test is a range check on a stored order's positions, so no row is
   * decoded. Few candidates are sorted; many are marked, and a page picks them out of the stored
   * order from the end it reads, walking only as far as the page.
   */
  private filtered(f: Omit<AssetFilter, "page" | "pageSize">): { total: number; at: (k: number) => number } {
    const none = { total: 0, at: () => -1 };
    // Prefix match over the name and the symbol, case-insensitive; a blank term matches nothing.
    const term = f.q?.trim().toLowerCase();
    if (term === "") return none;
    const symbol = f.symbol === undefined ? undefined : this.range("symbol", f.symbol.toLowerCase(), true);
    const byName = term === undefined ? undefined : this.range("name", term, false);
    const bySymbol = term === undefined ? undefined : this.range("symbol", term, false);
    const posName = byName ? this.position("name") : undefined;
    const posSymbol = symbol || bySymbol ? this.position("symbol") : undefined;
    const bit = f.source ? SOURCE_BIT[f.source] : 0;
    const passes = (i: number) =>
      (!bit || (this.flags[i] & bit) !== 0) &&
      (!symbol || (posSymbol![i] >= symbol.from && posSymbol![i] < symbol.to)) &&
      (!byName ||
        (posName![i] >= byName.from && posName![i] < byName.to) ||
        (posSymbol![i] >= bySymbol!.from && posSymbol![i] < bySymbol!.to));
    const picked: number[] = [];
    if (f.ids !== undefined) {
      for (const i of new Set(f.ids.flatMap((id) => this.rowOfId(id) ?? []))) if (passes(i)) picked.push(i);
    } else if (symbol) {
      for (let k = symbol.from; k < symbol.to; k++) {
        const i = symbol.order.get(k);
        if (passes(i)) picked.push(i);
      }
    } else {
      for (let k = byName!.from; k < byName!.to; k++) {
        const i = byName!.order.get(k);
        if (passes(i)) picked.push(i);
      }
      // Rows in both ranges come once, from the name range.
      for (let k = bySymbol!.from; k < bySymbol!.to; k++) {
        const i = bySymbol!.order.get(k);
        if (!(posName![i] >= byName!.from && posName![i] < byName!.to) && passes(i)) picked.push(i);
      }
    }
    const total = picked.length;
    const desc = f.order === "desc";
    if (total * 64 < this.size) {
      const position = this.position(f.sort);
      const rows = Int32Array.from(picked).sort((a, b) => position[a] - position[b]);
      return { total, at: (k) => rows[desc ? total - 1 - k : k] };
    }
    const marked = new Uint8Array(this.size);
    for (const i of picked) marked[i] = 1;
    const order = this.s.uint(`order:${f.sort}`);
    const out = new Int32Array(total);
    let filled = 0;
    let next = desc ? order.length - 1 : 0;
    const step = desc ? -1 : 1;
    return {
      total,
      at: (k) => {
        while (filled <= k) {
          const i = order.get(next);
          next += step;
          if (marked[i]) out[filled++] = i;
        }
        return out[k];
      },
    };
  }

  /** An asset_uid, an alias of one, or `source:source_id` (a source's id as the asset lists it). */
  private rowOfId(id: string): number | undefined {
    const byUid = this.find(this.size, (i) => this.fields(i)[0], id);
    if (byUid !== undefined) return byUid;
    const aliases = this.s.text("aliases");
    const alias = this.find(aliases.length, (k) => aliases.get(k), id);
    if (alias !== undefined) return this.s.uint("alias_rows").get(alias);
    const colon = id.indexOf(":");
    const source = id.slice(0, colon) as Source;
    if (colon < 0 || !SOURCES.includes(source)) return undefined;
    const rows = this.s.uint(`ids:${source}`);
    const field = TEXT_FIELDS + SOURCES.indexOf(source);
    const k = this.find(rows.length, (pos) => this.fields(rows.get(pos))[field], id.slice(colon + 1));
    return k === undefined ? undefined : rows.get(k);
  }

  /** The position in [0, n) whose key equals `target`, keys ascending. */
  private find(n: number, key: (pos: number) => string, target: string) {
    const pos = lowerBound(n, key, target);
    return pos < n && key(pos) === target ? pos : undefined;
  }
}

/** Builds the snapshot from every stored quote bucket (the ground truth) and the aliases. */
export async function buildSnapshot(db: Db, version: number, rules: ConsensusRules) {
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
  const [aliases, fx] = await Promise.all([
    db.select({ alias: assetAliases.aliasUid, uid: assetAliases.assetUid }).from(assetAliases),
    latestFxRates(db),
  ]);
  const summaries = [...byAsset].map(([uid, qs]) => summarise(uid, qs, rules).summary);
  return encodeSnapshot(
    { version, built_at: nowIso(), quotes, fx },
    summaries,
    aliases.map((a) => [a.alias, a.uid]),
  );
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

/** The one stored snapshot, the newest: a publish replaces it only with a newer one (storeSnapshot). */
export const SNAPSHOT_KEY = "read-model/latest.bin";
const versionOf = (object: R2Object | null) => Number(object?.customMetadata?.version ?? 0);

/**
 * Stores a snapshot over an older one only: a compare-and-swap on the object's etag (or on its
 * absence), tried again when another publish stored in between. False when the stored one is as new.
 */
export async function storeSnapshot(bucket: R2Bucket, version: number, bytes: Uint8Array) {
  for (let attempt = 0; attempt < 10; attempt++) {
    const stored = await bucket.head(SNAPSHOT_KEY);
    if (versionOf(stored) >= version) return false;
    const put = await bucket.put(SNAPSHOT_KEY, bytes, {
      httpMetadata: { contentType: "application/octet-stream" },
      customMetadata: { version: String(version), format: SNAPSHOT_FORMAT },
      onlyIf: stored ? { etagMatches: stored.etag } : { etagDoesNotMatch: "*" },
    });
    if (put) return true;
  }
  throw new Error(`snapshot v${version} not stored: the stored one changed under ten attempts in a row`);
}

/** Deletes what is left of the snapshots earlier builds stored a version to a key (an R2 listing, from the daily retention). */
export async function deleteOldSnapshots(bucket: R2Bucket) {
  const listed = await bucket.list({ prefix: "read-model/" });
  const old = listed.objects.map((o) => o.key).filter((k) => /^read-model\/v\d+\.(bin|json)$/.test(k));
  if (old.length) await bucket.delete(old);
  return { old_snapshots_deleted: old.length };
}

/** The version of the stored snapshot (0 when there is none). */
export const storedSnapshotVersion = async (bucket: R2Bucket) => versionOf(await bucket.head(SNAPSHOT_KEY));

/**
 * Publishes the read model when no snapshot this build reads is stored while one was published: the
 * first tick after a deploy that changed the format (or that moved it from per-version objects), so
 * fresh isolates serve `/data` again within a tick instead of after the next run's close. An R2 head
 * and D1's row a tick.
 */
export async function publishIfUnreadable(db: Db, bucket: R2Bucket, rules: ConsensusRules, kv?: KVNamespace) {
  const [stored, published] = await Promise.all([bucket.head(SNAPSHOT_KEY), d1Version(db)]);
  if (!published || (stored?.customMetadata?.format === SNAPSHOT_FORMAT && versionOf(stored) >= published)) return null;
  log("info", "read_model_published_again", { stored: versionOf(stored), format: stored?.customMetadata?.format ?? null, published });
  return publishReadModel(db, bucket, rules, kv);
}

/**
 * Rebuilds and publishes the read model. Versions are claimed before reading; the snapshot is stored
 * over an older one only, and before its version is named (D1's row, then KV), so what the pointers
 * name is never newer than what is stored, and a slow build never replaces a newer snapshot. Each
 * write that matters is followed by a build claimed after it, so the published one is at most one
 * run stale. A failed publish leaves the previous snapshot served.
 */
export async function publishReadModel(db: Db, bucket: R2Bucket, rules: ConsensusRules = DEFAULT_CONSENSUS, kv?: KVNamespace) {
  const [claim] = await db
    .update(readModel)
    .set({ claimed: sql`${readModel.claimed} + 1` })
    .where(eq(readModel.id, 1))
    .returning({ version: readModel.claimed });
  const stored = packSnapshot(await buildSnapshot(db, claim.version, rules));
  const model = new ReadModel(SnapshotSections.unpack(stored.buffer as ArrayBuffer));
  if (!(await storeSnapshot(bucket, claim.version, stored))) return null;
  // Held before it is named, so a request of this isolate that learns of it does not fetch it again.
  keepNewer(model);
  const published = await db
    .update(readModel)
    .set({ version: claim.version, key: SNAPSHOT_KEY, assets: model.size, builtAt: nowIso() })
    .where(sql`${readModel.id} = 1 AND ${readModel.version} < ${claim.version}`)
    .returning({ version: readModel.version });
  // A newer snapshot was stored over this one and named first.
  if (!published.length) return null;
  // Announced to every isolate; KV takes one write a second per key, so a lost announcement is
  // caught by the isolates' D1 check (and the next publish).
  await kv
    ?.put(POINTER_KV_KEY, JSON.stringify({ version: claim.version } satisfies Pointer))
    .catch((e) => log("warn", "read_model_pointer_not_announced", { version: claim.version, error: String(e) }));
  // This isolate serves its own copy at once; the rest of it is inflated while the run closes.
  model.complete().catch((e) => log("warn", "read_model_inflate_failed", { version: claim.version, error: String(e) }));
  return model;
}

/**
 * This isolate's copy moves forward only: an older publish or fetch finishing late never replaces a
 * newer one, and a copy of the same version (fetched again) keeps what it inflated and derived.
 */
function keepNewer(model: ReadModel | null) {
  if (loaded?.model && (!model || loaded.model.version >= model.version)) {
    loaded = { ...loaded, checkedAt: now() };
    return loaded.model;
  }
  loaded = { model, checkedAt: now(), d1CheckedAt: loaded?.d1CheckedAt ?? 0 };
  return model;
}

type Pointer = { version: number };
/** Where a publish announces its snapshot's version to every isolate, besides D1's read_model row (the ground truth). */
export const POINTER_KV_KEY = "read-model/pointer";
/** Seconds a colo may serve the KV pointer from its cache (KV's own minimum for cacheTtl is 30). */
const POINTER_CACHE_TTL_S = 30;
/** How often an isolate looks for a newer snapshot: the KV pointer, and D1's now and then in case a KV write was lost. */
const RECHECK_MS = { kv: 5_000, d1: 60_000, d1Only: 1_000 };

let loaded: { model: ReadModel | null; checkedAt: number; d1CheckedAt: number } | null = null;
let loading: Promise<ReadModel | null> | null = null;
/** The version of a stored snapshot this build could not read (a format of another build): not fetched again. */
let unreadable = 0;

/** This isolate's last fetch of a snapshot from R2 (for /metrics): how long the fetch and its views took. */
export let lastSnapshotLoad: { version: number; bytes: number; stored: number; ms: number } | null = null;

/** Tests start as a fresh isolate would, with no copy. */
export function forgetReadModel() {
  loaded = null;
  unreadable = 0;
}

const d1Version = async (db: Db) => {
  const row = await db.query.readModel.findFirst({ where: eq(readModel.id, 1), columns: { version: true, key: true } });
  return row?.key ? row.version : 0;
};

/**
 * The current read model: this isolate's copy, rechecked at most every few seconds. A fresh isolate
 * fetches the stored snapshot at once, asking no pointer first: it is the newest there is. After
 * that, with `kv` (the Worker), the version announced comes from KV, cached at the colo, and D1 is
 * asked once a minute per isolate at most (in case a KV write was lost); a snapshot reaches every
 * colo within KV's propagation plus POINTER_CACHE_TTL_S. Without it (tests, tools), D1's row is
 * asked every second. With `behind` (a request), an isolate that has a copy serves it and checks
 * and loads in the background, so no request waits for KV, D1 or a snapshot fetch but an isolate's
 * very first, which waits for R2 alone.
 */
export async function currentReadModel(db: Db, bucket: R2Bucket, kv?: KVNamespace, behind?: Behind): Promise<ReadModel | null> {
  const t = now();
  if (loaded && t - loaded.checkedAt < (kv ? RECHECK_MS.kv : RECHECK_MS.d1Only)) return loaded.model;
  loading ??= refresh(db, bucket, kv, behind);
  const refreshing = loading;
  if (loaded?.model && behind) {
    behind(() => refreshing, "read_model_refresh");
    return loaded.model;
  }
  return refreshing;
}

/** Fetches the stored snapshot when this isolate has none or a newer one is announced; this isolate's copy only moves forward. */
function refresh(db: Db, bucket: R2Bucket, kv?: KVNamespace, behind?: Behind) {
  return (async () => {
    try {
      const fresh = !loaded;
      // A fresh isolate fetches what is stored: nothing announced is newer, D1's row included.
      const { version, d1Checked } = fresh ? { version: Number.POSITIVE_INFINITY, d1Checked: true } : await announced(db, kv);
      let model = loaded?.model ?? null;
      if (version > (model?.version ?? 0) && version > unreadable) model = (await fetchSnapshot(bucket, behind)) ?? model;
      const kept = keepNewer(model);
      if (loaded && d1Checked) loaded.d1CheckedAt = now();
      return kept;
    } finally {
      loading = null;
    }
  })();
}

/** The newest version announced: KV's pointer, beside D1's row when that is due, or after it when KV has none. */
async function announced(db: Db, kv?: KVNamespace) {
  const d1Due = !kv || now() - (loaded?.d1CheckedAt ?? 0) >= RECHECK_MS.d1;
  const [fromKv, fromD1] = await Promise.all([
    kv ? kv.get<Pointer>(POINTER_KV_KEY, { type: "json", cacheTtl: POINTER_CACHE_TTL_S }).catch(() => null) : null,
    d1Due ? d1Version(db) : 0,
  ]);
  if (fromKv || d1Due) return { version: Math.max(fromKv?.version ?? 0, fromD1), d1Checked: d1Due };
  return { version: await d1Version(db), d1Checked: true };
}

async function fetchSnapshot(bucket: R2Bucket, behind?: Behind) {
  const object = await bucket.get(SNAPSHOT_KEY);
  if (!object) return null;
  const t0 = performance.now();
  // A failed read of the body is R2's (the refresh fails and the next one tries again); what fails below is the object's.
  const buffer = await object.arrayBuffer();
  try {
    const model = new ReadModel(SnapshotSections.unpack(buffer));
    lastSnapshotLoad = { version: model.version, bytes: model.bytes, stored: object.size, ms: performance.now() - t0 };
    // The rest of it is inflated behind this request; without a request (tests, tools) as it is read.
    behind?.(() => model.complete(), "read_model_inflate");
    return model;
  } catch (e) {
    // A snapshot in a format this build does not read (stored by another build): the next publish replaces it.
    unreadable = versionOf(object);
    log("warn", "read_model_unreadable", { version: unreadable, error: String(e) });
    return null;
  }
}
