import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { dbFor } from "../src/db/client";
import { DEFAULT_CONSENSUS } from "../src/db/consensus";
import { buildSnapshot, currentReadModel, forgetReadModel, POINTER_KV_KEY, publishReadModel } from "../src/db/read-model";
import { storeNormalised } from "../src/ingest/store-chunk";
import { setClock } from "../src/lib/clock";
import { hookedD1 } from "./interleave";

afterEach(() => setClock(() => Date.now()));

describe("how an isolate learns of a new snapshot", () => {
  it("reads the KV pointer every few seconds and D1 once a minute at most", async () => {
    const db = dbFor(env.DB);
    const quote = { source: "csv" as const, sourceId: "ptr", symbol: "PTR", name: "Pointer Coin", rank: null, priceUsd: 2 };
    const none = {
      marketCapUsd: null,
      volume24hUsd: null,
      change24hPct: null,
      circulatingSupply: null,
      totalSupply: null,
      maxSupply: null,
    };
    await storeNormalised(db, env.KV, {
      ...{ source: "csv", runId: "ptr-run", part: "p", fetched: 1 },
      normalised: { quotes: [{ ...quote, ...none, sourceUpdatedAt: "2026-03-01T00:00:00.000Z" }], rejected: [] },
    });
    const first = await publishReadModel(db, env.BUCKET, DEFAULT_CONSENSUS, env.KV);
    let d1Asked = 0;
    const counting = dbFor(
      hookedD1(env.DB, ({ sql }) => {
        if (sql.some((q) => q.includes('from "read_model"'))) d1Asked++;
      }),
    );
    const t0 = Date.parse("2026-03-01T00:00:00Z");
    setClock(() => t0);
    forgetReadModel();
    expect((await currentReadModel(counting, env.BUCKET, env.KV))?.version).toBe(first!.version);
    expect(d1Asked).toBe(1);

    // Published by another isolate: the snapshot and the KV pointer only (D1 is not asked for it).
    const key = "read-model/v9999.bin";
    await env.BUCKET.put(key, await buildSnapshot(db, 9999, DEFAULT_CONSENSUS));
    await env.KV.put(POINTER_KV_KEY, JSON.stringify({ version: 9999, key }));
    setClock(() => t0 + 2_000);
    expect((await currentReadModel(counting, env.BUCKET, env.KV))?.version).toBe(first!.version);
    setClock(() => t0 + 6_000);
    expect((await currentReadModel(counting, env.BUCKET, env.KV))?.version).toBe(9999);
    for (let s = 12; s < 60; s += 6) {
      setClock(() => t0 + s * 1000);
      await currentReadModel(counting, env.BUCKET, env.KV);
    }
    expect(d1Asked).toBe(1);
    setClock(() => t0 + 61_000);
    await currentReadModel(counting, env.BUCKET, env.KV);
    expect(d1Asked).toBe(2);
  });

  it("falls back to D1 when the object the KV pointer names is gone", async () => {
    const db = dbFor(env.DB);
    const published = await publishReadModel(db, env.BUCKET, DEFAULT_CONSENSUS, env.KV);
    await env.KV.put(POINTER_KV_KEY, JSON.stringify({ version: published!.version + 5, key: "read-model/v-missing.bin" }));
    forgetReadModel();
    expect((await currentReadModel(db, env.BUCKET, env.KV))?.version).toBe(published!.version);
  });

  it("keeps its copy when the pointer names a snapshot in the previous format (CFS2), and serves none without one", async () => {
    const db = dbFor(env.DB);
    const published = await publishReadModel(db, env.BUCKET, DEFAULT_CONSENSUS, env.KV);
    const old = await buildSnapshot(db, published!.version + 1, DEFAULT_CONSENSUS);
    old.set(new TextEncoder().encode("CFS2"), 0);
    const key = `read-model/v${published!.version + 1}.bin`;
    await env.BUCKET.put(key, old);
    await env.KV.put(POINTER_KV_KEY, JSON.stringify({ version: published!.version + 1, key }));
    const t0 = Date.now();
    setClock(() => t0 + 10_000);
    expect((await currentReadModel(db, env.BUCKET, env.KV))?.version).toBe(published!.version);
    forgetReadModel();
    expect(await currentReadModel(db, env.BUCKET, env.KV)).toBeNull();
  });
});
