import { env } from "cloudflare:workers";
import type { SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import paprika from "../data/coinpaprika/tickers.json";
import { dbFor } from "../src/db/client";
import { historyRowStatements, historyRowsQuery, quoteBucketStatements, quoteBucketsQuery } from "../src/db/quote-store";
import { movedOrPinnedQuery, publishReadModel } from "../src/db/read-model";
import { rejectionStatements } from "../src/db/rejections";
import { sameBodyQuery } from "../src/ingest/archive";
import { rollUpHistory } from "../src/ingest/retention";
import { storeNormalised } from "../src/ingest/store-chunk";
import { coingecko } from "../src/sources/coingecko";
import { coinpaprika } from "../src/sources/coinpaprika";
import { candidatesQuery, copiedAliasesQuery, movesSinceQuery, pinnedMappings } from "../src/unify/resolve";
import { api, pinMapping, rows, storedRows, testServices, unpackStorage } from "./helpers";

const T = "2026-11-22T12:00:00.000Z";

/** A valid quote with only identity and price set. */
const quote = (source: "coinpaprika" | "csv", sourceId: string, symbol: string, name: string, priceUsd: number) => ({
  ...{ source, sourceId, symbol, name, priceUsd, rank: null, marketCapUsd: null, volume24hUsd: null },
  ...{ change24hPct: null, circulatingSupply: null, totalSupply: null, maxSupply: null, sourceUpdatedAt: T },
});

/** Asset groups as sets of "source:id", independent of uids. */
async function grouping() {
  const mappings = await rows<{ asset_uid: string; source: string; source_id: string }>(
    "SELECT asset_uid, source, source_id FROM asset_mappings",
  );
  const groups = new Map<string, string[]>();
  for (const m of mappings) groups.set(m.asset_uid, [...(groups.get(m.asset_uid) ?? []), `${m.source}:${m.source_id}`]);
  return [...groups.values()].map((g) => g.sort().join(" ")).sort();
}

/**
 * The served /data read model against a rebuild from the stored quotes in plain SQL: a row per
 * asset under "all" and per source that quotes it, with the median of each source's latest price.
 */
async function readModelDrift() {
  const key = (r: { scope: string; asset_uid: string; price_usd: number }) => `${r.scope} ${r.asset_uid} ${r.price_usd.toPrecision(12)}`;
  const stored: string[] = [];
  for (const scope of ["all", "coingecko", "coinpaprika", "csv"]) {
    const page = await (await api(`/data?page_size=250${scope === "all" ? "" : `&source=${scope}`}`)).json<{
      data: { asset_uid: string; price_usd: number }[];
    }>();
    stored.push(...page.data.map((a) => key({ scope, ...a })));
  }
  await unpackStorage();
  const expected = (
    await rows<{ scope: string; asset_uid: string; price_usd: number }>(`
      WITH latest AS (
        SELECT q.asset_uid, q.source, q.price_usd FROM source_quotes q
        WHERE NOT EXISTS (SELECT 1 FROM source_quotes o WHERE o.asset_uid = q.asset_uid AND o.source = q.source
          AND (o.source_updated_at > q.source_updated_at OR (o.source_updated_at = q.source_updated_at AND o.source_id < q.source_id)))),
      agg AS (SELECT asset_uid, CASE COUNT(*) WHEN 1 THEN MAX(price_usd) WHEN 2 THEN AVG(price_usd)
        ELSE SUM(price_usd) - MIN(price_usd) - MAX(price_usd) END AS price_usd FROM latest GROUP BY asset_uid)
      SELECT 'all' AS scope, asset_uid, price_usd FROM agg
      UNION ALL SELECT l.source, a.asset_uid, a.price_usd FROM agg a JOIN latest l USING (asset_uid)`)
  ).map(key);
  return {
    stored: stored.length,
    missing: expected.filter((r) => !stored.includes(r)),
    extra: stored.filter((r) => !expected.includes(r)),
  };
}

async function reset() {
  for (const t of ["asset_mappings", "assets", "quote_buckets", "history_buckets", "asset_aliases", "leases"])
    await env.DB.prepare(`DELETE FROM ${t}`).run();
  await env.KV.delete("map:coingecko");
  await env.KV.delete("map:coinpaprika");
}

describe("unification in storage", () => {
  it("concurrent consumers produce the same assets as one consumer, with no duplicates", async () => {
    const { s } = testServices();
    const g = coingecko.normalise(geckoPage1, T);
    const p = coinpaprika.normalise(paprika, T);
    await reset();
    await storeNormalised(s.db, s.env.KV, { source: "coingecko", runId: "seq-g", part: "p1", fetched: 0, normalised: g });
    await storeNormalised(s.db, s.env.KV, { source: "coinpaprika", runId: "seq-p", part: "p1", fetched: 0, normalised: p });
    const sequential = await grouping();

    await reset();
    await Promise.all([
      storeNormalised(s.db, s.env.KV, { source: "coinpaprika", runId: "par-p", part: "p1", fetched: 0, normalised: p }),
      storeNormalised(s.db, s.env.KV, { source: "coingecko", runId: "par-g", part: "p1", fetched: 0, normalised: g }),
    ]);
    const concurrent = await grouping();
    expect(concurrent).toEqual(sequential);
    const dupes = await rows("SELECT source, source_id, COUNT(*) n FROM asset_mappings GROUP BY source, source_id HAVING n > 1");
    expect(dupes).toEqual([]);
    expect(sequential.filter((x) => x.split(" ").includes("coingecko:bitcoin"))).toEqual(["coingecko:bitcoin coinpaprika:btc-bitcoin"]);
  });

  it("a pin moves the quote at once, and the emptied asset's uid answers as an alias", async () => {
    await reset();
    const { s } = testServices();
    const normalised = {
      quotes: [quote("coinpaprika", "zzq-old-name", "ZZQ", "Old Name", 2), quote("coinpaprika", "zzr-target", "ZZR", "Target Coin", 5)],
      rejected: [],
    };
    await storeNormalised(s.db, s.env.KV, { source: "coinpaprika", runId: "pin-run", part: "p1", fetched: 2, normalised });
    const pin = (source: string, sourceId: string) => pinMapping("target-coin", { source, source_id: sourceId });
    expect((await pin("csv", "zzr-from-csv")).status).toBe(200);
    // Re-pin the old coin's paprika id to the target: the old asset is left empty.
    const move = await pin("coinpaprika", "zzq-old-name");
    expect(await move.json()).toMatchObject({ data: { asset_uid: "target-coin", pinned: true, previous_asset_uid: "old-name" } });
    const viaAlias = await (await api("/data/old-name")).json<{
      data: {
        asset_uid: string;
        aliases: string[];
        quotes: { source_id: string }[];
        mappings: { source_id: string; rule: string; pinned: boolean }[];
      };
    }>();
    expect(viaAlias.data.asset_uid).toBe("target-coin");
    expect(viaAlias.data.aliases).toEqual(["old-name"]);
    expect(viaAlias.data.mappings).toContainEqual({ source: "coinpaprika", source_id: "zzq-old-name", rule: "pinned", pinned: true });
    // The next ingestion keeps the pin.
    await storeNormalised(s.db, s.env.KV, { source: "coinpaprika", runId: "pin-run-2", part: "p1", fetched: 2, normalised });
    expect(await storedRows("SELECT asset_uid FROM source_quotes WHERE source_id = 'zzq-old-name'")).toEqual([
      { asset_uid: "target-coin" },
    ]);
  });

  it("keeps the /data read model equal to a rebuild from the stored quotes through ingests, re-ingests and pins", async () => {
    await reset();
    const { s } = testServices();
    // As a run's close does: store, then publish the read model once.
    const store = async (source: "coinpaprika" | "csv", runId: string, quotes: ReturnType<typeof quote>[]) => {
      await storeNormalised(s.db, s.env.KV, { source, runId, part: "p1", fetched: quotes.length, normalised: { quotes, rejected: [] } });
      await publishReadModel(s.db, s.env.BUCKET);
    };
    await store("coinpaprika", "rm-1", [
      quote("coinpaprika", "zza-alpha", "ZZA", "Alpha Coin", 2),
      quote("coinpaprika", "zzb-beta", "ZZB", "Beta Coin", 5),
    ]);
    await store("csv", "rm-2", [quote("csv", "zza", "ZZA", "Alpha Coin", 2.1), quote("csv", "zzc", "ZZC", "Gamma Coin", 9)]);
    expect(await readModelDrift()).toEqual({ stored: 7, missing: [], extra: [] });
    // Newer prices rewrite the sort keys in place.
    const later = (q: ReturnType<typeof quote>) => ({ ...q, sourceUpdatedAt: "2026-11-22T13:00:00.000Z" });
    await store("coinpaprika", "rm-3", [
      later(quote("coinpaprika", "zza-alpha", "ZZA", "Alpha Coin", 3)),
      later(quote("coinpaprika", "zzb-beta", "ZZB", "Beta Coin", 1)),
    ]);
    expect(await readModelDrift()).toEqual({ stored: 7, missing: [], extra: [] });
    // Alpha loses its only CoinPaprika quote to a pin: it must leave the coinpaprika scope and keep "all" and csv.
    const moved = await pinMapping("beta-coin", { source: "coinpaprika", source_id: "zza-alpha" });
    expect(moved.status).toBe(200);
    expect(await readModelDrift()).toEqual({ stored: 6, missing: [], extra: [] });
    const paprikaPage = await (await api("/data?source=coinpaprika")).json<{
      data: { asset_uid: string }[];
      metadata: { total: number };
    }>();
    expect(paprikaPage.data.map((a) => a.asset_uid)).toEqual(["beta-coin"]);
    expect(paprikaPage.metadata.total).toBe(1);
  });

  it("an older payload arriving after a newer one changes nothing", async () => {
    await reset();
    const { s } = testServices();
    const newer = coinpaprika.normalise(
      paprika.map((t) => ({ ...t, last_updated: "2026-11-22T13:00:00Z" })),
      T,
    );
    const older = coinpaprika.normalise(
      paprika.map((t) => ({
        ...t,
        last_updated: "2026-11-22T11:00:00Z",
        quotes: { USD: { ...t.quotes.USD, price: t.quotes.USD.price === null ? null : t.quotes.USD.price / 2 } },
      })),
      T,
    );
    await storeNormalised(s.db, s.env.KV, { source: "coinpaprika", runId: "new", part: "p1", fetched: 0, normalised: newer });
    const before = await storedRows("SELECT source_id, price_usd, source_updated_at FROM source_quotes ORDER BY source_id");
    const result = await storeNormalised(s.db, s.env.KV, {
      source: "coinpaprika",
      runId: "old",
      part: "p1",
      fetched: 0,
      normalised: older,
    });
    expect(result.written).toBe(0);
    expect(await storedRows("SELECT source_id, price_usd, source_updated_at FROM source_quotes ORDER BY source_id")).toEqual(before);
  });
});

describe("storage statements", () => {
  const dialect = new SQLiteAsyncDialect({ casing: "snake_case" });
  type Plannable = SQL | { toSQL(): { sql: string; params: unknown[] } };
  async function plan(statement: Plannable) {
    const q = "toSQL" in statement ? statement.toSQL() : dialect.sqlToQuery(statement);
    const steps = await env.DB.prepare(`EXPLAIN QUERY PLAN ${q.sql}`)
      .bind(...q.params)
      .all<{ detail: string }>();
    return steps.results.map((r) => r.detail);
  }
  /** Plan steps that read a whole table or index: every row a statement touches must be found by key. */
  async function fullScans(statement: Plannable) {
    return (await plan(statement)).filter((d) => d.startsWith("SCAN ") && !d.includes("VIRTUAL TABLE"));
  }

  it("find every row they touch by key, so a page costs the same in a large database", async () => {
    const db = dbFor(env.DB);
    const statements: Plannable[] = [
      quoteBucketsQuery(db, "coinpaprika", [0, 3]),
      ...quoteBucketStatements("coinpaprika", new Map([[0, {}]]), T),
      historyRowsQuery(db, "coinpaprika", "raw", [{ bucket: 0, start: Date.parse(T) }]),
      ...historyRowStatements("coinpaprika", "raw", [{ bucket: 0, start: Date.parse(T), points: [] }]),
      ...rejectionStatements("coinpaprika", "plan-run", [{ recordKey: "x", row: 1, sourceId: "x", reason: "r" }], T),
    ];
    for (const statement of statements) expect(await fullScans(statement)).toEqual([]);
    // A batch's neighbourhood, name prefixes included, is found through the mapping indexes.
    const neighbourhood = await plan(candidatesQuery([quote("coinpaprika", "trn-terrane", "TRN", "Terrane", 1)]));
    // Its own CTEs (what the keys found, one row per mapping) are the only rows it walks.
    const ownCtes = ["SCAN hit", "SCAN found"];
    expect(neighbourhood.filter((d) => d.startsWith("SCAN ") && !d.includes("VIRTUAL TABLE") && !ownCtes.includes(d))).toEqual([]);
    expect(neighbourhood).toContainEqual(
      expect.stringMatching(/SEARCH asset_mappings USING (COVERING )?INDEX mappings_name_idx \(name_key>\? AND name_key<\?\)/),
    );
    // The read model's pinned-or-moved lookup reads the pinned index and the moves, not the map.
    expect((await fullScans(movedOrPinnedQuery)).filter((d) => !d.includes("mappings_pinned_idx") && d !== "SCAN v")).toEqual([]);
    // The aliases a map copy needs are looked up by key, the moves since the copy by rowid.
    expect(await fullScans(copiedAliasesQuery('["a","b"]'))).toEqual([]);
    expect(await fullScans(movesSinceQuery(0, "coinpaprika"))).toEqual([]);
    // An unchanged body is found by its digest, not by walking the source's archive in time order.
    expect((await plan(sameBodyQuery("coinpaprika", "abc"))).join(" ")).toContain("INDEX raw_digest_idx (source=? AND digest=?)");
    // Not a range over the source's whole map: only pinned rows are in this index.
    expect(await plan(pinnedMappings("coinpaprika"))).toEqual([expect.stringContaining("mappings_pinned_idx")]);
  });
});

describe("rejection statements", () => {
  it("slice many long reasons so no JSON parameter nears D1's 2 MB value limit", async () => {
    const rejected = Array.from({ length: 5000 }, (_, i) => ({ recordKey: `k${i}`, row: i, sourceId: `id-${i}`, reason: "x".repeat(600) }));
    const statements = rejectionStatements("csv", "big-run", rejected, T);
    expect(statements.length).toBeGreaterThan(1);
    const dialect = new SQLiteAsyncDialect({ casing: "snake_case" });
    for (const st of statements) for (const p of dialect.sqlToQuery(st).params) expect(String(p).length).toBeLessThan(1_000_000);
    const { runBatch } = await import("../src/db/batch");
    await runBatch(dbFor(env.DB), statements);
    expect(await rows("SELECT COUNT(*) AS n FROM rejected_records WHERE run_id = 'big-run'")).toEqual([{ n: 5000 }]);
  });
});

describe("history retention", () => {
  it("rolls raw points older than 7 days into hourly means, hourly older than 90 days into daily, idempotently", async () => {
    await reset();
    await env.DB.prepare(
      `INSERT INTO asset_mappings (source, source_id, asset_uid, rule, symbol_key, name_key, id_key, name, slot, created_at, updated_at)
       VALUES ('coingecko', 'ret', 'ret', 'new_asset', 'ret', 'ret', 'ret', 'Ret', 0, ?, ?)`,
    )
      .bind(T, T)
      .run();
    const now = Date.parse("2026-11-24T00:00:00Z");
    const at = (daysAgo: number, minute: number) => now - daysAgo * 86_400_000 + minute * 60_000;
    const point = (t: number, priceUsd: number) => ({ slot: 0, at: t, priceUsd, marketCapUsd: null, volume24hUsd: null });
    const { runBatch } = await import("../src/db/batch");
    const { periodStart } = await import("../src/db/history-codec");
    const row = (points: ReturnType<typeof point>[], resolution: "raw" | "hour" = "raw") => ({
      bucket: 0,
      start: periodStart(resolution, points[0].at),
      points,
    });
    await runBatch(dbFor(env.DB), [
      ...historyRowStatements("coingecko", "raw", [row([point(at(10, 0), 1), point(at(10, 5), 3)]), row([point(at(1, 0), 7)])]),
      ...historyRowStatements("coingecko", "hour", [row([point(at(100, 0), 4), point(at(100, 60), 8)], "hour")]),
    ]);
    const first = await rollUpHistory((await import("../src/db/client")).dbFor(env.DB), now);
    expect(first).toEqual({ hourly_points_added: 1, raw_points_removed: 2, daily_points_added: 1, hourly_points_removed: 2 });
    const points = await storedRows<{ resolution: string; price_usd: number }>(
      "SELECT resolution, price_usd FROM quote_history ORDER BY at",
    );
    expect(points).toEqual([
      { resolution: "day", price_usd: 6 },
      { resolution: "hour", price_usd: 2 },
      { resolution: "raw", price_usd: 7 },
    ]);
    const again = await rollUpHistory((await import("../src/db/client")).dbFor(env.DB), now);
    expect(again).toEqual({ hourly_points_added: 0, raw_points_removed: 0, daily_points_added: 0, hourly_points_removed: 0 });
  });
});

describe("asset uids", () => {
  it("are readable slugs, qualified by symbol (then id) when taken, never shared", async () => {
    await reset();
    const { s } = testServices();
    await storeNormalised(s.db, s.env.KV, {
      source: "csv",
      runId: "uid-1",
      part: "a",
      fetched: 1,
      normalised: { quotes: [quote("csv", "comet-1", "CMT", "Comet", 0.4)], rejected: [] },
    });
    await storeNormalised(s.db, s.env.KV, {
      source: "csv",
      runId: "uid-2",
      part: "a",
      fetched: 3,
      normalised: {
        quotes: [
          quote("csv", "comet-2", "COM", "Comet", 90),
          quote("csv", "comet-3", "CMX", "Comet", 700),
          quote("csv", "comet-4", "COM", "Comet", 5000),
        ],
        rejected: [],
      },
    });
    const uids = await rows<{ source_id: string; asset_uid: string }>("SELECT source_id, asset_uid FROM asset_mappings ORDER BY source_id");
    expect(uids[0]).toEqual({ source_id: "comet-1", asset_uid: "comet" });
    expect(new Set(uids.map((u) => u.asset_uid)).size).toBe(4);
    expect(uids.slice(1).map((u) => u.asset_uid)).toContain("comet-com");
    expect(uids.slice(1).map((u) => u.asset_uid)).toContain("comet-cmx");
  });
});
