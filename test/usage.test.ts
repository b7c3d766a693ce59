import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import type { Env } from "../src/env";
import { PAGES_PER_STEP } from "../src/ingest/fetch-page";
import { startSourceRun } from "../src/ingest/start-run";
import type { JobMessage } from "../src/jobs/messages";
import { currentMeter, measured, noUsage, subtractUsage, type Usage } from "../src/lib/usage";
import { servicesFor } from "../src/services";
import { api, apiWith, drain, json, metaCountingD1, recordingQueue, rows, stubUpstream } from "./helpers";

/**
 * Bindings that count what reaches the real ones, independently of the worker's own meter: the D1
 * binding's meta summed over run/all/batch (raw and first run as all), R2/KV/queue calls by kind.
 */
function countingEnv(base: Env) {
  const counted = noUsage();
  const charge = (meta?: D1Meta) => {
    counted.d1_rows_read += meta?.rows_read ?? 0;
    counted.d1_rows_written += meta?.rows_written ?? 0;
  };
  const DB = metaCountingD1(base.DB, charge);
  const calls = (target: object, kinds: Record<string, keyof Usage>) =>
    new Proxy(target, {
      get(t, prop) {
        const v = Reflect.get(t, prop);
        if (typeof v !== "function") return v;
        const kind = kinds[prop as string];
        return (...a: unknown[]) => {
          if (kind) counted[kind] += 1;
          return v.apply(t, a);
        };
      },
    });
  const { queue, sent } = recordingQueue();
  const counting = {
    ...base,
    DB,
    BUCKET: calls(base.BUCKET, { get: "r2_reads", head: "r2_reads", put: "r2_writes", list: "r2_writes" }) as R2Bucket,
    KV: calls(base.KV, { get: "kv_reads", list: "kv_reads", put: "kv_writes", delete: "kv_writes" }) as KVNamespace,
    JOBS: calls(queue, { send: "queue_messages" }) as Queue<JobMessage>,
  } as Env;
  return { env: counting, counted, sent };
}

/** A first step of full pages and a second of one short page: what a run carries from message to message is counted too. */
const PAGES = PAGES_PER_STEP + 1;
const coins = Array.from({ length: 250 * PAGES_PER_STEP + 100 }, (_, i) => ({
  ...(geckoPage1[i % geckoPage1.length] as Record<string, unknown>),
  id: `use-${i}`,
  symbol: `use${i}`,
  name: `Usage Coin ${i}`,
  market_cap_rank: i + 1,
}));
const upstream = (tick: number) =>
  stubUpstream((url) => {
    if (!url.pathname.endsWith("/coins/markets")) return undefined;
    const page = Number(url.searchParams.get("page"));
    const at = new Date(Date.parse("2026-11-22T12:00:00Z") + tick * 300_000).toISOString();
    return json(coins.slice((page - 1) * 250, page * 250).map((c) => ({ ...c, last_updated: at, current_price: 1 + tick / 100 })));
  });

async function runOnce(tick: number) {
  const c = countingEnv(env as unknown as Env);
  const s = servicesFor({ ...c.env, COINGECKO_REQUESTS_PER_MINUTE: "60000" } as Env, upstream(tick).fetch);
  const start = await startSourceRun(s, "coingecko", "manual");
  if (!start.started) throw new Error("not started");
  await drain(s, c.sent);
  const [run] = await rows<Record<string, number | string>>("SELECT * FROM ingestion_runs WHERE run_id = ?", start.run.runId);
  const served = await (await api(`/etl/runs/${start.run.runId}`)).json<{ data: { usage: Usage; status: string } }>();
  return { counted: c.counted, usage: served.data.usage, status: served.data.status, run };
}

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
});

describe("usage", () => {
  it("a run records exactly what its messages cost: every D1 row written, R2, KV and queue call", async () => {
    const first = await runOnce(0);
    expect(first.status).toBe("succeeded");
    // What the bindings saw, less the one lookup after the close that serves the run back.
    expect(first.usage).toEqual({ ...first.counted, d1_rows_read: first.usage.d1_rows_read });
    expect(first.counted.d1_rows_read - first.usage.d1_rows_read).toBe(1);
    // Class A: every page archived and the read model stored (its head before is class B); the run's first message and its second step queued.
    expect(first.usage.r2_writes).toBe(PAGES + 1);
    expect(first.usage.queue_messages).toBe(2);
  });

  it("a steady tick writes a few rows per page, and the same tick again almost none", async () => {
    await runOnce(0);
    const steady = await runOnce(1);
    const repeat = await runOnce(1);
    expect(steady.usage).toEqual({ ...steady.counted, d1_rows_read: steady.usage.d1_rows_read });
    expect(repeat.usage).toEqual({ ...repeat.counted, d1_rows_read: repeat.usage.d1_rows_read });
    expect(steady.usage.d1_rows_written / coins.length).toBeLessThan(0.2);
    // Unchanged bodies are not archived again and no bucket changes: no R2 write at all.
    expect(repeat.usage.r2_writes).toBe(0);
    expect(repeat.usage.d1_rows_written).toBeLessThanOrEqual(PAGES * 3 + 12);
    console.log(`[usage] steady ${JSON.stringify(steady.usage)} repeat ${JSON.stringify(repeat.usage)}`);
  });

  it("is summed per source in /stats and /metrics", async () => {
    await runOnce(0);
    const stats = await (await api("/stats")).json<{ data: { sources: Record<string, { usage: Usage }> } }>();
    const [sum] = await rows<{ w: number }>("SELECT SUM(usage_d1_rows_written) AS w FROM ingestion_runs WHERE source = 'coingecko'");
    expect(stats.data.sources.coingecko.usage.d1_rows_written).toBe(sum.w);
    const metrics = await (await api("/metrics")).text();
    expect(metrics).toContain(`coinfuse_usage_total{source="coingecko",unit="d1_rows_written"} ${sum.w}`);
  });
});

describe("carried usage", () => {
  it("is handed over by the write that takes it, and left for the redelivery when the job fails first", async () => {
    const carried = { d1_rows_written: 5, queue_messages: 1 };
    // Taken by a write: not carried any more.
    const written = await measured(async () => {
      const m = currentMeter()!;
      m.carry(carried);
      expect(m.take()).toMatchObject(carried);
    });
    expect(written.carried).toBeNull();
    // The write did not happen and its usage was put back: still carried, so a failed job leaves it to the redelivery.
    const failed = await measured(async () => {
      const m = currentMeter()!;
      m.carry(carried);
      m.restore(m.take());
    });
    expect(failed.carried).toEqual(carried);
    expect(subtractUsage(failed.usage, failed.carried!)).toEqual(noUsage());
  });
});

describe("Server-Timing", () => {
  it("carries the D1 time and rows read of the request, 0 when it touched no D1", async () => {
    const notFound = await api("/no-such-route");
    expect(notFound.headers.get("server-timing")).toMatch(/^d1;dur=0\.00;desc="rows_read=0"$/);
    await runOnce(0);
    const c = countingEnv(env as unknown as Env);
    const detail = await apiWith(c.env, "/data/usage-coin-3");
    expect(detail.status).toBe(200);
    const timing = detail.headers.get("server-timing") ?? "";
    expect(timing).toMatch(/^d1;dur=\d+\.\d\d;desc="rows_read=\d+"$/);
    expect(Number(/rows_read=(\d+)/.exec(timing)?.[1])).toBe(c.counted.d1_rows_read);
    expect(c.counted.d1_rows_read).toBeGreaterThan(0);
  });
});

describe("GET /data/{uid} cost", () => {
  it("reads a few rows by key, not a row per id in the buckets", async () => {
    await runOnce(0);
    const res = await api("/data/usage-coin-3");
    expect(res.status).toBe(200);
    const read = Number(/rows_read=(\d+)/.exec(res.headers.get("server-timing") ?? "")?.[1]);
    expect(read).toBeLessThanOrEqual(10);
  });
});

describe("usage of a run's start", () => {
  it("charges an upload's run rows, upload row and queued message to its run before any job runs", async () => {
    const c = countingEnv(env as unknown as Env);
    const s = servicesFor(c.env);
    const { registerUpload } = await import("../src/ingest/csv-sweep");
    const before = { ...c.counted };
    const up = await registerUpload(s, { key: "uploads/usage-start.csv", filename: "usage-start.csv", bytes: 10, etag: "e" });
    const [run] = await rows<Record<string, number>>("SELECT * FROM ingestion_runs WHERE run_id = ?", up.runId);
    expect(run.usage_queue_messages).toBe(1);
    expect(run.usage_d1_rows_written).toBe(c.counted.d1_rows_written - before.d1_rows_written);
  });
});
