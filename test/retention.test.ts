import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { dbFor } from "../src/db/client";
import { deleteOldSnapshots, publishReadModel, SNAPSHOT_KEY } from "../src/db/read-model";
import { rawPayloads, runParts } from "../src/db/schema";
import { pruneRawArchive } from "../src/ingest/retention";
import { purgeReadCache, READ_CACHE_TAG } from "../src/lib/http-cache";
import { rows } from "./helpers";

describe("raw archive retention", () => {
  it("deletes payloads older than RAW_RETENTION_DAYS from R2 with their index rows, and keeps newer ones", async () => {
    const db = dbFor(env.DB);
    const now = Date.parse("2026-11-24T00:00:00Z");
    const day = 86_400_000;
    const put = async (id: string, daysAgo: number) => {
      const key = `raw/coingecko/test/${id}.json`;
      await env.BUCKET.put(key, "[]");
      await db.insert(rawPayloads).values({
        ...{ id, source: "coingecko", runId: "ret-run", key, bytes: 2, records: 0, contentType: "application/json" },
        fetchedAt: new Date(now - daysAgo * day).toISOString(),
      });
      return key;
    };
    const old = await put("ret-old", 31);
    const recent = await put("ret-recent", 29);
    expect(await pruneRawArchive(db, env.BUCKET, 30, now)).toEqual({ raw_payloads_deleted: 1 });
    expect(await env.BUCKET.head(old)).toBeNull();
    expect(await env.BUCKET.head(recent)).not.toBeNull();
    expect(await rows("SELECT id FROM raw_payloads WHERE run_id = 'ret-run'")).toEqual([{ id: "ret-recent" }]);
    expect(await pruneRawArchive(db, env.BUCKET, 30, now)).toEqual({ raw_payloads_deleted: 0 });
  });

  it("keeps an old payload that a recent part still reads (an unchanged body is archived once)", async () => {
    const db = dbFor(env.DB);
    const now = Date.parse("2026-11-24T00:00:00Z");
    const key = "raw/coingecko/test/ret-reused.json";
    await env.BUCKET.put(key, "[]");
    await db.insert(rawPayloads).values({
      ...{ id: "ret-reused", source: "coingecko", runId: "ret-run-2", key, bytes: 2, records: 0, contentType: "application/json" },
      fetchedAt: new Date(now - 40 * 86_400_000).toISOString(),
    });
    await db.insert(runParts).values({
      ...{ runId: "ret-run-3", part: "page-1", fetched: 0, accepted: 0, rejected: 0, written: 0, rawId: "ret-reused" },
      finishedAt: new Date(now - 86_400_000).toISOString(),
    });
    expect(await pruneRawArchive(db, env.BUCKET, 30, now)).toEqual({ raw_payloads_deleted: 0 });
    expect(await env.BUCKET.head(key)).not.toBeNull();
  });
});

describe("read model publishing", () => {
  it("stores each newer version over the one before, as the one snapshot object", async () => {
    const db = dbFor(env.DB);
    const current = async () => (await rows<{ version: number; key: string }>("SELECT version, key FROM read_model WHERE id = 1"))[0];
    const storedVersion = async () => Number((await env.BUCKET.head(SNAPSHOT_KEY))?.customMetadata?.version);
    await publishReadModel(db, env.BUCKET);
    const first = await current();
    expect(await storedVersion()).toBe(first.version);
    await publishReadModel(db, env.BUCKET);
    const second = await current();
    expect(second.version).toBeGreaterThan(first.version);
    expect(second.key).toBe(SNAPSHOT_KEY);
    expect(await storedVersion()).toBe(second.version);
  });

  it("deletes, in the daily retention, the per-version snapshots earlier builds stored, and nothing else", async () => {
    await publishReadModel(dbFor(env.DB), env.BUCKET);
    for (const key of ["read-model/v3.bin", "read-model/v4.json"]) await env.BUCKET.put(key, "old");
    expect(await deleteOldSnapshots(env.BUCKET)).toEqual({ old_snapshots_deleted: 2 });
    const listed = await env.BUCKET.list({ prefix: "read-model/" });
    expect(listed.objects.map((o) => o.key)).toEqual([SNAPSHOT_KEY]);
  });
});

describe("edge cache purge", () => {
  it("purges the read tag where the runtime has Workers Cache, and is skipped where it has none", async () => {
    const purged: unknown[] = [];
    const ctx = { cache: { purge: async (o: unknown) => purged.push(o) } } as unknown as ExecutionContext;
    expect(await purgeReadCache(ctx)).toBe(true);
    expect(purged).toEqual([{ tags: [READ_CACHE_TAG] }]);
    expect(await purgeReadCache(undefined)).toBe(false);
    expect(await purgeReadCache({} as ExecutionContext)).toBe(false);
    const failing = { cache: { purge: async () => Promise.reject(new Error("purge down")) } } as unknown as ExecutionContext;
    expect(await purgeReadCache(failing)).toBe(false);
  });
});
