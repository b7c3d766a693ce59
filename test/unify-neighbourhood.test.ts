import { env } from "cloudflare:workers";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { beforeEach, describe, expect, it } from "vitest";
import type { SourceQuote } from "../src/sources/source-quote";
import { forgetMapCopies } from "../src/unify/map-cache";
import { decide, type KnownMapping, matchKey, reachOf } from "../src/unify/matcher";
import { candidatesQuery } from "../src/unify/resolve";
import { clearTables, marketQuote, rows, storeQuotes } from "./helpers";
import { gecko, paprika } from "./identities";

/** What a batch reads and decides again: what it reaches, not what shares its ticker. */

const known = (r: ReturnType<typeof gecko>, assetUid: string, createdAt = "1"): KnownMapping => ({ ...r, assetUid, createdAt });

describe("the part of the map a batch reaches", () => {
  const zeph = paprika("zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol", 2.41, 400);
  const twin = gecko("zephyr-protocol", "zeph", "Zephyr Protocol", 2.412, 400);
  // CoinGecko's earlier ZEPH look-alikes: one priced like the coin (a pair), the rest far off (vetoed).
  const lookalike = gecko("zeta-phoenix", "zeph", "Zeta Phoenix", 2.446, 388);
  const crowd = Array.from({ length: 20 }, (_, i) => gecko(`zeph-${i}`, "zeph", `Zeph Meme ${i}`, 10 ** -(i % 6) * 0.001, 3000 + i));

  it("goes through scored pairs and shared assets, never through a shared ticker alone", () => {
    const mapped = [known(zeph, "zephyr-protocol"), known(lookalike, "zephyr-protocol"), ...crowd.map((c) => known(c, c.sourceId))];
    const reached = reachOf([twin], mapped);
    expect([...reached].sort()).toEqual([matchKey(zeph), matchKey(lookalike), matchKey(twin)].sort());
  });

  it("leaves what the batch does not reach where it is, even what grouping it again would move", () => {
    // Stored apart although the pair would join them (decided before one of them had figures):
    // a record that reaches neither does not decide them again.
    const p = known(paprika("qrs-quorus", "QRS", "Quorus", 1.5, 700), "quorus");
    const g = known(gecko("quorus", "qrs", "Quorus", 1.5, 700), "quorus-qrs");
    const unrelated = gecko("qrs-moon", "qrs", "QRS Moon", 0.00002, 9000);
    expect(decide([unrelated], [p, g]).moves).toEqual([]);
    // The same pair, reached through a record, is decided again.
    const twinOfP = paprika("qrs-quorus-2", "QRS", "Quorus", 1.5, 701);
    expect(decide([twinOfP], [p, g]).moves.length).toBeGreaterThan(0);
  });
});

const quote = marketQuote;

const store = storeQuotes;

describe("the neighbourhood read", () => {
  beforeEach(async () => {
    await clearTables("asset_mappings", "assets", "quote_buckets", "history_buckets", "asset_aliases", "leases", "mapping_moves");
  });
  const dialect = new SQLiteAsyncDialect({ casing: "snake_case" });
  async function firstRing(batch: SourceQuote[]) {
    const q = dialect.sqlToQuery(candidatesQuery(batch));
    const res = await env.DB.prepare(q.sql)
      .bind(...q.params)
      .all<{ source: string; source_id: string; figures: string | null }>();
    return res.results;
  }

  it("reads only the other sources' mappings a page could pair with, with their figures, however large the crowd on its ticker", async () => {
    forgetMapCopies();
    await store("coinpaprika", "p", [
      quote("coinpaprika", "pepe-pepe", "PEPE", "Pepe", 0.00001, 40),
      // Priced 50,000 times higher: the price veto leaves it out, whatever the names say.
      quote("coinpaprika", "pepe-pepe-classic", "PEPE", "Pepe Classic", 0.5, 900),
    ]);
    const crowd = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => quote("coingecko", `pepe-${from + i}`, "pepe", "Pepe", 0.00001 * 1.001 ** i, 1000 + from + i));
    await store("coingecko", "g1", crowd(2, 60));
    const ring = await firstRing([quote("coingecko", "pepe-moon", "pepe", "Pepe Moon", 0.0000104, 4000)]);

    expect(ring.map((r) => [r.source, r.source_id, JSON.parse(r.figures!)])).toEqual([["coinpaprika", "pepe-pepe", [0.00001, 40, null]]]);
    expect(await rows("SELECT COUNT(*) AS n FROM asset_mappings WHERE source = 'coingecko'")).toEqual([{ n: 60 }]);
  });

  it("reads the figures of an id that no JSON path can quote, to the last digit", async () => {
    forgetMapCopies();
    await store("coinpaprika", "p", [quote("coinpaprika", 'odd-"quoted"\\id', "ODD", "Odd Coin", 0.12345678901234566, 7)]);
    const ring = await firstRing([quote("coingecko", "odd-coin", "odd", "Odd Coin", 0.1234, 8)]);
    expect(ring.map((r) => [r.source_id, JSON.parse(r.figures!)])).toEqual([['odd-"quoted"\\id', [0.12345678901234566, 7, null]]]);
  });
});
