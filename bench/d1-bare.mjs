// The bare rate of D1 bulk writes on the local D1 engine (miniflare/workerd, on-disk SQLite like
// `wrangler dev --persist-to`), with no Worker pipeline around them: multi-row
// `INSERT ... [ON CONFLICT ...]` statements of <= 100 bound parameters each, sent through
// db.batch([...]) in groups, from inside a Worker (so the timing has no Node <-> workerd proxy in it).
// Needs Node >= 22 (miniflare's engines); bench/ingest.mjs runs it with the project's node.
//   node_modules/.bin/node bench/d1-bare.mjs <job.json> [repeats=3] [statements_per_batch=100]
// job.json: { schema: [sql, ...], tables: [{ name, columns: [...], conflict?: "ON CONFLICT ...", rows: [[...], ...] }] }
// Each repeat starts from an empty database, runs `schema`, then writes every table in order.
// Prints one JSON line per repeat and a summary line {bench: "d1_bare", ...} (rows/s over all tables).
import fs from "node:fs";
import path from "node:path";
import { Miniflare } from "miniflare";

const script = `
export default {
  async fetch(req, env) {
    const { schema, tables, perBatch } = await req.json();
    for (const s of schema) await env.DB.prepare(s).run();
    const stmts = [];
    for (const t of tables) {
      const perStmt = Math.floor(100 / t.columns.length); // <= 100 bound parameters per statement
      const sqlFor = (n) =>
        "INSERT INTO " + t.name + " (" + t.columns.join(", ") + ") VALUES " +
        Array.from({ length: n }, () => "(" + t.columns.map(() => "?").join(", ") + ")").join(", ") + " " + (t.conflict ?? "");
      const full = sqlFor(perStmt);
      for (let i = 0; i < t.rows.length; i += perStmt) {
        const chunk = t.rows.slice(i, i + perStmt);
        stmts.push(env.DB.prepare(chunk.length === perStmt ? full : sqlFor(chunk.length)).bind(...chunk.flat()));
      }
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
    const counts = {};
    for (const t of tables) counts[t.name] = (await env.DB.prepare("SELECT COUNT(*) AS n FROM " + t.name).first()).n;
    return Response.json({ ms, statements: stmts.length, batches, changes, counts });
  },
};`;

const [file, repeatsArg, perBatchArg] = process.argv.slice(2);
if (!file) throw new Error("usage: d1-bare.mjs <job.json> [repeats] [statements_per_batch]");
const job = JSON.parse(fs.readFileSync(file, "utf8"));
const repeats = Number(repeatsArg ?? 3);
const perBatch = Number(perBatchArg ?? 100);
const rows = job.tables.reduce((n, t) => n + t.rows.length, 0);
const persist = path.join(path.dirname(file), "d1-bare-state");

const runs = [];
for (let r = 0; r < repeats; r++) {
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
    const body = JSON.stringify({ ...job, perBatch });
    const res = await mf.dispatchFetch(new URL("/", url), { method: "POST", body, headers: { "content-type": "application/json" } });
    const out = await res.json();
    for (const t of job.tables)
      if (out.counts[t.name] !== t.rows.length)
        throw new Error(`bare write stored ${out.counts[t.name]} ${t.name} rows, expected ${t.rows.length}`);
    runs.push(out);
    console.log(JSON.stringify({ bench: "d1_bare_repeat", repeat: r + 1, rows, ...out, rows_per_s: Math.round(rows / (out.ms / 1000)) }));
  } finally {
    await mf.dispose();
  }
}
fs.rmSync(persist, { recursive: true, force: true });
const ms = runs.map((r) => r.ms).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
console.log(
  JSON.stringify({
    bench: "d1_bare",
    rows,
    tables: Object.fromEntries(job.tables.map((t) => [t.name, t.rows.length])),
    repeats,
    statements: runs[0].statements,
    statements_per_batch: perBatch,
    median_ms: ms,
    rows_per_s: Math.round(rows / (ms / 1000)),
  }),
);
