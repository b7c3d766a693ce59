import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import { dbFor } from "../src/db/client";
import { DEFAULT_CONSENSUS } from "../src/db/consensus";
import { currentReadModel, forgetReadModel, POINTER_KV_KEY, publishReadModel, SNAPSHOT_KEY } from "../src/db/read-model";
import { rollUpHistory } from "../src/ingest/retention";
import { startSourceRun } from "../src/ingest/start-run";
import { storeNormalised } from "../src/ingest/store-chunk";
import { handleQueue } from "../src/jobs/queue";
import { setClock } from "../src/lib/clock";
import type { SourceQuote } from "../src/sources/source-quote";
import { pinMapping } from "../src/unify/pin";
import { resolveAssets } from "../src/unify/resolve";
import { json, recordingQueue, rows, storedRows, stubUpstream, testServices } from "./helpers";
import { hookedBucket, hookedD1 } from "./interleave";

const MIN = 60_000;
const DAY = 86_400_000;
const HOUR_START = Date.parse("2026-01-05T10:00:00Z");

const quote = (sourceId: string, priceUsd: number, at: number, name = sourceId): SourceQuote => ({
  source: "csv",
  sourceId,
  symbol: sourceId.slice(0, 5).toUpperCase(),
  name,
  rank: null,
  priceUsd,
  marketCapUsd: priceUsd * 1000,
  volume24hUsd: null,
  change24hPct: null,
  circulatingSupply: null,
  totalSupply: null,
  maxSupply: null,
  sourceUpdatedAt: new Date(at).toISOString(),
});

let parts = 0;
/** Stores quotes as one CSV part of its own run, the way every page and block is stored. */
const store = (db: D1Database, quotes: SourceQuote[]) =>
  storeNormalised(dbFor(db), env.KV, {
    source: "csv",
    runId: `conc-run-${++parts}`,
    part: "p1",
    fetched: quotes.length,
    normalised: { quotes, rejected: [] },
  });

const hourPoints = (sourceId: string) =>
  storedRows<{ at: string; price_usd: number; market_cap_usd: number; resolution: string }>(
    "SELECT at, price_usd, market_cap_usd, resolution FROM quote_history WHERE source = 'csv' AND source_id = ? ORDER BY resolution, at",
    sourceId,
  );

const storedQuote = async (sourceId: string) =>
  (
    await storedRows<{ price_usd: number; source_updated_at: string; asset_uid: string }>(
      "SELECT price_usd, source_updated_at, asset_uid FROM source_quotes WHERE source = 'csv' AND source_id = ?",
      sourceId,
    )
  )[0];

afterEach(() => setClock(() => Date.now()));

describe("roll-ups keep every point's weight", () => {
  it("an hour rolled up in two passes gives the mean of all its points, as one pass would", async () => {
    await store(env.DB, [quote("weight-a", 100, HOUR_START + 5 * MIN)]);
    await rollUpHistory(dbFor(env.DB), HOUR_START + 30 * DAY);
    // A later point of the same hour arrives after the hour was rolled up.
    await store(env.DB, [quote("weight-a", 200, HOUR_START + 20 * MIN)]);
    await rollUpHistory(dbFor(env.DB), HOUR_START + 30 * DAY);
    expect(await hourPoints("weight-a")).toEqual([
      { at: new Date(HOUR_START).toISOString(), price_usd: 150, market_cap_usd: 150_000, resolution: "hour" },
    ]);
    // Days too: two hourly passes into one day weigh 2 and 1 raw points, not one point each.
    await store(env.DB, [quote("weight-a", 450, HOUR_START + 3 * 60 * MIN)]);
    await rollUpHistory(dbFor(env.DB), HOUR_START + 30 * DAY);
    await rollUpHistory(dbFor(env.DB), HOUR_START + 200 * DAY);
    expect(await hourPoints("weight-a")).toEqual([
      { at: "2026-01-05T00:00:00.000Z", price_usd: 250, market_cap_usd: 250_000, resolution: "day" },
    ]);
    // Running it again changes nothing.
    await rollUpHistory(dbFor(env.DB), HOUR_START + 200 * DAY);
    expect((await hourPoints("weight-a")).map((p) => p.price_usd)).toEqual([250]);
  });

  it("an id listed at several times in one payload keeps each time as a point and the newest as its quote, in any row order", async () => {
    const at = (m: number) => HOUR_START + m * MIN;
    await store(env.DB, [quote("series-a", 30, at(30)), quote("series-a", 10, at(10)), quote("series-a", 20, at(20))]);
    expect((await storedQuote("series-a")).price_usd).toBe(30);
    expect((await hourPoints("series-a")).map((p) => p.price_usd)).toEqual([10, 20, 30]);
    // The same payload again, and an older row later, add nothing: points only follow the quote forward.
    await store(env.DB, [quote("series-a", 20, at(20)), quote("series-a", 30, at(30)), quote("series-a", 5, at(5))]);
    expect((await hourPoints("series-a")).map((p) => p.price_usd)).toEqual([10, 20, 30]);
  });

  it("a point stored while a roll-up is reading its hour is rolled up, never deleted unread", async () => {
    await store(env.DB, [quote("weight-b", 100, HOUR_START + 5 * MIN)]);
    let raced = false;
    const racing = hookedD1(env.DB, async ({ sql }) => {
      // Right after the roll-up has listed the raw rows that are due, a tick stores one more point there.
      if (raced || !sql.some((s) => s.includes('"history_buckets"') && s.includes('"period_start" <='))) return;
      raced = true;
      await store(env.DB, [quote("weight-b", 200, HOUR_START + 20 * MIN)]);
    });
    await rollUpHistory(dbFor(racing), HOUR_START + 30 * DAY);
    expect(raced).toBe(true);
    await rollUpHistory(dbFor(env.DB), HOUR_START + 30 * DAY);
    expect((await hourPoints("weight-b")).map((p) => [p.resolution, p.price_usd])).toEqual([["hour", 150]]);
  });
});

describe("leases fence their writes", () => {
  it("a quotes writer that stalled past its lease cannot commit over the newer quote stored meanwhile", async () => {
    const t0 = Date.parse("2026-02-01T00:00:00Z");
    setClock(() => t0);
    await store(env.DB, [quote("fenced-a", 10, t0 - 10 * MIN)]);
    let stalled = false;
    const stalling = hookedD1(env.DB, async ({ sql, kind }) => {
      // The writer has taken the quotes lease and read the buckets; it stalls past the lease's TTL,
      // and another writer takes the lease over and stores a newer quote.
      // The quotes lease's batch reads the buckets; the unify lease's (which reads the map) does not count.
      const took =
        kind === "batch" &&
        sql[0].includes("INSERT INTO leases") &&
        sql.some((s) => s.includes('"quote_buckets"')) &&
        !sql.some((s) => s.includes('"asset_mappings"'));
      if (stalled || !took) return;
      stalled = true;
      setClock(() => t0 + 2 * MIN);
      await store(env.DB, [quote("fenced-a", 30, t0 - 1 * MIN)]);
    });
    const late = await store(stalling, [quote("fenced-a", 20, t0 - 5 * MIN)]).catch((e: Error) => e);
    expect(stalled).toBe(true);
    expect(late).toBeInstanceOf(Error);
    expect(String(late)).toMatch(/lease quotes:csv was lost/);
    expect(await storedQuote("fenced-a")).toMatchObject({ price_usd: 30, source_updated_at: new Date(t0 - MIN).toISOString() });
    // Its history point is not written either; the retry (a queue redelivery) then stores it.
    expect((await hourPoints("fenced-a")).map((p) => p.price_usd)).toEqual([10, 30]);
    await store(env.DB, [quote("fenced-a", 20, t0 - 5 * MIN)]);
    expect((await storedQuote("fenced-a")).price_usd).toBe(30);
  });

  it("two deciders never hand out one slot: the one that stalled past the unify lease fails and decides again", async () => {
    const t0 = Date.parse("2026-02-02T00:00:00Z");
    setClock(() => t0);
    let stalled = false;
    const stalling = hookedD1(env.DB, async ({ sql, kind }) => {
      // The decider has taken the unify lease with its reads (the next free slot among them) and stalls.
      const took = kind === "batch" && sql[0].includes("INSERT INTO leases") && sql.some((s) => s.includes("slot + 1 AS next"));
      if (stalled || !took) return;
      stalled = true;
      setClock(() => t0 + 2 * MIN);
      await resolveAssets(dbFor(env.DB), env.KV, "csv", [quote("slot-y", 5, t0, "Slot Y Coin")]);
    });
    const first = await resolveAssets(dbFor(stalling), env.KV, "csv", [quote("slot-x", 7, t0, "Slot X Coin")]).catch(() => null);
    expect(stalled).toBe(true);
    const mapped = async () =>
      new Map(
        (await rows<{ source_id: string; slot: number }>("SELECT source_id, slot FROM asset_mappings WHERE source = 'csv'")).map((m) => [
          m.source_id,
          m.slot,
        ]),
      );
    // Whatever the stalled decider answered must be stored: an answered slot without its mapping
    // would put two coins' quotes and history under one slot.
    for (const r of first?.values() ?? []) expect([...(await mapped()).values()]).toContain(r.slot);
    const retried = first ?? (await resolveAssets(dbFor(env.DB), env.KV, "csv", [quote("slot-x", 7, t0, "Slot X Coin")]));
    const slots = await mapped();
    expect(slots.get("slot-x")).toBe([...retried.values()][0].slot);
    expect(slots.get("slot-x")).not.toBe(slots.get("slot-y"));
  });
});

describe("a lost lease is a retried error", () => {
  it("a page whose quotes lease was taken over mid-write is retried, then stored and counted once", async () => {
    const { s } = testServices();
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("the run did not start");
    const runId = start.run.runId;
    const page = geckoPage1.slice(0, 3).map((c) => ({ ...c, id: `lease-${c.id}`, name: `Lease ${c.name}`, symbol: `l${c.symbol}` }));
    const up = stubUpstream(() => json(page));
    const { queue } = recordingQueue();
    let stolen = false;
    const stealing = hookedD1(env.DB, async ({ sql, kind }) => {
      const took =
        kind === "batch" &&
        sql[0].includes("INSERT INTO leases") &&
        sql.some((q) => q.includes('"quote_buckets"')) &&
        !sql.some((q) => q.includes('"asset_mappings"'));
      if (stolen || !took) return;
      stolen = true;
      // The page stalls past its TTL and another writer takes the lease before it writes.
      await env.DB.prepare("UPDATE leases SET holder = 'another-writer' WHERE name = 'quotes:coingecko'").run();
    });
    const message = {
      id: "page-1",
      timestamp: new Date(),
      attempts: 1,
      body: { type: "fetch_page", run_id: runId, source: "coingecko", page: 1 },
    };
    const first = createMessageBatch("coinfuse-jobs", [message]);
    await handleQueue(first, { ...env, DB: stealing, JOBS: queue } as never, up.fetch);
    expect((await getQueueResult(first, createExecutionContext())).retryMessages.map((m) => m.msgId)).toEqual(["page-1"]);
    expect(await rows("SELECT part FROM run_parts WHERE run_id = ?", runId)).toEqual([]);
    await env.DB.prepare("DELETE FROM leases WHERE name = 'quotes:coingecko'").run();
    const again = createMessageBatch("coinfuse-jobs", [{ ...message, attempts: 2 }]);
    await handleQueue(again, { ...env, JOBS: queue } as never, up.fetch);
    expect((await getQueueResult(again, createExecutionContext())).explicitAcks).toEqual(["page-1"]);
    expect(await rows("SELECT accepted, written FROM run_parts WHERE run_id = ?", runId)).toEqual([{ accepted: 3, written: 3 }]);
    const stored = await storedRows<{ n: number }>("SELECT COUNT(*) AS n FROM source_quotes WHERE source_id LIKE 'lease-%'");
    expect(stored).toEqual([{ n: 3 }]);
  });
});

describe("a pin commits whole", () => {
  it("a pin whose quote rewrite fails leaves the mapping and the stored quote as they were", async () => {
    const t0 = Date.parse("2026-02-03T00:00:00Z");
    await store(env.DB, [quote("pin-from", 3, t0, "Pin From Coin"), quote("pin-target", 900, t0, "Pin Target Coin")]);
    const target = (await storedQuote("pin-target")).asset_uid;
    const failing = hookedD1(env.DB, {
      before: ({ sql, kind }) => {
        if (kind === "batch" && sql.some((s) => s.includes('INSERT INTO "quote_buckets"'))) throw new Error("injected D1 failure");
      },
    });
    await expect(
      pinMapping(dbFor(failing), env.BUCKET, DEFAULT_CONSENSUS, { assetUid: target, source: "csv", sourceId: "pin-from" }),
    ).rejects.toThrow("injected");
    const mapping = async () =>
      (await rows<{ asset_uid: string; pinned: number }>("SELECT asset_uid, pinned FROM asset_mappings WHERE source_id = 'pin-from'"))[0];
    // The mapping and the stored quote agree: both unchanged.
    expect((await mapping()).asset_uid).toBe((await storedQuote("pin-from")).asset_uid);
    expect((await mapping()).pinned).toBe(0);
    await pinMapping(dbFor(env.DB), env.BUCKET, DEFAULT_CONSENSUS, { assetUid: target, source: "csv", sourceId: "pin-from" });
    expect(await mapping()).toEqual({ asset_uid: target, pinned: 1 });
    expect((await storedQuote("pin-from")).asset_uid).toBe(target);
  });
});

describe("the stored snapshot only moves forward", () => {
  const published = async () => (await rows<{ version: number }>("SELECT version FROM read_model WHERE id = 1"))[0].version;
  const stored = async () => Number((await env.BUCKET.head(SNAPSHOT_KEY))?.customMetadata?.version);

  /** A claims a version; B claims the next and publishes while A is at `pause` (A's head of the stored snapshot, or A's put). */
  async function newerPublishesDuring(pause: "afterHead" | "afterPut") {
    await store(env.DB, [quote("publish-a", 1, Date.parse("2026-02-04T00:00:00Z"))]);
    await publishReadModel(dbFor(env.DB), env.BUCKET);
    let b: Awaited<ReturnType<typeof publishReadModel>> | undefined;
    const bucketA = hookedBucket(env.BUCKET, {
      [pause]: async () => {
        b ??= await publishReadModel(dbFor(env.DB), env.BUCKET, DEFAULT_CONSENSUS, env.KV);
      },
    });
    const a = await publishReadModel(dbFor(env.DB), bucketA, DEFAULT_CONSENSUS, env.KV);
    return { a, b: b! };
  }

  it("a publish whose view of the stored snapshot is out of date stores nothing over the newer one (compare-and-swap)", async () => {
    const { a, b } = await newerPublishesDuring("afterHead");
    expect(a).toBeNull();
    expect(await stored()).toBe(b.version);
    expect(await published()).toBe(b.version);
    forgetReadModel();
    expect((await currentReadModel(dbFor(env.DB), env.BUCKET, env.KV))?.version).toBe(b.version);
  });

  it("an older publish that stored first is neither named nor fetched once the newer one is", async () => {
    const { a, b } = await newerPublishesDuring("afterPut");
    expect(a).toBeNull();
    expect(await stored()).toBe(b.version);
    expect(await published()).toBe(b.version);
    expect(JSON.parse((await env.KV.get(POINTER_KV_KEY))!)).toEqual({ version: b.version });
    forgetReadModel();
    expect((await currentReadModel(dbFor(env.DB), env.BUCKET, env.KV))?.version).toBe(b.version);
  });
});
