import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { publishReadModel } from "../src/db/read-model";
import type { SourceQuote } from "../src/sources/source-quote";
import { forgetMapCopies, publishMapCache } from "../src/unify/map-cache";
import identities from "./fixtures/identities.json";
import classes from "./fixtures/identity-classes.json";
import { api, clearTables, marketQuote, rows, storedRows, storeQuotes, testServices } from "./helpers";

const T2 = "2026-11-22T12:05:00.000Z";

const quote = marketQuote;

// The true coin on both providers, and a look-alike CoinGecko lists 12 places higher: same ticker, a
// price 1.5% off, another name.
const paprikaZeph = quote("coinpaprika", "zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol", 2.41, 400);
const lookalike = quote("coingecko", "zeta-phoenix", "zeph", "Zeta Phoenix", 2.446, 388);
const geckoZeph = quote("coingecko", "zephyr-protocol", "zeph", "Zephyr Protocol", 2.412, 400);

const store = storeQuotes;

const mappingOf = async (source: string, sourceId: string) =>
  (
    await rows<{ asset_uid: string; rule: string }>(
      "SELECT asset_uid, rule FROM asset_mappings WHERE source = ? AND source_id = ?",
      source,
      sourceId,
    )
  )[0];

beforeEach(async () => {
  await clearTables(
    "asset_mappings",
    "assets",
    "quote_buckets",
    "history_buckets",
    "asset_aliases",
    "leases",
    "mapping_moves",
    "ambiguous_matches",
  );
  await env.KV.delete("map:coingecko");
  await env.KV.delete("map:coinpaprika");
  forgetMapCopies();
});

describe("a weak mapping gives way to stronger evidence", () => {
  it("moves a look-alike out, with its quote, when the true coin arrives on a later page", async () => {
    await store("coinpaprika", "p1", [paprikaZeph]);
    await store("coingecko", "g1", [lookalike]);
    // Provisional: same ticker, close price and rank, nothing better known yet.
    expect(await mappingOf("coingecko", "zeta-phoenix")).toEqual({ asset_uid: "zephyr-protocol", rule: "symbol_corroborated" });

    await store("coingecko", "g2", [geckoZeph]);
    expect(await mappingOf("coingecko", "zephyr-protocol")).toEqual({ asset_uid: "zephyr-protocol", rule: "provider_id" });
    expect(await mappingOf("coingecko", "zeta-phoenix")).toEqual({ asset_uid: "zeta-phoenix", rule: "new_asset" });
    expect(await rows("SELECT asset_uid FROM assets ORDER BY 1")).toEqual([
      { asset_uid: "zephyr-protocol" },
      { asset_uid: "zeta-phoenix" },
    ]);

    // The move is recorded, and the look-alike's stored quote followed it.
    const moves = await rows<{ source: string; source_id: string; from_uid: string; to_uid: string; rule: string; evidence: string }>(
      "SELECT source, source_id, from_uid, to_uid, rule, evidence FROM mapping_moves",
    );
    expect(moves.map(({ evidence: _e, ...m }) => m)).toEqual([
      { source: "coingecko", source_id: "zeta-phoenix", from_uid: "zephyr-protocol", to_uid: "zeta-phoenix", rule: "new_asset" },
    ]);
    expect(await storedRows("SELECT source_id, asset_uid FROM source_quotes WHERE source = 'coingecko' ORDER BY 1")).toEqual([
      { source_id: "zephyr-protocol", asset_uid: "zephyr-protocol" },
      { source_id: "zeta-phoenix", asset_uid: "zeta-phoenix" },
    ]);

    const { s } = testServices();
    await publishReadModel(s.db, s.env.BUCKET);
    const detail = await (await api("/data/zephyr-protocol")).json<{
      data: { source_ids: Record<string, string>; mapping_history: { source_id: string; from: string; to: string; rule: string }[] };
    }>();
    expect(detail.data.source_ids).toEqual({ coingecko: "zephyr-protocol", coinpaprika: "zeph-zephyr-protocol" });
    expect(detail.data.mapping_history).toMatchObject([
      { source_id: "zeta-phoenix", from: "zephyr-protocol", to: "zeta-phoenix", rule: "new_asset" },
    ]);
    const other = await (await api("/data/zeta-phoenix")).json<{ data: { mapping_history: unknown[]; quotes: unknown[] } }>();
    expect(other.data.mapping_history).toHaveLength(1);
    expect(other.data.quotes).toHaveLength(1);

    const stats = await (await api("/stats")).json<{ data: { mapping_moves: number } }>();
    expect(stats.data.mapping_moves).toBe(1);
    expect(await (await api("/metrics")).text()).toContain("coinfuse_mapping_moves_total 1");
    const list = await (await api("/stats/moves")).json<{ data: { source_id: string }[]; metadata: { total: number } }>();
    expect(list.metadata.total).toBe(1);
    expect(list.data[0].source_id).toBe("zeta-phoenix");
    const page = await (await api("/data?symbol=zeph")).json<{ data: { asset_uid: string; sources: string[] }[] }>();
    expect(page.data.map((a) => [a.asset_uid, a.sources]).sort()).toEqual([
      ["zephyr-protocol", ["coingecko", "coinpaprika"]],
      ["zeta-phoenix", ["coingecko"]],
    ]);
  });

  it("sends a moved id's next quote to its new asset, even from a map copy made before the move", async () => {
    const { s } = testServices();
    await store("coinpaprika", "p1", [paprikaZeph]);
    await store("coingecko", "g1", [lookalike]);
    // The KV copy now says the look-alike belongs to zephyr-protocol.
    await publishMapCache(s.db, s.env.KV, "coingecko");
    expect((await s.env.KV.get<{ ids: Record<string, [string, number]> }>("map:coingecko", "json"))!.ids["zeta-phoenix"][0]).toBe(
      "zephyr-protocol",
    );
    await store("coingecko", "g2", [geckoZeph]);
    // The next tick resolves the look-alike from that stale copy: the move since the copy wins.
    await store("coingecko", "g3", [{ ...lookalike, priceUsd: 2.5, sourceUpdatedAt: T2 }]);
    expect(await storedRows("SELECT asset_uid, price_usd FROM source_quotes WHERE source_id = 'zeta-phoenix'")).toEqual([
      { asset_uid: "zeta-phoenix", price_usd: 2.5 },
    ]);
    // Publishing again takes the move into the copy.
    await publishMapCache(s.db, s.env.KV, "coingecko");
    const copy = (await s.env.KV.get<{ last_move: number; ids: Record<string, [string, number]> }>("map:coingecko", "json"))!;
    expect(copy.ids["zeta-phoenix"][0]).toBe("zeta-phoenix");
    expect(copy.last_move).toBe(1);
  });

  it("stores a known id of the same page at its new asset when the page's new record moves it", async () => {
    const { s } = testServices();
    await store("coinpaprika", "p1", [paprikaZeph]);
    await store("coingecko", "g1", [lookalike]);
    await publishMapCache(s.db, s.env.KV, "coingecko");
    // The next page holds the look-alike again (known from the copy) and the true coin (new).
    await store("coingecko", "g2", [{ ...lookalike, priceUsd: 2.45, sourceUpdatedAt: T2 }, geckoZeph]);
    expect(await storedRows("SELECT source_id, asset_uid, price_usd FROM source_quotes WHERE source = 'coingecko' ORDER BY 1")).toEqual([
      { source_id: "zephyr-protocol", asset_uid: "zephyr-protocol", price_usd: 2.412 },
      { source_id: "zeta-phoenix", asset_uid: "zeta-phoenix", price_usd: 2.45 },
    ]);
  });

  it("keeps the uid with the asset's first mapping, so a uid once served still answers", async () => {
    // The look-alike comes first and names the asset; CoinPaprika's coin joins it provisionally.
    await store("coingecko", "g1", [lookalike]);
    await store("coinpaprika", "p1", [paprikaZeph]);
    expect(await mappingOf("coinpaprika", "zeph-zephyr-protocol")).toEqual({ asset_uid: "zeta-phoenix", rule: "symbol_corroborated" });
    await store("coingecko", "g2", [geckoZeph]);
    // The look-alike keeps its uid; the true coin's records are one asset under a new one.
    expect(await mappingOf("coingecko", "zeta-phoenix")).toMatchObject({ asset_uid: "zeta-phoenix" });
    const moved = await mappingOf("coinpaprika", "zeph-zephyr-protocol");
    expect(moved).toEqual({ asset_uid: (await mappingOf("coingecko", "zephyr-protocol")).asset_uid, rule: "provider_id" });
    expect(moved.asset_uid).not.toBe("zeta-phoenix");
    expect((await api("/data/zeta-phoenix")).status).toBe(200);
  });
});

describe("convergence in storage", () => {
  type Side = { id: string; name: string; symbol: string; rank?: number } | null;
  type Coin = { key: string; price: number; coingecko: Side; coinpaprika: Side; csv: Side };
  const coins = [...(identities as Coin[]), ...(classes as Coin[])];
  const jitter = (s: string) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    return ((h >>> 0) / 2 ** 32 - 0.5) * 0.008;
  };
  const recordsOf = (source: "coingecko" | "coinpaprika" | "csv") =>
    coins.flatMap((c) => {
      const side = c[source];
      if (!side) return [];
      const price = c.price * (1 + jitter(`${source}|${c.key}`));
      // Market cap follows the coin's rank the way real markets do (CSV rows have a market cap but no rank).
      const rank = c.coingecko?.rank ?? c.coinpaprika?.rank ?? 5000;
      const marketCapUsd = (1.8e12 * rank ** -1.4 * price) / c.price;
      return [
        { ...quote(source, side.id, side.symbol, side.name, price, 0), rank: source === "csv" ? null : (side.rank ?? null), marketCapUsd },
      ];
    });
  const keyOf = new Map<string, string>(
    coins.flatMap((c) =>
      (["coingecko", "coinpaprika", "csv"] as const).flatMap((s) => (c[s] ? [[`${s}:${c[s]!.id}`, c.key] as const] : [])),
    ),
  );
  const pages = (qs: SourceQuote[], size: number) => {
    const sorted = [...qs].sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9) || (a.sourceId < b.sourceId ? -1 : 1));
    return Array.from({ length: Math.ceil(sorted.length / size) }, (_, i) => sorted.slice(i * size, (i + 1) * size));
  };
  async function ingest(batches: SourceQuote[][]) {
    for (const table of ["asset_mappings", "assets", "quote_buckets", "history_buckets", "asset_aliases", "leases", "mapping_moves"])
      await env.DB.prepare(`DELETE FROM ${table}`).run();
    await env.KV.delete("map:coingecko");
    await env.KV.delete("map:coinpaprika");
    forgetMapCopies();
    let n = 0;
    for (const batch of batches) await store(batch[0].source, `b${n++}`, batch);
    const mappings = await rows<{ asset_uid: string; source: string; source_id: string }>(
      "SELECT asset_uid, source, source_id FROM asset_mappings",
    );
    const groups = new Map<string, string[]>();
    for (const m of mappings) groups.set(m.asset_uid, [...(groups.get(m.asset_uid) ?? []), `${m.source}:${m.source_id}`]);
    const moves = (await rows<{ n: number }>("SELECT COUNT(*) AS n FROM mapping_moves"))[0].n;
    return { partition: [...groups.values()].map((g) => g.sort().join(" ")).sort(), groups: [...groups.values()], moves };
  }

  it("groups the real and hard-class identities the same from D1 whatever the source and page order, every case right", async () => {
    const gecko = recordsOf("coingecko");
    const paprika = recordsOf("coinpaprika");
    const csv = recordsOf("csv");
    const first = await ingest([paprika, ...pages(gecko, 20), csv]);
    const second = await ingest([csv, ...pages(gecko, 250).reverse(), paprika]);
    expect(second.partition).toEqual(first.partition);
    // Every group holds one coin, and every coin is one group.
    for (const g of first.groups) expect(new Set(g.map((k) => keyOf.get(k))).size, g.join(" ")).toBe(1);
    const split = [...new Set(keyOf.values())].filter((key) => first.groups.filter((g) => g.some((k) => keyOf.get(k) === key)).length > 1);
    expect(split).toEqual([]);
    expect(first.groups.length).toBe(new Set(keyOf.values()).size);
    expect(first.moves).toBeGreaterThan(0);
  });
});
