// The bare rate of a D1 bulk upsert on the local D1 engine (miniflare/workerd, on-disk SQLite
// like `wrangler dev --persist-to`), with no Worker pipeline around it: a table shaped like
// source_quotes, multi-row `INSERT ... ON CONFLICT DO UPDATE` statements of <= 100 bound
// parameters each, sent through db.batch([...]) in groups, from inside a Worker (so the timing
// has no Node <-> workerd proxy in it). Needs Node >= 22 (miniflare's engines); bench/ingest.mjs
// runs it with the project's node.
//   node_modules/.bin/node bench/d1-bare.mjs <rows.json> [repeats=3] [statements_per_batch=100]
// rows.json: [[source, source_id, asset_uid, symbol, name, rank, price_usd, market_cap_usd,
//   volume_24h_usd, change_24h_pct, circulating_supply, total_supply, max_supply,
//   source_updated_at, ingested_at, run_id], ...]
// Prints one JSON line per repeat and a summary line {bench: "d1_bare", ...}.
import fs from "node:fs";
import path from "node:path";
import { Miniflare } from "miniflare";

const COLS = [
  "source",
  "source_id",
  "asset_uid",
  "symbol",
  "name",
  "rank",
  "price_usd",
  "market_cap_usd",
  "volume_24h_usd",
  "change_24h_pct",
  "circulating_supply",
  "total_supply",
  "max_supply",
  "source_updated_at",
  "ingested_at",
  "run_id",
];

const script = `
const COLS = ${JSON.stringify(COLS)};
const SCHEMA = (t) => [
  "DROP TABLE IF EXISTS " + t,
  "CREATE TABLE " + t + " (source text NOT NULL, source_id text NOT NULL, asset_uid text NOT NULL, symbol text NOT NULL, name text NOT NULL, rank integer, price_usd real NOT NULL, market_cap_usd real, volume_24h_usd real, change_24h_pct real, circulating_supply real, total_supply real, max_supply real, source_updated_at text NOT NULL, ingested_at text NOT NULL, run_id text NOT NULL, PRIMARY KEY(source, source_id))",
  "CREATE INDEX " + t + "_asset_idx ON " + t + " (asset_uid)",
];
export default {
  async fetch(req, env) {
    const { rows, perBatch, table } = await req.json();
    for (const s of SCHEMA(table)) await env.DB.prepare(s).run();
    const perStmt = Math.floor(100 / COLS.length); // <= 100 bound parameters per statement
    const update = COLS.slice(2).map((c) => c + " = excluded." + c).join(", ");
    const sqlFor = (n) =>
      "INSERT INTO " + table + " (" + COLS.join(", ") + ") VALUES " +
      Array.from({ length: n }, () => "(" + COLS.map(() => "?").join(", ") + ")").join(", ") +
      " ON CONFLICT (source, source_id) DO UPDATE SET " + update +
      " WHERE excluded.source_updated_at > " + table + ".source_updated_at";
    const full = sqlFor(perStmt);
    const stmts = [];
    for (let i = 0; i < rows.length; i += perStmt) {
      const chunk = rows.slice(i, i + perStmt);
      stmts.push(env.DB.prepare(chunk.length === perStmt ? full : sqlFor(chunk.length)).bind(...chunk.flat()));
    }
    const t0 = Date.now(); // advances across D1 I/O
    let changes = 0;
    let batches = 0;
    for (let i = 0; i < stmts.length; i += perBatch) {
      const res = await env.DB.batch(stmts.slice(i, i + perBatch));
      batches++;
      for (const r of res) changes += r.meta.changes;
    }
    const ms = Date.now() - t0;
    const count = (await env.DB.prepare("SELECT COUNT(*) AS n FROM " + table).first()).n;
    return Response.json({ ms, statements: stmts.length, rows_per_statement: perStmt, batches, changes, count });
  },
};`;

const [file, repeatsArg, perBatchArg] = process.argv.slice(2);
if (!file) throw new Error("usage: d1-bare.mjs <rows.json> [repeats] [statements_per_batch]");
const rows = JSON.parse(fs.readFileSync(file, "utf8"));
const repeats = Number(repeatsArg ?? 3);
const perBatch = Number(perBatchArg ?? 100);
const persist = path.join(path.dirname(file), "d1-bare-state");
fs.rmSync(persist, { recursive: true, force: true });

const mf = new Miniflare({
  // miniflare 5's worker config: the script as an ES module, DB as a local D1 binding.
  workers: [
    {
      config: {
        name: "d1-bare",
        compatibilityDate: "2026-11-01",
        manifest: { mainModule: "index.js", modules: { "index.js": { type: "esm", contents: script } } },
        env: { DB: { type: "d1", id: "bench-bare" } },
      },
    },
  ],
  host: "127.0.0.1",
  port: 0,
  resourcePersistencePath: persist,
  telemetry: { enabled: false },
  cf: false, // no fetch of the Request.cf object from workers.cloudflare.com
});
try {
  const url = await mf.ready;
  const body = JSON.stringify({ rows, perBatch, table: "source_quotes" });
  const runs = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const res = await mf.dispatchFetch(new URL("/", url), { method: "POST", body, headers: { "content-type": "application/json" } });
    const out = await res.json();
    const clientMs = performance.now() - t0;
    if (out.count !== rows.length) throw new Error(`bare upsert stored ${out.count} rows, expected ${rows.length}`);
    runs.push({ ...out, client_ms: Math.round(clientMs) });
    console.log(
      JSON.stringify({
        bench: "d1_bare_repeat",
        repeat: r + 1,
        rows: rows.length,
        ...out,
        client_ms: Math.round(clientMs),
        rows_per_s: Math.round(rows.length / (out.ms / 1000)),
      }),
    );
  }
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  console.log(
    JSON.stringify({
      bench: "d1_bare",
      rows: rows.length,
      repeats,
      statements: runs[0].statements,
      rows_per_statement: runs[0].rows_per_statement,
      statements_per_batch: perBatch,
      median_ms: ms,
      rows_per_s: Math.round(rows.length / (ms / 1000)),
    }),
  );
} finally {
  await mf.dispose();
  fs.rmSync(persist, { recursive: true, force: true });
}
