import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { dbFor } from "../src/db/client";
import { carryLegacyTables, forgetLegacyCarried } from "../src/db/legacy";
import { publishReadModel } from "../src/db/read-model";
import { api, rows, unpackStorage } from "./helpers";

/** Drops every table and index, then applies the given migrations' statements in order. */
async function rebuildWith(migrations: typeof env.TEST_MIGRATIONS) {
  const objects = await rows<{ type: string; name: string }>(
    "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name != 'd1_migrations'",
  );
  for (const o of objects.filter((x) => x.type === "table")) await env.DB.prepare(`DROP TABLE IF EXISTS "${o.name}"`).run();
  for (const m of migrations) for (const q of m.queries) await env.DB.prepare(q).run();
}

const T0 = "2026-11-20T10:00:00.000Z";

describe("migration from the per-coin layout", () => {
  it("carries quotes and history into the packed buckets with nothing lost, then drops the old tables", async () => {
    const before = env.TEST_MIGRATIONS.filter((m) => m.name < "0003");
    const packed = env.TEST_MIGRATIONS.filter((m) => m.name >= "0003");
    await rebuildWith(before);
    // A database as the previous build left it: two sources of one coin, a second coin, raw and hourly history.
    const db = env.DB;
    await db.batch([
      db
        .prepare(`INSERT INTO assets (asset_uid, symbol, name, rank, price_usd, sources, source_ids, created_at, updated_at)
        VALUES ('oldcoin', 'OLD', 'Old Coin', 1, 10, '["coingecko","coinpaprika"]', '{}', ?1, ?1), ('second', 'SEC', 'Second', 2, 3, '["csv"]', '{}', ?1, ?1)`)
        .bind(T0),
      db
        .prepare(`INSERT INTO asset_mappings (source, source_id, asset_uid, rule, pinned, symbol_key, name_key, id_key, name, created_at, updated_at) VALUES
        ('coingecko', 'oldcoin', 'oldcoin', 'new_asset', 0, 'old', 'oldcoin', 'oldcoin', 'Old Coin', ?1, ?1),
        ('coinpaprika', 'old-old-coin', 'oldcoin', 'provider_id', 0, 'old', 'oldcoin', 'oldcoin', 'Old Coin', ?1, ?1),
        ('csv', 'sec:second', 'second', 'new_asset', 0, 'sec', 'second', 'second', 'Second', ?1, ?1)`)
        .bind(T0),
      db
        .prepare(`INSERT INTO source_quotes (source, source_id, asset_uid, symbol, name, rank, price_usd, market_cap_usd, volume_24h_usd,
        change_24h_pct, circulating_supply, total_supply, max_supply, source_updated_at, ingested_at, run_id) VALUES
        ('coingecko', 'oldcoin', 'oldcoin', 'OLD', 'Old Coin', 1, 10, 1000, 50, 1.5, 100, 100, NULL, ?1, ?1, 'run_old'),
        ('coinpaprika', 'old-old-coin', 'oldcoin', 'OLD', 'Old Coin', 1, 10.2, 1020, 51, 1.4, 100, 100, NULL, ?1, ?1, 'run_old'),
        ('csv', 'sec:second', 'second', 'SEC', 'Second', 2, 3, NULL, NULL, NULL, NULL, NULL, NULL, ?1, ?1, 'run_old')`)
        .bind(T0),
      db
        .prepare(`INSERT INTO quote_history (source, source_id, resolution, at, asset_uid, price_usd, market_cap_usd, volume_24h_usd) VALUES
        ('coingecko', 'oldcoin', 'raw', '2026-11-20T09:55:00.000Z', 'oldcoin', 9.5, 950, 40),
        ('coingecko', 'oldcoin', 'raw', ?1, 'oldcoin', 10, 1000, 50),
        ('coinpaprika', 'old-old-coin', 'hour', '2026-11-01T00:00:00.000Z', 'oldcoin', 8, NULL, NULL),
        ('csv', 'sec:second', 'raw', ?1, 'second', 3, NULL, NULL)`)
        .bind(T0),
    ]);
    await applyMigrations(packed);

    forgetLegacyCarried();
    const carried = await carryLegacyTables(dbFor(env.DB));
    expect(carried).toEqual({ quotes: 3, points: 4, done: true });
    const tables = await rows<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'legacy_%'");
    expect(tables).toEqual([]);

    await unpackStorage();
    expect(await rows("SELECT source, source_id, asset_uid, price_usd, market_cap_usd, run_id FROM source_quotes ORDER BY source")).toEqual(
      [
        { source: "coingecko", source_id: "oldcoin", asset_uid: "oldcoin", price_usd: 10, market_cap_usd: 1000, run_id: "run_old" },
        {
          source: "coinpaprika",
          source_id: "old-old-coin",
          asset_uid: "oldcoin",
          price_usd: 10.2,
          market_cap_usd: 1020,
          run_id: "run_old",
        },
        { source: "csv", source_id: "sec:second", asset_uid: "second", price_usd: 3, market_cap_usd: null, run_id: "run_old" },
      ],
    );
    await publishReadModel(dbFor(env.DB), env.BUCKET);
    const detail = await (await api("/data/oldcoin")).json<{ data: { price_usd: number; sources: string[] } }>();
    expect(detail.data).toMatchObject({ price_usd: 10.1, sources: ["coingecko", "coinpaprika"] });
    const history = await (await api("/data/oldcoin/history")).json<{
      data: { source: string; at: string; price_usd: number; resolution: string }[];
    }>();
    expect(history.data.map((p) => [p.source, p.at, p.price_usd, p.resolution])).toEqual([
      ["coinpaprika", "2026-11-01T00:00:00.000Z", 8, "hour"],
      ["coingecko", "2026-11-20T09:55:00.000Z", 9.5, "raw"],
      ["coingecko", "2026-11-20T10:00:00.000Z", 10, "raw"],
    ]);
    const list = await (await api("/data?sort=rank")).json<{ data: { asset_uid: string }[] }>();
    expect(list.data.map((a) => a.asset_uid)).toEqual(["oldcoin", "second"]);
    // Done once: a second call finds nothing to carry.
    expect(await carryLegacyTables(dbFor(env.DB))).toEqual({ quotes: 0, points: 0, done: true });
  });
});

describe("migration 0008", () => {
  it("gives every stored bucket the figures of its quotes, to the last digit, whatever the ids", async () => {
    await rebuildWith(env.TEST_MIGRATIONS.filter((m) => m.name < "0008"));
    const quote = (price: number | null, rank: number | null, cap: number | null) => ({
      priceUsd: price,
      rank,
      marketCapUsd: cap,
      name: "n",
    });
    const quotes = { "plain-id": quote(0.1 + 0.2, 7, 123456789012345.6), 'odd"id\\': quote(null, null, 5), sparse: { name: "s" } };
    await env.DB.prepare("INSERT INTO quote_buckets (source, bucket, quotes, updated_at) VALUES ('csv', 0, ?1, ?2), ('csv', 1, '{}', ?2)")
      .bind(JSON.stringify(quotes), T0)
      .run();
    await applyMigrations(env.TEST_MIGRATIONS.filter((m) => m.name >= "0008"));
    const stored = await rows<{ bucket: number; figures: string }>("SELECT bucket, figures FROM quote_buckets ORDER BY bucket");
    expect(stored.map((r) => [r.bucket, JSON.parse(r.figures)])).toEqual([
      [0, { "plain-id": [0.30000000000000004, 7, 123456789012345.6], 'odd"id\\': [null, null, 5], sparse: [null, null, null] }],
      [1, {}],
    ]);
  });
});

async function applyMigrations(migrations: typeof env.TEST_MIGRATIONS) {
  for (const m of migrations) for (const q of m.queries) await env.DB.prepare(q).run();
}
