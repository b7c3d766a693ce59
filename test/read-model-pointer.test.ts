import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { dbFor } from "../src/db/client";
import { DEFAULT_CONSENSUS } from "../src/db/consensus";
import {
  buildSnapshot,
  currentReadModel,
  forgetReadModel,
  POINTER_KV_KEY,
  publishReadModel,
  SNAPSHOT_KEY,
  storeSnapshot,
} from "../src/db/read-model";
import { packSnapshot } from "../src/db/snapshot-format";
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
    // A fresh isolate fetches the stored snapshot, the newest there is, and asks no pointer for it.
    expect((await currentReadModel(counting, env.BUCKET, env.KV))?.version).toBe(first!.version);
    expect(d1Asked).toBe(0);

    // Published by another isolate: the snapshot and the KV pointer only (D1 is not asked for it).
    expect(await storeSnapshot(env.BUCKET, 9999, packSnapshot(await buildSnapshot(db, 9999, DEFAULT_CONSENSUS)))).toBe(true);
    await env.KV.put(POINTER_KV_KEY, JSON.stringify({ version: 9999 }));
    setClock(() => t0 + 2_000);
    expect((await currentReadModel(counting, env.BUCKET, env.KV))?.version).toBe(first!.version);
    setClock(() => t0 + 6_000);
    expect((await currentReadModel(counting, env.BUCKET, env.KV))?.version).toBe(9999);
    for (let s = 12; s < 60; s += 6) {
      setClock(() => t0 + s * 1000);
      await currentReadModel(counting, env.BUCKET, env.KV);
    }
    expect(d1Asked).toBe(0);
    setClock(() => t0 + 61_000);
    await currentReadModel(counting, env.BUCKET, env.KV);
    expect(d1Asked).toBe(1);
  });

  it("serves none before the first publish, and the stored snapshot once one is announced", async () => {
    const db = dbFor(env.DB);
    await env.BUCKET.delete(SNAPSHOT_KEY);
    await env.KV.delete(POINTER_KV_KEY);
    const t0 = Date.now();
    setClock(() => t0);
    forgetReadModel();
    expect(await currentReadModel(db, env.BUCKET, env.KV)).toBeNull();
    const published = await publishReadModel(db, env.BUCKET, DEFAULT_CONSENSUS, env.KV);
    forgetReadModel();
    setClock(() => t0);
    await env.BUCKET.delete(SNAPSHOT_KEY);
    expect(await currentReadModel(db, env.BUCKET, env.KV)).toBeNull();
    expect(
      await storeSnapshot(env.BUCKET, published!.version, packSnapshot(await buildSnapshot(db, published!.version, DEFAULT_CONSENSUS))),
    ).toBe(true);
    setClock(() => t0 + 6_000);
    expect((await currentReadModel(db, env.BUCKET, env.KV))?.version).toBe(published!.version);
  });

  it("takes a failed read of the object's body for R2's, not the snapshot's: the next request fetches it again", async () => {
    const db = dbFor(env.DB);
    const published = await publishReadModel(db, env.BUCKET, DEFAULT_CONSENSUS, env.KV);
    let failing = true;
    const flaky = new Proxy(env.BUCKET, {
      get: (target, prop) =>
        prop === "get"
          ? async (...a: Parameters<R2Bucket["get"]>) => {
              const object = await target.get(...a);
              if (!object || !failing) return object;
              failing = false;
              return { ...object, size: object.size, arrayBuffer: () => Promise.reject(new Error("the stream was cut")) };
            }
          : Reflect.get(target, prop).bind(target),
    });
    forgetReadModel();
    await expect(currentReadModel(db, flaky, env.KV)).rejects.toThrow(/the stream was cut/);
    expect((await currentReadModel(db, flaky, env.KV))?.version).toBe(published!.version);
  });

  it("keeps its copy when the stored snapshot is in another format, and fetches that one no more", async () => {
    const db = dbFor(env.DB);
    const published = await publishReadModel(db, env.BUCKET, DEFAULT_CONSENSUS, env.KV);
    const other = packSnapshot(await buildSnapshot(db, published!.version + 1, DEFAULT_CONSENSUS));
    other.set(new TextEncoder().encode("CFS3"), 0);
    await env.BUCKET.put(SNAPSHOT_KEY, other, { customMetadata: { version: String(published!.version + 1) } });
    await env.KV.put(POINTER_KV_KEY, JSON.stringify({ version: published!.version + 1 }));
    let fetched = 0;
    const counting = new Proxy(env.BUCKET, {
      get: (target, prop) =>
        prop === "get"
          ? (...a: Parameters<R2Bucket["get"]>) => {
              fetched++;
              return target.get(...a);
            }
          : Reflect.get(target, prop).bind(target),
    });
    const t0 = Date.now();
    for (const s of [10, 20, 30]) {
      setClock(() => t0 + s * 1000);
      expect((await currentReadModel(db, counting, env.KV))?.version).toBe(published!.version);
    }
    expect(fetched).toBe(1);
    forgetReadModel();
    expect(await currentReadModel(db, counting, env.KV)).toBeNull();
    expect(fetched).toBe(2);
  });
});
