// Rebuilds a coinfuse database from its R2 archive: POST /etl/rebuild on the given deployment, then
// polls the rebuild's runs until each has finished and prints what they did.
//
//   ADMIN_TOKEN=… npm run rebuild -- https://coinfuse.example.workers.dev [--interval 5] [--timeout 180]
//
// Exits 0 when every run succeeded (or finished with only rejected records), 1 otherwise.
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    base: { type: "string" },
    interval: { type: "string", default: "5" },
    timeout: { type: "string", default: "180" },
    help: { type: "boolean", short: "h" },
  },
});

const usage = "usage: ADMIN_TOKEN=… npm run rebuild -- <base URL> [--interval seconds] [--timeout minutes]";
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const base = (values.base ?? positionals[0] ?? process.env.COINFUSE_URL ?? "").replace(/\/$/, "");
const token = process.env.ADMIN_TOKEN;
if (!base || !token) {
  console.error(`${usage}\n${!base ? "the base URL is missing" : "ADMIN_TOKEN is not set"}`);
  process.exit(2);
}
const intervalMs = Number(values.interval) * 1000;
const deadline = Date.now() + Number(values.timeout) * 60_000;
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const FINISHED = new Set(["succeeded", "partial", "failed"]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A JSON call; network errors and 5xx are tried again a few times (a rebuild outlasts a blip). */
async function call(path, init = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${base}${path}`, { ...init, headers: { ...headers, ...init.headers } });
      if (res.status < 500 || attempt >= 5) return { status: res.status, body: await res.json().catch(() => null) };
    } catch (e) {
      if (attempt >= 5) throw e;
    }
    await sleep(1000 * 2 ** attempt);
  }
}

const post = await call("/etl/rebuild", { method: "POST", body: "{}" });
if (post.status === 409) {
  const running = post.body?.error?.details?.[0]?.running_run_ids ?? [];
  console.error(`a rebuild is already running${running.length ? ` (runs ${running.join(", ")})` : ""}; try again when it has finished`);
  process.exit(1);
}
if (post.status !== 202) {
  console.error(`POST /etl/rebuild answered ${post.status}: ${post.body?.error?.message ?? JSON.stringify(post.body)}`);
  process.exit(1);
}
let runs = post.body.data.runs;
console.log(`rebuild started: ${runs.map((r) => `${r.source} ${r.run_id}`).join(", ")}`);

let last = "";
while (runs.some((r) => !FINISHED.has(r.status))) {
  if (Date.now() > deadline) {
    console.error(`still running after ${values.timeout} minutes; the rebuild goes on: follow it with GET /etl/runs/{run_id}`);
    process.exit(1);
  }
  await sleep(intervalMs);
  runs = await Promise.all(
    runs.map(async (r) => {
      const got = await call(`/etl/runs/${r.run_id}`);
      return got.status === 200 ? got.body.data : r;
    }),
  );
  const line = runs.map((r) => `${r.source} ${r.status} (${r.usage.d1_rows_written} rows written)`).join(", ");
  if (line !== last) console.log(`${new Date().toISOString()}  ${line}`);
  last = line;
}

// Each CSV object is replayed in a run of its own (as an upload is): the replay runs started since
// the rebuild's (the server's clock, not this machine's).
const since = runs.map((r) => r.started_at).sort()[0] ?? "";
const csvRuns = [];
for (let page = 1; page <= 40; page++) {
  const got = await call(`/stats/runs?source=csv&page_size=250&page=${page}`);
  const list = got.status === 200 ? got.body.data : [];
  csvRuns.push(...list.filter((r) => r.trigger === "replay" && r.started_at && r.started_at >= since));
  if (list.length < 250) break;
}
const rebuildIds = new Set(runs.map((r) => r.run_id));
const files = csvRuns.filter((r) => !rebuildIds.has(r.run_id));

const pad = (s, n) => String(s).padEnd(n);
const num = (n) => String(n).padStart(9);
console.log(
  `\n${pad("run", 26)} ${pad("source", 12)} ${pad("status", 10)} ${num("fetched")} ${num("accepted")} ${num("rejected")} ${num("written")} ${num("seconds")}`,
);
for (const r of [...runs, ...files]) {
  console.log(
    `${pad(r.run_id, 26)} ${pad(r.source, 12)} ${pad(r.status, 10)} ${num(r.records.fetched)} ${num(r.records.accepted)} ${num(r.records.rejected)} ${num(r.records.written)} ${num(((r.duration_ms ?? 0) / 1000).toFixed(1))}`,
  );
  if (r.error) console.log(`  error: ${r.error}`);
}
const total = (k) => [...runs, ...files].reduce((n, r) => n + (r.usage?.[k] ?? 0), 0);
console.log(
  `\nCSV files replayed: ${files.length}. Cost: ${total("d1_rows_read")} D1 rows read, ${total("d1_rows_written")} written, ${total("r2_reads")} R2 reads, ${total("r2_writes")} R2 writes, ${total("queue_messages")} queue messages.`,
);
console.log("Pins are not in the archive: pin again the mappings you exported before (PUT /assets/{asset_uid}/mappings).");
const failed = [...runs, ...files].filter((r) => r.status === "failed");
process.exit(failed.length ? 1 : 0);
