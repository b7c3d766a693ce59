// What a stored history point costs in D1: a fresh SQLite database built with the real migrations,
// filled with history rows in the layout the worker writes (src/db/history-codec.ts: one row per
// source, bucket of 64 ids and period), measured as PRAGMA page_count x page_size.
//   node bench/history-size.mjs [coins=7000] [hours=12]    (default: 7000 x 12 ticks/hour x 12 h = 1.0M raw points)
// Then one day of hourly roll-ups for the same coins, and the projection for 7 days raw + 90 days hourly.
import fs from "node:fs";
import path from "node:path";
import { emit, root } from "./lib.mjs";

process.removeAllListeners("warning"); // node:sqlite is "experimental" on Node 22
const { DatabaseSync } = await import("node:sqlite");
const { QUOTES_PER_BUCKET, encodePoints, periodStart } = await import("../src/db/history-codec.ts");

const coins = Number(process.argv[2] ?? 7000);
const hours = Number(process.argv[3] ?? 12);
const TICKS_PER_HOUR = 12;
const file = path.join(root, "bench", "out", "history-size.sqlite");
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.rmSync(file, { force: true });
const db = new DatabaseSync(file);
for (const f of fs
  .readdirSync(path.join(root, "migrations"))
  .filter((f) => f.endsWith(".sql"))
  .sort()) {
  for (const q of fs.readFileSync(path.join(root, "migrations", f), "utf8").split("--> statement-breakpoint")) if (q.trim()) db.exec(q);
}
const bytes = () => db.prepare("PRAGMA page_count").get().page_count * db.prepare("PRAGMA page_size").get().page_size;
const empty = bytes();

const insert = db.prepare(
  "INSERT INTO history_buckets (source, bucket, resolution, period_start, points, count) VALUES (?, ?, ?, ?, ?, ?)",
);
/** One row per bucket and period, as the worker leaves it: every id's points of the period. */
function fill(resolution, periods, pointsPerPeriod, stepMs, t0) {
  let points = 0;
  db.exec("BEGIN");
  for (let p = 0; p < periods; p++) {
    const start = periodStart(resolution, t0 + p * pointsPerPeriod * stepMs);
    for (let b = 0; b * QUOTES_PER_BUCKET < coins; b++) {
      const pts = [];
      for (let k = 0; k < pointsPerPeriod; k++) {
        for (let slot = b * QUOTES_PER_BUCKET; slot < Math.min(coins, (b + 1) * QUOTES_PER_BUCKET); slot++) {
          const price = 1 + ((slot * 7919 + k) % 1000) / 7;
          pts.push({
            slot,
            at: start + k * stepMs + (slot % 60) * 1000,
            priceUsd: price,
            marketCapUsd: price * 1e7,
            volume24hUsd: price * 1e5,
          });
        }
      }
      insert.run("coingecko", b, resolution, new Date(start).toISOString(), encodePoints(start, pts), pts.length);
      points += pts.length;
    }
  }
  db.exec("COMMIT");
  return points;
}

const t0 = Date.parse("2026-11-01T00:00:00Z");
const rawPoints = fill("raw", hours, TICKS_PER_HOUR, 300_000, t0);
db.exec("VACUUM");
const rawBytes = bytes() - empty;
const hourlyBefore = bytes();
const hourlyPoints = fill("hour", 1, 24, 3_600_000, Date.parse("2026-10-01T00:00:00Z"));
db.exec("VACUUM");
const hourlyBytes = bytes() - hourlyBefore;
db.close();

const rawPerPoint = rawBytes / rawPoints;
const hourlyPerPoint = hourlyBytes / hourlyPoints;
const scale = 7000;
const projectedRaw = scale * 288 * 7 * rawPerPoint;
const projectedHourly = scale * 24 * 90 * hourlyPerPoint;
emit({
  bench: "history_size",
  coins,
  raw_points: rawPoints,
  raw_bytes: rawBytes,
  raw_bytes_per_point: +rawPerPoint.toFixed(2),
  hourly_points: hourlyPoints,
  hourly_bytes_per_point: +hourlyPerPoint.toFixed(2),
  goal_bytes_per_point: 24,
  projected_7d_raw_plus_90d_hourly_gb_at_7000_quotes: +((projectedRaw + projectedHourly) / 1e9).toFixed(3),
  goal_gb: 1,
});
if (rawPerPoint > 24) {
  console.log(JSON.stringify({ bench: "history_size", assertion_failed: "more than 24 bytes per stored point" }));
  process.exitCode = 1;
}
