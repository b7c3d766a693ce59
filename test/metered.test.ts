import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { dbFor } from "../src/db/client";
import { forgetCurrencies } from "../src/db/queries/currencies";
import { forgetReadModel, publishReadModel } from "../src/db/read-model";
import type { Env } from "../src/env";
import { registerUpload } from "../src/ingest/csv-sweep";
import { startSourceRun } from "../src/ingest/start-run";
import type { JobMessage } from "../src/jobs/messages";
import { currentMeter, Meter, noUsage, type Usage } from "../src/lib/usage";
import { servicesFor } from "../src/services";
import { apiWith, drain, json, metaCountingD1, recordingQueue, rows, stubUpstream, TOKEN } from "./helpers";

type Counted = { metered: Usage; unmetered: Usage; unmeteredKinds: Set<string> };

/**
 * Bindings that count what reaches the real ones, below the worker's own meter: D1 rows as the
 * binding's meta reports them, R2/KV/queue calls by kind. Each call is sorted by whether a meter was
 * current when it reached the binding (the only calls made with none are the usage records themselves).
 */
function countingEnv(base: Env) {
  const counted: Counted = { metered: noUsage(), unmetered: noUsage(), unmeteredKinds: new Set() };
  const add = (kind: string, key: keyof Usage, n: number) => {
    const into = currentMeter() ? counted.metered : counted.unmetered;
    if (!currentMeter()) counted.unmeteredKinds.add(kind);
    into[key] += n;
  };
  const d1 = (meta: D1Meta | undefined) => {
    add("d1", "d1_rows_read", meta?.rows_read ?? 0);
    add("d1", "d1_rows_written", meta?.rows_written ?? 0);
  };
  const DB = metaCountingD1(base.DB, d1);
  const calls = (name: string, target: object, kinds: Record<string, keyof Usage | null>) =>
    new Proxy(target, {
      get(t, prop) {
        const v = Reflect.get(t, prop);
        if (typeof v !== "function") return v;
        return (...a: unknown[]) => {
          const kind = kinds[prop as string];
          // Deletes are free (not billed) but must still go through the meter's binding: counted as seen.
          if (kind !== undefined) add(`${name}.${String(prop)}`, kind ?? "r2_reads", kind ? 1 : 0);
          return v.apply(t, a);
        };
      },
    });
  const { queue, sent } = recordingQueue();
  const counting = {
    ...base,
    DB,
    BUCKET: calls("r2", base.BUCKET, { get: "r2_reads", head: "r2_reads", put: "r2_writes", list: "r2_writes", delete: null }) as R2Bucket,
    KV: calls("kv", base.KV, {
      get: "kv_reads",
      getWithMetadata: "kv_reads",
      list: "kv_reads",
      put: "kv_writes",
      delete: "kv_writes",
    }) as KVNamespace,
    JOBS: calls("queue", queue, { send: "queue_messages" }) as Queue<JobMessage>,
  } as Env;
  return { env: counting, counted, sent };
}

/**
 * What the request's own meter summed: the meters that were charged and never handed their sum on
 * (a nested `measured` meter hands its sum to the request's with `take`).
 */
function requestMeters() {
  const add = vi.spyOn(Meter.prototype, "add");
  const take = vi.spyOn(Meter.prototype, "take");
  return () => {
    const taken = new Set(take.mock.contexts as Meter[]);
    const roots = new Set((add.mock.contexts as Meter[]).filter((m) => !taken.has(m)));
    const usage = noUsage();
    for (const m of roots) for (const k of Object.keys(usage) as (keyof Usage)[]) usage[k] += m.usage[k];
    return usage;
  };
}

/** Runs one request on counted bindings and returns what the bindings saw and what the request's meter says it cost. */
async function metered(path: string, init: RequestInit & { token?: string } = {}) {
  const c = countingEnv(env as unknown as Env);
  const meter = requestMeters();
  const res = await apiWith(c.env, path, init);
  const body = await res.text();
  const usage = meter();
  vi.restoreAllMocks();
  return { res, body, usage, counted: c.counted, sent: c.sent };
}

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe("every binding call of a request is on its meter", () => {
  it("GET /health: the D1, KV and R2 probes and reads", async () => {
    const r = await metered("/health");
    expect(r.res.status).toBe(200);
    expect(r.counted.metered.kv_reads).toBeGreaterThanOrEqual(1);
    expect(r.counted.metered.r2_reads).toBeGreaterThanOrEqual(1);
    expect(r.counted.metered.d1_rows_read).toBeGreaterThan(0);
    expect(r.usage).toEqual(r.counted.metered);
    expect(r.counted.unmetered).toEqual(noUsage());
    expect(Number(/rows_read=(\d+)/.exec(r.res.headers.get("server-timing") ?? "")?.[1])).toBe(r.counted.metered.d1_rows_read);
  });

  it("GET /data in a fresh isolate: the snapshot from R2, and nothing else (no pointer, no rates from D1)", async () => {
    // An isolate with no copy of either, and a snapshot built after any rates it stored.
    forgetCurrencies();
    await publishReadModel(dbFor(env.DB), env.BUCKET);
    forgetReadModel();
    const r = await metered("/data?page=1&page_size=5&sort=market_cap");
    expect(r.res.status).toBe(200);
    expect(r.counted.metered).toEqual({ ...noUsage(), r2_reads: 1 });
    expect(r.usage).toEqual(r.counted.metered);
    expect(JSON.parse(r.body).metadata.vs_currency).toBe("usd");
  });

  it("GET /stats/checkpoints: the KV reads", async () => {
    const r = await metered("/stats/checkpoints");
    expect(r.res.status).toBe(200);
    expect(r.counted.metered.kv_reads).toBe(3);
    expect(r.usage).toEqual(r.counted.metered);
    expect(r.counted.unmetered).toEqual(noUsage());
  });

  it("GET /stats: D1 and the read model's R2 object", async () => {
    const r = await metered("/stats");
    expect(r.res.status).toBe(200);
    expect(r.usage).toEqual(r.counted.metered);
    expect(r.counted.unmetered).toEqual(noUsage());
  });

  it("PUT /uploads/csv: the R2 write, the upload row and the run's start; the same file again deletes its copy through the meter", async () => {
    const csv = "symbol,name,price\nMTRA,Metered A,1.5\nMTRB,Metered B,2.5\n";
    const put = () =>
      metered("/uploads/csv/metered.csv", { method: "PUT", token: TOKEN, headers: { "content-type": "text/csv" }, body: csv });
    const first = await put();
    expect(first.res.status).toBe(202);
    expect(first.counted.metered.r2_writes).toBe(1);
    expect(first.counted.metered.queue_messages).toBe(1);
    expect(first.usage).toEqual(first.counted.metered);
    // With no meter: only the statement that records the run start's usage on the run.
    expect([...first.counted.unmeteredKinds]).toEqual(["d1"]);
    expect(first.counted.unmetered.d1_rows_written).toBe(1);

    const again = await put();
    expect(again.res.status).toBe(202);
    expect(JSON.parse(again.body).data.upload_id).toBe(JSON.parse(first.body).data.upload_id);
    expect(again.usage).toEqual(again.counted.metered);
    expect(again.counted.unmeteredKinds.size).toBe(0);

    const get = await metered(`/uploads/${JSON.parse(first.body).data.upload_id}`);
    expect(get.res.status).toBe(200);
    expect(get.usage).toEqual(get.counted.metered);
    expect(get.counted.unmetered).toEqual(noUsage());
  });
});

describe("every binding call of an ingestion run is in its usage", () => {
  it("a CoinPaprika run: what the bindings saw from its start to its close", async () => {
    const c = countingEnv(env as unknown as Env);
    const tickers = Array.from({ length: 40 }, (_, i) => ({
      id: `mtr${i}-metered-coin-${i}`,
      name: `Metered Coin ${i}`,
      symbol: `MTR${i}`,
      rank: i + 1,
      last_updated: "2026-11-22T12:00:00Z",
      quotes: { USD: { price: 1 + i, market_cap: 1000 * (i + 1), volume_24h: 10 * (i + 1), percent_change_24h: 0.5 } },
    }));
    const up = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(tickers) : undefined));
    const s = servicesFor(c.env, up.fetch);
    const start = await startSourceRun(s, "coinpaprika", "manual");
    if (!start.started) throw new Error("not started");
    await drain(s, c.sent);
    const [run] = await rows<Record<string, number | string>>("SELECT * FROM ingestion_runs WHERE run_id = ?", start.run.runId);
    expect(run.status).toBe("succeeded");
    const usage = Object.fromEntries(Object.keys(noUsage()).map((k) => [k, run[`usage_${k}`]])) as Usage;
    const all = Object.fromEntries(
      Object.keys(noUsage()).map((k) => [k, c.counted.metered[k as keyof Usage] + c.counted.unmetered[k as keyof Usage]]),
    ) as Usage;
    // Everything the bindings saw, less the one lookup after the close that hands the closed run back.
    expect(usage).toEqual({ ...all, d1_rows_read: usage.d1_rows_read });
    expect(all.d1_rows_read - usage.d1_rows_read).toBe(1);
    expect(usage.r2_writes).toBeGreaterThan(0);
    expect(usage.kv_writes).toBeGreaterThan(0);
  });

  it("a CSV upload's run: its start, every block and its close", async () => {
    await env.BUCKET.put("uploads/metered-run/metered-run.csv", "symbol,name,price\nMTRC,Metered C,3\nMTRD,Metered D,4\nBAD,Bad,-1\n");
    const head = await env.BUCKET.head("uploads/metered-run/metered-run.csv");
    const c = countingEnv(env as unknown as Env);
    const s = servicesFor(c.env);
    const up = await registerUpload(s, { key: head!.key, filename: "metered-run.csv", bytes: head!.size, etag: head!.etag });
    await drain(s, c.sent);
    const [run] = await rows<Record<string, number | string>>("SELECT * FROM ingestion_runs WHERE run_id = ?", up.runId);
    expect(run.status).toBe("partial");
    expect(await rows("SELECT status FROM uploads WHERE upload_id = ?", up.uploadId)).toEqual([{ status: "partial" }]);
    const usage = Object.fromEntries(Object.keys(noUsage()).map((k) => [k, run[`usage_${k}`]])) as Usage;
    const all = Object.fromEntries(
      Object.keys(noUsage()).map((k) => [k, c.counted.metered[k as keyof Usage] + c.counted.unmetered[k as keyof Usage]]),
    ) as Usage;
    expect(usage).toEqual({ ...all, d1_rows_read: usage.d1_rows_read });
    expect(all.d1_rows_read - usage.d1_rows_read).toBe(1);
  });

  it("a CSV upload's run that fails: the upload takes the failed status in the close, on the run's cost", async () => {
    const c = countingEnv(env as unknown as Env);
    const s = servicesFor(c.env);
    const up = await registerUpload(s, { key: "uploads/metered-gone/gone.csv", filename: "gone.csv", bytes: 10, etag: "gone" });
    await drain(s, c.sent);
    const [run] = await rows<Record<string, number | string>>("SELECT * FROM ingestion_runs WHERE run_id = ?", up.runId);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/no longer in R2/);
    expect(await rows("SELECT status FROM uploads WHERE upload_id = ?", up.uploadId)).toEqual([{ status: "failed" }]);
    const usage = Object.fromEntries(Object.keys(noUsage()).map((k) => [k, run[`usage_${k}`]])) as Usage;
    const all = Object.fromEntries(
      Object.keys(noUsage()).map((k) => [k, c.counted.metered[k as keyof Usage] + c.counted.unmetered[k as keyof Usage]]),
    ) as Usage;
    expect(usage).toEqual({ ...all, d1_rows_read: usage.d1_rows_read });
    expect(all.d1_rows_read - usage.d1_rows_read).toBe(1);
  });
});
