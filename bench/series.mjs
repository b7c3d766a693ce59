// Export and candles through the real API on a local Worker.
//   node bench/series.mjs [assets=132000]
// 1. loads `assets` coins through the CSV path, then streams GET /data/export as CSV and NDJSON
//    (goal: >= 50,000 assets/s), sampling the Worker runtime's resident memory (workerd's RSS,
//    which holds the isolate's heap) before and during the export;
// 2. with the Worker stopped, writes 90 days of history for one coin of each of three sources into
//    its local D1 file in the layout the Worker writes (7 days of 5-minute points, 83 of hourly),
//    restarts it and times GET /data/{uid}/ohlc over the 90 days (median of 20).
import { execSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { call, coincapCsv, emit, fail, median, startWorker, TOKEN, waitFinished } from "./lib.mjs";

process.removeAllListeners("warning");
const { DatabaseSync } = await import("node:sqlite");
const { bucketOf, encodePoints, periodStart } = await import("../src/db/history-codec.ts");

const N = Number(process.argv[2] ?? 132_000);
const GOAL = 50_000;
const vars = { MAX_UPLOAD_BYTES: String(200 * 1024 * 1024) };

/** Resident memory of the workerd processes under a wrangler process group, in MB. */
function workerdRssMb(pid) {
  try {
    const out = execSync(`ps -o rss=,args= -g ${pid}`, { encoding: "utf8" });
    return Math.round(
      out
        .split("\n")
        .filter((l) => l.includes("workerd"))
        .reduce((n, l) => n + Number(l.trim().split(/\s+/)[0]), 0) / 1024,
    );
  } catch {
    return null;
  }
}

let worker = await startWorker({ name: "series", port: 18830, vars });
let uid;
try {
  const put = await call(worker.base, "PUT", "/uploads/csv/series.csv", {
    body: coincapCsv(N, "sx"),
    headers: { "content-type": "text/csv" },
    token: TOKEN,
  });
  if (put.status !== 202) throw new Error(`upload answered ${put.status}`);
  await waitFinished(worker.base, `/uploads/${put.json.data.upload_id}`);
  uid = (await call(worker.base, "GET", "/data?page_size=1&sort=rank")).json.data[0].asset_uid;
  await call(worker.base, "GET", "/data?page_size=1"); // the isolate loads the read model
  for (const format of ["csv", "ndjson"]) {
    const before = workerdRssMb(worker.pid);
    let peak = before;
    const sampler = setInterval(() => {
      const rss = workerdRssMb(worker.pid);
      if (rss !== null && rss > peak) peak = rss;
    }, 50);
    const t0 = performance.now();
    const res = await fetch(`${worker.base}/data/export?format=${format}&sort=market_cap`);
    const text = await res.text();
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const rows = text.trim().split("\n").length - (format === "csv" ? 1 : 0);
    emit({
      bench: "export",
      format,
      assets: N,
      rows,
      mb: +(text.length / 1e6).toFixed(1),
      seconds: +seconds.toFixed(2),
      assets_per_s: Math.round(rows / seconds),
      goal: GOAL,
      workerd_rss_mb_before: before,
      workerd_rss_mb_peak: peak,
    });
    if (rows !== N) fail("export", `${format}: ${rows} rows for ${N} assets`);
    if (rows / seconds < GOAL) fail("export", `${format}: ${Math.round(rows / seconds)} assets/s, under ${GOAL}`);
  }
} finally {
  worker.stop();
}
await new Promise((r) => setTimeout(r, 1500));

// 90 days of history for `uid`'s CSV slot, written into the stopped Worker's D1 file.
const d1Dir = path.join(worker.state, "v3", "d1", "miniflare-D1DatabaseObject");
const db = new DatabaseSync(
  path.join(
    d1Dir,
    fs.readdirSync(d1Dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite"),
  ),
);
const { slot } = db.prepare("SELECT slot FROM asset_mappings WHERE asset_uid = ?").get(uid);
const now = Date.parse("2026-11-22T12:00:00Z");
const rowsByPeriod = new Map();
const add = (resolution, at, price) => {
  const start = periodStart(resolution, at);
  const key = `${resolution}@${start}`;
  if (!rowsByPeriod.has(key)) rowsByPeriod.set(key, { resolution, start, points: [] });
  rowsByPeriod.get(key).points.push({ slot, at, priceUsd: price, marketCapUsd: price * 1e6, volume24hUsd: price * 1e4 });
};
for (let t = now - 90 * 86_400_000; t <= now; t += t < now - 7 * 86_400_000 ? 3_600_000 : 300_000) {
  add(t < now - 7 * 86_400_000 ? "hour" : "raw", t, 1 + Math.sin(t / 8.64e7) / 10);
}
const insert = db.prepare(
  "INSERT OR REPLACE INTO history_buckets (source, bucket, resolution, period_start, points, count) VALUES ('csv', ?, ?, ?, ?, ?)",
);
let points = 0;
for (const r of rowsByPeriod.values()) {
  insert.run(bucketOf(slot), r.resolution, new Date(r.start).toISOString(), encodePoints(r.start, r.points), r.points.length);
  points += r.points.length;
}
db.close();

worker = await startWorker({ name: "series", port: 18830, vars, keepState: true });
try {
  const from = new Date(now - 90 * 86_400_000).toISOString();
  for (const interval of ["1h", "1d"]) {
    const path_ = `/data/${uid}/ohlc?interval=${interval}&source=csv&from=${from}`;
    const first = await fetch(worker.base + path_);
    const rowsRead = Number(/rows_read=(\d+)/.exec(first.headers.get("server-timing") ?? "")?.[1] ?? Number.NaN);
    const candles = (await first.json()).data;
    const lat = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await (await fetch(worker.base + path_, { headers: { "cache-control": "no-cache" } })).text();
      lat.push(performance.now() - t0);
    }
    emit({
      bench: "candles_90d",
      interval,
      stored_points: points,
      candles: candles.length,
      candle_points: candles.reduce((n, c) => n + c.points, 0),
      p50_ms: +median(lat).toFixed(1),
      d1_rows_read: rowsRead,
    });
  }
} finally {
  worker.stop();
}
