// Chaos soak: a fresh local stack (wrangler dev on loopback, its own state) fed by a moving mock
// CoinGecko/CoinPaprika with seeded faults (bench/soak-upstream.mjs), driven for N seconds by
// concurrent writers (ticks of both sources, the cron, CSV uploads with old and new rows, duplicate
// and multi-block files, pins, replays, roll-ups) and readers (/data, /data/export, /data/{uid},
// /data/{uid}/history). It records everything it sent, then checks SPEC §4's concurrency
// promises during the run and at the end, and prints one PASS/FAIL line per invariant.
//
//   npm run soak -- --seconds 60 [--seed 1] [--port 18870] [--drain 150] [--ref COMMIT] [--live] [--keep]
//
// By default the Worker runs from a copy of the working tree taken at start (in the temp directory),
// so edits made while it runs neither reload the Worker nor mix versions; --live runs it from the
// working tree itself; --ref runs it from a commit's tree (git archive), e.g. to see that the soak
// fails on a commit before a fix.
// Output, the Worker's log and what was sent: bench/out/soak-*.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { prepareLocalWorker, root, waitForHealth, wranglerBin, wranglerEnv } from "../scripts/local-stack.mjs";
import { mulberry32 } from "../scripts/prng.mjs";
import { startSoakUpstream } from "./soak-upstream.mjs";

// node:sqlite (the local D1/R2 state is read directly) needs Node >= 22: the project brings one.
if (Number(process.versions.node.split(".")[0]) < 22 && !process.env.SOAK_REEXEC) {
  const node22 = path.join(root, "node_modules", ".bin", "node");
  const r = spawnSync(node22, [new URL(import.meta.url).pathname, ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, SOAK_REEXEC: "1" },
  });
  process.exit(r.status ?? 1);
}
const emitWarning = process.emitWarning;
process.emitWarning = (w, ...rest) => (String(w).includes("SQLite") ? undefined : emitWarning.call(process, w, ...rest));
const { DatabaseSync } = await import("node:sqlite");

// ---------------------------------------------------------------------------------------------
// Options and what the code under test says (read from it, so the soak follows its constants)

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith("--") ? true : v;
}
const SECONDS = Number(option("seconds", 60));
const SEED = Number(option("seed", 1));
const PORT = Number(option("port", 18870));
const DRAIN_S = Number(option("drain", 150));
const LIVE = option("live", false) === true;
const REF = typeof option("ref", false) === "string" ? option("ref") : null;
const KEEP = option("keep", false) === true;
if (!(SECONDS > 0) || !Number.isInteger(SEED) || !(PORT > 0)) {
  console.error("usage: npm run soak -- --seconds N [--seed S] [--port P] [--drain S] [--ref COMMIT] [--live] [--keep]");
  process.exit(2);
}

const srcText = (rel) =>
  REF
    ? (spawnSync("git", ["-C", root, "show", `${REF}:${rel}`], { encoding: "utf8" }).stdout ?? "")
    : fs.readFileSync(path.join(root, rel), "utf8");
const numberExpr = (text, name, fallback) => {
  const m = new RegExp(`${name}\\s*=\\s*([0-9_ *]+);`).exec(text);
  return m ? m[1].split("*").reduce((a, x) => a * Number(x.trim().replaceAll("_", "")), 1) : fallback;
};
/** CSV rows are stored in blocks of this many bytes (src/ingest/csv-upload.ts). */
const BLOCK_BYTES = numberExpr(srcText("src/ingest/csv-upload.ts"), "BLOCK_BYTES", 1024 * 1024);
/** Raw points older than this many days are rolled up into hourly points (src/ingest/retention.ts). */
const RAW_POINTS_DAYS = numberExpr(srcText("src/ingest/retention.ts"), "RAW_POINTS_DAYS", 7);
/** The cron string whose tick runs roll-ups and retention (src/jobs/scheduled.ts, wrangler.toml). */
const RETENTION_CRON = /RETENTION_CRON\s*=\s*"([^"]+)"/.exec(srcText("src/jobs/scheduled.ts"))?.[1] ?? "17 3 * * *";
const TICK_CRON =
  (/crons\s*=\s*\[([^\]]*)\]/.exec(srcText("wrangler.toml"))?.[1].match(/"([^"]+)"/g) ?? [])
    .map((s) => s.slice(1, -1))
    .find((c) => c !== RETENTION_CRON) ?? "* * * * *";

const OUT = path.join(root, "bench", "out");
const STATE = path.join(OUT, "soak-state");
const DEV_LOG = path.join(OUT, "soak-dev.log");
const TOKEN = "soak-admin-token";
/** Uploads the last CSV sweep finds at least. */
const SWEEP_OBJECTS = 120;
const BASE = `http://127.0.0.1:${PORT}`;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const rngFor = (lane) =>
  mulberry32(SEED * 1_000_003 + [...lane].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const between = (rnd, lo, hi) => lo + rnd() * (hi - lo);
const iso = (ms) => new Date(ms).toISOString();
const fnv = (s) => {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
};

// ---------------------------------------------------------------------------------------------
// The stack

const children = new Set();
let upstream = null;
function stopAll() {
  stopping = true;
  for (const pid of children) {
    try {
      process.kill(-pid, "SIGTERM");
    } catch {}
  }
  children.clear();
  upstream?.close();
}
process.on("exit", stopAll);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    stopAll();
    process.exit(130);
  });
}

const TREE = ["src", "migrations", "public", "wrangler.toml", "tsconfig.json", "package.json"];
/**
 * What the Worker is built from: the working tree (--live), or a copy of it (or of a commit's tree,
 * --ref) outside the repository, with node_modules hard-linked in, so that edits of the repository
 * (src/, package.json, a reinstall of node_modules) made while the soak runs neither rebuild the
 * Worker mid-run nor mix versions.
 */
function workerDir() {
  if (LIVE) return root;
  const dir = path.join(os.tmpdir(), `coinfuse-soak-${PORT}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  if (REF) {
    const files = TREE.filter((f) => spawnSync("git", ["-C", root, "cat-file", "-e", `${REF}:${f}`]).status === 0);
    const archive = spawnSync("git", ["-C", root, "archive", "--format=tar", REF, ...files], { maxBuffer: 1 << 30 });
    if (archive.status !== 0) throw new Error(`git archive ${REF}: ${archive.stderr}`);
    const untar = spawnSync("tar", ["-x", "-C", dir], { input: archive.stdout });
    if (untar.status !== 0) throw new Error(`tar: ${untar.stderr}`);
  } else {
    for (const f of TREE) if (fs.existsSync(path.join(root, f))) fs.cpSync(path.join(root, f), path.join(dir, f), { recursive: true });
  }
  const linked = spawnSync("cp", ["-al", path.join(root, "node_modules"), path.join(dir, "node_modules")]);
  if (linked.status !== 0) fs.symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

/**
 * wrangler's environment, with a dev registry of its own: every `wrangler dev` of a Worker named
 * coinfuse on this machine writes the same registry entry and watches the registry, so another one
 * starting or stopping (a bench, `npm run dev`) reloads this one, and its queue consumer can take
 * this one's messages.
 */
function soakEnv() {
  const registry = path.join(os.tmpdir(), `coinfuse-soak-${PORT}-registry`);
  fs.mkdirSync(registry, { recursive: true });
  return { ...wranglerEnv(), WRANGLER_REGISTRY_PATH: registry };
}

/** `wrangler dev` arguments; a tree other than the working tree applies its own migrations. */
function devArgs(dir, vars) {
  if (dir === root) return prepareLocalWorker({ port: PORT, persistTo: STATE, vars, inspectorPort: PORT + 1 });
  const database = /database_name\s*=\s*"([^"]+)"/.exec(fs.readFileSync(path.join(dir, "wrangler.toml"), "utf8"))?.[1] ?? "coinfuse";
  const migrate = spawnSync(wranglerBin, ["d1", "migrations", "apply", database, "--local", "--persist-to", STATE], {
    cwd: dir,
    env: soakEnv(),
    encoding: "utf8",
  });
  if (migrate.status !== 0) throw new Error(`applying the D1 migrations failed: ${migrate.stdout}${migrate.stderr}`);
  return [
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(PORT),
    "--inspector-port",
    String(PORT + 1),
    "--test-scheduled",
    "--show-interactive-dev-session=false",
    "--persist-to",
    STATE,
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
}

async function startStack() {
  upstream = await startSoakUpstream({ seed: SEED });
  fs.mkdirSync(OUT, { recursive: true });
  fs.rmSync(STATE, { recursive: true, force: true });
  fs.mkdirSync(STATE, { recursive: true });
  const vars = {
    COINGECKO_BASE_URL: `http://127.0.0.1:${upstream.port}/api/v3`,
    COINPAPRIKA_BASE_URL: `http://127.0.0.1:${upstream.port}/v1`,
    ADMIN_TOKEN: TOKEN,
    READ_RATE_LIMIT: "off",
    COINGECKO_REQUESTS_PER_MINUTE: "6000",
    COINPAPRIKA_REQUESTS_PER_MINUTE: "6000",
    SOURCE_PAGE_LIMIT: "20",
    // The shortest interval the cron takes: a cron tick then starts a source idle for a minute.
    SOURCE_INTERVAL_MINUTES: "coingecko=1,coinpaprika=1,csv=1",
    UPSTREAM_TIMEOUT_MS: "5000",
    DATA_ORIGIN: "live",
  };
  const dir = workerDir();
  const args = devArgs(dir, vars);
  const log = fs.openSync(DEV_LOG, "w");
  const proc = spawn(wranglerBin, args, { cwd: dir, env: soakEnv(), stdio: ["ignore", log, log], detached: true });
  children.add(proc.pid);
  proc.on("exit", (code, signal) => {
    if (stopping) return;
    workerExit = { at: iso(Date.now()), code, signal };
    // Nothing more to drive or wait for.
    driveUntil = Math.min(driveUntil, Date.now());
    hardUntil = Math.min(hardUntil, Date.now());
  });
  await waitForHealth(BASE);
}

let stopping = false;
let workerExit = null;
/** Times wrangler restarted the Worker (a file it watches changed): in-memory queue messages and isolate state are lost then. */
const reloadScan = { offset: 0, count: 0 };
function reloadsSoFar() {
  try {
    const fd = fs.openSync(DEV_LOG, "r");
    try {
      const size = fs.fstatSync(fd).size;
      // Read what was appended since the last look (from a little before, so a line cut in two is seen whole).
      const from = Math.max(0, reloadScan.offset - 64);
      const buf = Buffer.alloc(size - from);
      fs.readSync(fd, buf, 0, buf.length, from);
      const text = buf.toString("utf8");
      const needle = "Reloading local server";
      // Counted once: a line that ended by the last look was counted then.
      for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
        if (from + at + needle.length > reloadScan.offset) reloadScan.count++;
      }
      reloadScan.offset = size;
    } finally {
      fs.closeSync(fd);
    }
  } catch {}
  return reloadScan.count;
}

// ---------------------------------------------------------------------------------------------
// HTTP, with every answer of a read or write accounted for

const traffic = { reads: 0, writes: 0, byRoute: {} };
const readFailures = []; // 5xx or no answer on a GET
const writeFailures = []; // 5xx or no answer on a write (or a scheduled event)

function route(p) {
  return p
    .replace(/\?.*$/, "")
    .replace(/^\/data\/(?!export|raw)[^/]+/, "/data/{uid}")
    .replace(/\/uploads\/csv\/.*/, "/uploads/csv/{name}")
    .replace(/\/uploads\/upl[^/]*/, "/uploads/{id}")
    .replace(/\/assets\/[^/]+\//, "/assets/{uid}/")
    .replace(/\/etl\/runs\/.*/, "/etl/runs/{id}");
}

async function call(method, p, { body, headers = {}, auth = false, timeoutMs = 90_000 } = {}) {
  const isRead = method === "GET" && !p.startsWith("/__scheduled");
  const h = { ...headers };
  if (auth) h.authorization = `Bearer ${TOKEN}`;
  if (body !== undefined && typeof body === "object" && !(body instanceof Uint8Array) && !Buffer.isBuffer(body)) {
    body = JSON.stringify(body);
    h["content-type"] = "application/json";
  }
  const key = `${method} ${route(p)}`;
  traffic.byRoute[key] ??= {};
  const counts = traffic.byRoute[key];
  if (isRead) traffic.reads++;
  else traffic.writes++;
  const t0 = Date.now();
  try {
    const res = await fetch(BASE + p, { method, headers: h, body, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    counts[res.status] = (counts[res.status] ?? 0) + 1;
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    if (res.status >= 500) {
      (isRead ? readFailures : writeFailures).push({
        at: iso(t0),
        req: `${method} ${p.slice(0, 120)}`,
        status: res.status,
        body: text.slice(0, 200),
      });
    }
    return { status: res.status, json, text, ms: Date.now() - t0 };
  } catch (e) {
    counts.error = (counts.error ?? 0) + 1;
    (isRead ? readFailures : writeFailures).push({
      at: iso(t0),
      req: `${method} ${p.slice(0, 120)}`,
      status: "no answer",
      body: String(e?.message ?? e),
    });
    return { status: 0, json: null, text: "", ms: Date.now() - t0 };
  }
}

// ---------------------------------------------------------------------------------------------
// What the soak sent: every accepted CSV row (the mock keeps what the upstreams served)

/** csv id -> Map(t ms -> price): every valid row sent in an upload that was answered 202. */
const csvSent = new Map();
/** The same for every upload tried: one answered 503 or not at all may still have been stored. */
const csvTried = new Map();
/** csv id -> its lane's kind: roll (old hours, rolled up), bulk (multi-block files), pin, mix (any order). */
const csvKind = new Map();
const rejectedUploads = []; // uploads not answered 202 (their rows do not count as sent)
const uploadsSent = []; // {name, upload_id, run_id, accepted, rejected, bytes, blocks, kind, duplicateOf}
let pinsAttempted = 0;
const pinsDone = []; // {at, source, source_id, target_gecko_id, asset_uid, status}
const runsStarted = []; // {run_id, source, trigger}
const events = { ticks: { coingecko: 0, coinpaprika: 0, conflicts: 0 }, cron: 0, rollups: 0, replays: 0, runAll: 0 };

/** A CSV price as text: a deterministic function of (id, time), so any two rows of an id at one time agree. */
function csvPrice(id, t) {
  const h = fnv(id);
  const basePrice = 0.05 + (h % 100_000) / 97;
  const wave = 0.04 * Math.sin(t / 2_900_000 + (h % 628) / 100);
  const jitter = ((fnv(`${id}@${t}`) % 20_001) - 10_000) / 1_000_000; // +-1 %
  return (basePrice * (1 + wave + jitter)).toPrecision(12);
}

function remember(into, id, t, priceText) {
  let m = into.get(id);
  if (!m) {
    m = new Map();
    into.set(id, m);
  }
  m.set(t, Number(priceText));
}

const CSV_HEADER = ["id", "symbol", "name", "price_usd", "market_cap", "volume_24h", "timestamp", "note"];
/** One CSV file; rows are {id, symbol, name, t, price?, invalid?}. Returns the text and the expected counts. */
function csvFile(rows, { delimiter = ",", crlf = false, bom = false, filler = 0, blankLines = 0, rnd = Math.random } = {}) {
  const nl = crlf ? "\r\n" : "\n";
  const lines = [CSV_HEADER.join(delimiter)];
  let accepted = 0;
  let rejected = 0;
  const pad = filler > 0 ? "x".repeat(filler) : "";
  for (const r of rows) {
    const price = r.invalid ?? csvPrice(r.id, r.t);
    const mcap = r.invalid ? "" : (Number(price) * 1_000_000).toFixed(2);
    lines.push([r.id, r.symbol, r.name, price, mcap, "12345.5", iso(r.t), pad].join(delimiter));
    if (r.invalid) rejected++;
    else accepted++;
    if (blankLines && rnd() < blankLines) lines.push("");
  }
  return { text: (bom ? "\uFEFF" : "") + lines.join(nl) + nl, accepted, rejected };
}

/** How many blocks the upload of `text` is stored in (the reading loop of src/ingest/csv-upload.ts, replayed; no quoted newlines here). */
function blocksOf(text) {
  const bytes = Buffer.from(text);
  const size = bytes.length;
  let readAt = 0;
  let start = -1; // where the unconsumed bytes begin; -1 until the header is consumed
  let eof = size === 0;
  let blocks = 0;
  for (let guard = 0; guard < 100_000; guard++) {
    if (!eof) {
      if (readAt >= size) eof = true;
      else readAt = Math.min(size, readAt + BLOCK_BYTES);
    }
    if (start < 0) {
      const nl = bytes.indexOf(0x0a);
      if ((nl < 0 || nl >= readAt) && !eof) continue;
      start = nl < 0 ? readAt : nl + 1;
    }
    const carry = bytes.subarray(start, readAt);
    const end = eof ? carry.length : carry.lastIndexOf(0x0a) + 1;
    if (end === 0 && !eof) continue;
    if (end >= BLOCK_BYTES || eof) {
      if (end > 0) blocks++;
      start += end;
      if (eof && start >= readAt) break;
    }
  }
  return blocks;
}

async function upload(name, file, kind, rows, extra = {}) {
  // Tried before the PUT (a reader may see a row stored before the PUT answers); sent once accepted.
  for (const r of rows) if (!r.invalid) remember(csvTried, r.id, r.t, csvPrice(r.id, r.t));
  const res = await call("PUT", `/uploads/csv/${encodeURIComponent(name)}`, {
    body: Buffer.from(file.text),
    headers: { "content-type": "text/csv" },
    auth: true,
  });
  if (res.status !== 202) {
    rejectedUploads.push({ name, status: res.status, kind, rows: rows.filter((r) => !r.invalid).map((r) => [r.id, r.t]) });
    return null;
  }
  for (const r of rows) if (!r.invalid) remember(csvSent, r.id, r.t, csvPrice(r.id, r.t));
  const u = res.json.data;
  uploadsSent.push({
    name,
    upload_id: u.upload_id,
    run_id: u.run_id,
    accepted: file.accepted,
    rejected: file.rejected,
    bytes: Buffer.byteLength(file.text),
    kind,
    ...extra,
  });
  return u;
}

const FINISHED = new Set(["succeeded", "partial", "failed"]);
async function waitUpload(uploadId, until) {
  while (Date.now() < until) {
    const r = await call("GET", `/uploads/${uploadId}`);
    if (FINISHED.has(r.json?.data?.status)) return r.json.data;
    await sleep(250);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Writers

let driveUntil = 0;
let hardUntil = 0;
const driving = () => Date.now() < driveUntil;

async function tickLane(source) {
  const rnd = rngFor(`tick-${source}`);
  while (driving()) {
    const r = await call("POST", `/etl/run/${source}`, { auth: true });
    if (r.status === 202) {
      events.ticks[source]++;
      runsStarted.push({ run_id: r.json.data.run_id, source, trigger: "manual" });
    } else if (r.status === 409) events.ticks.conflicts++;
    await sleep(between(rnd, 600, 2200));
  }
}

async function cronLane() {
  const rnd = rngFor("cron");
  await sleep(between(rnd, 1000, 4000));
  while (driving()) {
    const r = await call("GET", `/__scheduled?cron=${encodeURIComponent(TICK_CRON)}`);
    if (r.status === 200) events.cron++;
    if (rnd() < 0.3) {
      const all = await call("POST", "/etl/run-all", { auth: true });
      if (all.status === 202) {
        events.runAll++;
        for (const run of all.json.data.runs) runsStarted.push({ run_id: run.run_id, source: run.source, trigger: run.trigger });
      }
    }
    await sleep(between(rnd, 5000, 11000));
  }
}

const rollupLog = []; // {at, status, ms}
async function rollupLane() {
  const rnd = rngFor("rollup");
  await sleep(between(rnd, 2000, 4000));
  while (driving()) {
    const t0 = Date.now();
    const r = await call("GET", `/__scheduled?cron=${encodeURIComponent(RETENTION_CRON)}`);
    rollupLog.push({ at: iso(t0), status: r.status, ms: r.ms });
    if (r.status === 200) events.rollups++;
    await sleep(between(rnd, 2000, 6000));
  }
}

async function replayLane() {
  const rnd = rngFor("replay");
  await sleep(between(rnd, 4000, 8000));
  while (driving()) {
    let body = {};
    const pick = rnd();
    if (pick < 0.35) body = { source: rnd() < 0.5 ? "coingecko" : "coinpaprika" };
    else if (pick < 0.7) {
      const source = rnd() < 0.5 ? "coingecko" : "coinpaprika";
      const list = await call("GET", `/data/raw/${source}?page_size=50`);
      const items = list.json?.data ?? [];
      if (items.length) body = { raw_id: items[Math.floor(rnd() * items.length)].id };
    }
    const r = await call("POST", "/etl/replay", { body, auth: true });
    if (r.status === 202) {
      events.replays++;
      for (const run of r.json.data.runs) runsStarted.push({ run_id: run.run_id, source: run.source, trigger: "replay" });
    }
    await sleep(between(rnd, 3000, 8000));
  }
}

/**
 * Old hours that roll-ups work on: each id's points advance 5-13 minutes an upload through hours
 * older than RAW_POINTS_DAYS, uploads one after the other (each waits for the previous to finish,
 * so every point is newer than the stored quote when it arrives and must become a history point),
 * while roll-ups run at random times: hours are rolled up half-filled and then get late points.
 */
async function rollLane(lane, count) {
  const rnd = rngFor(`roll-${lane}`);
  const ids = Array.from({ length: count }, (_, k) => ({
    id: `soakroll-${lane}-${String(k).padStart(2, "0")}`,
    symbol: `SR${lane.toUpperCase()}${k}`,
    name: `Soakroll ${lane.toUpperCase()} Number ${k}`,
  }));
  for (const x of ids) csvKind.set(x.id, "roll");
  const start = Math.floor((Date.now() - (RAW_POINTS_DAYS + 2) * DAY) / HOUR) * HOUR - (lane === "a" ? 0 : 7 * HOUR);
  const last = new Map(ids.map((x) => [x.id, start + Math.floor(rnd() * 20) * 60_000]));
  // Stay clear of the roll-up cutoff (now - RAW_POINTS_DAYS), so that every hour sent is rolled up at the end.
  const limit = Date.now() - RAW_POINTS_DAYS * DAY - 3 * HOUR;
  let n = 0;
  while (driving()) {
    const rows = [];
    for (const x of ids) {
      if (rnd() < 0.15) continue;
      const t = last.get(x.id) + Math.floor(between(rnd, 5, 13) * 60_000) + Math.floor(rnd() * 1000);
      if (t > limit) continue;
      last.set(x.id, t);
      rows.push({ ...x, t });
    }
    if (!rows.length) break;
    const file = csvFile(rows, { delimiter: rnd() < 0.2 ? ";" : ",", crlf: rnd() < 0.2 });
    const name = `roll-${lane}-${n++}.csv`;
    const u = await upload(name, file, "roll", rows);
    if (u) await waitUpload(u.upload_id, hardUntil);
    // The same bytes under the same name again: not ingested a second time.
    if (u && rnd() < 0.15) {
      const again = await upload(name, file, "roll", rows, { duplicateOf: u.upload_id });
      if (again) await waitUpload(again.upload_id, hardUntil);
    }
    await sleep(between(rnd, 100, 900));
  }
}

/** Multi-block files: every row padded by an ignored column, so a file spans several blocks; ids in every file, times rising. */
async function bulkLane(count) {
  const rnd = rngFor("bulk");
  const ids = Array.from({ length: count }, (_, k) => ({
    id: `soakbulk-${String(k).padStart(3, "0")}`,
    symbol: `SB${k}X`,
    name: `Soakbulk Item ${k}`,
  }));
  for (const x of ids) csvKind.set(x.id, "bulk");
  const targetBytes = 3.3 * BLOCK_BYTES;
  const filler = Math.floor(targetBytes / count) - 120;
  let fileTime = Date.now() - 40 * 60_000;
  let n = 0;
  const copies = [];
  while (driving()) {
    fileTime = Math.min(Date.now() - 60_000, fileTime + 20_000);
    const rows = ids.filter(() => rnd() >= 0.1).map((x) => ({ ...x, t: fileTime + (fnv(x.id) % 9000) }));
    const file = csvFile(rows, { filler, crlf: rnd() < 0.3 });
    const name = `bulk-${n++}.csv`;
    const u = await upload(name, file, "bulk", rows, { blocks: blocksOf(file.text) });
    // A copy under another name is a new object: ingested again, nothing in it newer.
    if (u && rnd() < 0.3)
      copies.push(upload(`copy-of-${name}`, file, "bulk", rows, { blocks: blocksOf(file.text), duplicateOf: u.upload_id }));
    if (u) await waitUpload(u.upload_id, hardUntil);
    await sleep(between(rnd, 200, 1500));
  }
  await Promise.all(copies);
}

/** Ids pinned by hand while their rows keep coming: rows one upload after the other, recent and rising. */
const PIN_IDS = Array.from({ length: 8 }, (_, k) => ({ id: `soakpin-${k}`, symbol: `SPN${k}Q`, name: `Soakpin Thing ${k}` }));
async function pinRowsLane() {
  const rnd = rngFor("pin-rows");
  for (const x of PIN_IDS) csvKind.set(x.id, "pin");
  const last = new Map(PIN_IDS.map((x) => [x.id, Date.now() - 30 * 60_000]));
  let n = 0;
  while (driving()) {
    const rows = [];
    for (const x of PIN_IDS) {
      if (rnd() < 0.2) continue;
      const t = Math.min(Date.now() - 1000, last.get(x.id) + Math.floor(between(rnd, 5_000, 25_000)));
      if (t <= last.get(x.id)) continue;
      last.set(x.id, t);
      rows.push({ ...x, t });
    }
    if (rows.length) {
      const u = await upload(`pin-rows-${n++}.csv`, csvFile(rows, { delimiter: rnd() < 0.3 ? "\t" : "," }), "pin", rows);
      if (u) await waitUpload(u.upload_id, hardUntil);
    }
    await sleep(between(rnd, 200, 1200));
  }
}

/**
 * Pins its own pin ids, now and then, each to a CoinGecko-only asset of the id's own pool (so no
 * asset gets two CSV ids). Every pin publishes the read model: two lanes make publishes overlap,
 * with each other and with the runs' closes.
 */
async function pinLane(lane, ks) {
  const rnd = rngFor(`pins-${lane}`);
  const only = upstream.geckoOnlyIds;
  const pools = PIN_IDS.map((_, k) => Array.from({ length: 4 }, (_, j) => only[(k * 4 + j) % only.length]));
  const turn = PIN_IDS.map(() => 0);
  await sleep(between(rnd, 2000, 5000));
  const pinOne = async (k) => {
    const target = pools[k][turn[k] % pools[k].length];
    const uid = idToUid.get(`coingecko:${target}`);
    if (!uid) return;
    turn[k]++;
    pinsAttempted++;
    const r = await call("PUT", `/assets/${encodeURIComponent(uid)}/mappings`, {
      body: { source: "csv", source_id: PIN_IDS[k].id },
      auth: true,
    });
    pinsDone.push({
      at: iso(Date.now()),
      source: "csv",
      source_id: PIN_IDS[k].id,
      target_gecko_id: target,
      asset_uid: uid,
      status: r.status,
    });
  };
  while (driving()) {
    // One to three of its ids at once (never one id twice at once: its last pin stays known).
    const burst = [...ks].sort(() => rnd() - 0.5).slice(0, 1 + Math.floor(rnd() * 3));
    await Promise.all(burst.map(pinOne));
    await sleep(between(rnd, 400, 2000));
  }
}

/** Rows of a shared set of ids at random times of the last hours (old rows among new ones), uploads overlapping, some rows invalid. */
const MIX_IDS = Array.from({ length: 40 }, (_, k) => ({
  id: `soakmix-${String(k).padStart(2, "0")}`,
  symbol: `SMX${k}Z`,
  name: `Soakmix Entry ${k}`,
}));
async function mixLane(lane) {
  const rnd = rngFor(`mix-${lane}`);
  for (const x of MIX_IDS) csvKind.set(x.id, "mix");
  let n = 0;
  const pending = [];
  while (driving()) {
    const pickN = 8 + Math.floor(rnd() * 20);
    const picked = [...MIX_IDS].sort(() => rnd() - 0.5).slice(0, pickN);
    const rows = picked.map((x) => {
      const t = Date.now() - Math.floor(rnd() * 6 * HOUR);
      const bad = rnd();
      return { ...x, t, invalid: bad < 0.03 ? "0" : bad < 0.05 ? "-4.5" : bad < 0.07 ? "n/a" : undefined };
    });
    const file = csvFile(rows, {
      delimiter: [",", ",", ";", "\t"][Math.floor(rnd() * 4)],
      crlf: rnd() < 0.3,
      bom: rnd() < 0.2,
      blankLines: 0.05,
      rnd,
    });
    pending.push(upload(`mix-${lane}-${n++}.csv`, file, "mix", rows));
    // Overlapping, but at most two unfinished at once: a flood would only queue up behind itself
    // and starve the other lanes.
    while (driving() && (await unfinished(pending)) >= 2) await sleep(300);
    await sleep(between(rnd, 200, 900));
  }
  await Promise.all(pending);
}

async function unfinished(pending) {
  let n = 0;
  for (const p of pending.slice(-4)) {
    const u = await p;
    if (!u || FINISHED.has(u.status)) continue;
    const r = await call("GET", `/uploads/${u.upload_id}`);
    if (r.json?.data && FINISHED.has(r.json.data.status)) u.status = r.json.data.status;
    else n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Readers and what they saw

const seen = {
  nonEmptyAt: null,
  emptyAfter: [], // /data or export answering total 0 after a non-empty answer
  maxPairs: 0,
  shrinks: [], // exports with fewer (source, id) pairs than an earlier one, beyond what pins explain
  exports: 0,
  listReads: 0,
  detailReads: 0,
  historyReads: 0,
  idsReads: 0,
};
const idToUid = new Map(); // "source:id" -> asset_uid, from the latest export
let lastExport = new Map(); // uid -> {updated_at, ids}
const regressions = []; // a reader saw an id's source time go backwards
const lastSeenQuote = new Map(); // "source:id" -> {t, at, uid}
const unreal = []; // served values that the soak never sent

function sentPrice(source, id, t) {
  if (source === "csv") return csvTried.get(id)?.get(t);
  return upstream.delivered[source]?.get(id)?.get(t)?.price;
}
const samePrice = (a, b) => a !== undefined && b !== undefined && Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));

async function listReader() {
  const rnd = rngFor("list-reader");
  while (driving()) {
    const r = await call("GET", `/data?page_size=5&page=1${rnd() < 0.3 ? "&sort=price&order=desc" : ""}`);
    if (r.status === 200) {
      seen.listReads++;
      const total = r.json.metadata.total;
      if (total > 0) seen.nonEmptyAt ??= iso(Date.now());
      else if (seen.nonEmptyAt) seen.emptyAfter.push({ at: iso(Date.now()), via: "GET /data", total });
    }
    await sleep(between(rnd, 60, 250));
  }
}

function pinsSoFar() {
  return pinsDone.filter((p) => p.status === 200).length;
}
/** Pins that may have taken effect by now (answered or still in flight): what may explain a smaller universe. */
const pinSlack = () => pinsAttempted;

async function readExport() {
  const r = await call("GET", "/data/export?format=ndjson");
  if (r.status !== 200) return null;
  const assets = r.text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  return assets;
}

function takeExport(assets, pinsBefore) {
  seen.exports++;
  const at = iso(Date.now());
  if (!assets.length) {
    if (seen.nonEmptyAt) seen.emptyAfter.push({ at, via: "GET /data/export", total: 0 });
    return;
  }
  seen.nonEmptyAt ??= at;
  const now = new Map();
  let pairs = 0;
  for (const a of assets) {
    const ids = Object.entries(a.source_ids)
      .map(([s, id]) => `${s}:${id}`)
      .sort();
    pairs += ids.length;
    for (const k of ids) idToUid.set(k, a.asset_uid);
    now.set(a.asset_uid, { updated_at: a.updated_at, ids: ids.join(",") });
    const before = lastExport.get(a.asset_uid);
    // Same ids behind the asset: its newest source time can only move forward.
    if (before && before.ids === now.get(a.asset_uid).ids && a.updated_at < before.updated_at) {
      regressions.push({ at, via: "/data/export", asset_uid: a.asset_uid, before: before.updated_at, after: a.updated_at });
    }
  }
  if (pairs < seen.maxPairs - pinsBefore)
    seen.shrinks.push({ at, pairs, max_before: seen.maxPairs, pins_so_far: pinsBefore, assets: assets.length });
  seen.maxPairs = Math.max(seen.maxPairs, pairs);
  lastExport = now;
}

async function exportReader() {
  const rnd = rngFor("export-reader");
  while (driving()) {
    const assets = await readExport();
    if (assets) takeExport(assets, pinSlack());
    await sleep(between(rnd, 700, 2000));
  }
}

function checkQuotes(detail, via) {
  const at = iso(Date.now());
  for (const q of detail.quotes ?? []) {
    const key = `${q.source}:${q.source_id}`;
    const t = Date.parse(q.source_updated_at);
    const prev = lastSeenQuote.get(key);
    if (prev && t < prev.t)
      regressions.push({ at, via, id: key, asset_uid: detail.asset_uid, before: iso(prev.t), after: q.source_updated_at });
    if (!prev || t > prev.t) lastSeenQuote.set(key, { t, at, uid: detail.asset_uid });
    const sent = sentPrice(q.source, q.source_id, t);
    if (!samePrice(sent, q.price_usd))
      unreal.push({
        at,
        via,
        id: key,
        source_updated_at: q.source_updated_at,
        served: q.price_usd,
        sent: sent ?? "no record sent at that time",
      });
  }
}

/** History points the soak can attribute: one mapping of that source behind the asset. */
function checkHistoryReal(detail, points, via) {
  const bySource = new Map();
  for (const m of detail.mappings ?? []) bySource.set(m.source, bySource.has(m.source) ? null : m.source_id);
  for (const p of points) {
    if (p.resolution !== "raw") continue;
    const id = bySource.get(p.source);
    if (!id) continue;
    const t = Date.parse(p.at);
    const sent = sentPrice(p.source, id, t);
    if (!samePrice(sent, p.price_usd))
      unreal.push({
        at: iso(Date.now()),
        via,
        id: `${p.source}:${id}`,
        point_at: p.at,
        served: p.price_usd,
        sent: sent ?? "no record sent at that time",
      });
  }
}

async function detailReader(name) {
  const rnd = rngFor(`detail-${name}`);
  let n = 0;
  while (driving()) {
    const keys = [...idToUid.keys()];
    if (!keys.length) {
      await sleep(300);
      continue;
    }
    const key = keys[Math.floor(rnd() * keys.length)];
    const uid = idToUid.get(key);
    const r = await call("GET", `/data/${encodeURIComponent(uid)}`);
    if (r.status === 200) {
      seen.detailReads++;
      checkQuotes(r.json.data, "GET /data/{uid}");
      if (n++ % 3 === 0) {
        const h = await call("GET", `/data/${encodeURIComponent(uid)}/history?limit=10000`);
        if (h.status === 200) {
          seen.historyReads++;
          checkHistoryReal(r.json.data, h.json.data, "GET /data/{uid}/history");
        }
      }
    }
    if (rnd() < 0.25) {
      const sample = Array.from({ length: 20 }, () => keys[Math.floor(rnd() * keys.length)]);
      const ids = await call("GET", `/data?ids=${encodeURIComponent([...new Set(sample)].join(","))}&page_size=250`);
      if (ids.status === 200) seen.idsReads++;
    }
    await sleep(between(rnd, 20, 120));
  }
}

// ---------------------------------------------------------------------------------------------
// The local state, read directly: does the published pointer resolve to a stored snapshot?

let d1 = null;
let r2 = null;
function openState() {
  const find = (sub) => {
    const dir = path.join(STATE, "v3", sub);
    if (!fs.existsSync(dir)) return null;
    const f = fs.readdirSync(dir).find((x) => x.endsWith(".sqlite") && x !== "metadata.sqlite");
    return f ? path.join(dir, f) : null;
  };
  if (!d1) {
    const f = find("d1/miniflare-D1DatabaseObject");
    if (f) d1 = new DatabaseSync(f, { readOnly: true });
  }
  if (!r2) {
    const f = find("r2/miniflare-R2BucketObject");
    if (f) r2 = new DatabaseSync(f, { readOnly: true });
  }
  return d1 && r2;
}

const pointer = { checks: 0, errors: 0, dangling: [], lastError: null };
/**
 * One check: the object D1's row names is in R2 and holds that version or a newer one (a snapshot is
 * stored before its version is named). The row is read twice around the object lookup, so a pointer
 * that moved on is not blamed.
 */
function checkPointer() {
  try {
    if (!openState()) return null;
    const a = d1.prepare("SELECT version, key FROM read_model WHERE id = 1").get();
    if (!a?.key) return { ok: true, version: a?.version ?? 0, key: null };
    const obj = r2.prepare("SELECT size, custom_metadata FROM _mf_objects WHERE key = ?").get(a.key);
    pointer.checks++;
    if (obj && Number(JSON.parse(obj.custom_metadata).version) >= a.version) return { ok: true, version: a.version, key: a.key };
    const b = d1.prepare("SELECT version, key FROM read_model WHERE id = 1").get();
    if (b?.version === a.version && b?.key === a.key) {
      const left = r2
        .prepare("SELECT key, custom_metadata FROM _mf_objects WHERE key LIKE 'read-model/%' ORDER BY key")
        .all()
        .map((x) => `${x.key} ${x.custom_metadata}`);
      return { ok: false, version: a.version, key: a.key, snapshots_in_r2: left };
    }
    return { ok: true, version: b?.version, key: b?.key };
  } catch (e) {
    pointer.errors++;
    pointer.lastError = String(e?.message ?? e);
    return null;
  }
}

let watching = true;
async function pointerWatcher() {
  let dangling = null;
  let lastReloadCheck = 0;
  while (watching) {
    // A reload loses the queued messages: nothing waited for would come, so the lanes stop waiting.
    if (Date.now() - lastReloadCheck > 2000) {
      lastReloadCheck = Date.now();
      if (reloadsSoFar()) hardUntil = Math.min(hardUntil, driveUntil);
    }
    const c = checkPointer();
    if (c && !c.ok) {
      // One entry per dangling version, with how long it stayed so.
      if (dangling?.version !== c.version) {
        dangling = {
          at: iso(Date.now()),
          version: c.version,
          key: c.key,
          snapshots_in_r2: c.snapshots_in_r2,
          seen_for_ms: 0,
          t0: Date.now(),
        };
        pointer.dangling.push(dangling);
      } else dangling.seen_for_ms = Date.now() - dangling.t0;
    }
    await sleep(100);
  }
}

function mappingOf(source, sourceId) {
  try {
    if (!openState()) return null;
    return (
      d1.prepare("SELECT asset_uid, pinned, rule FROM asset_mappings WHERE source = ? AND source_id = ?").get(source, sourceId) ?? null
    );
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The run

const results = [];
function verdict(name, failures, passNote = "") {
  results.push({ name, ok: failures.length === 0, failures, passNote });
}
const brief = (x) => JSON.stringify(x);

async function main() {
  const t0 = Date.now();
  console.log(
    `soak: ${SECONDS}s, seed ${SEED}, worker on ${BASE} (${LIVE ? "working tree" : REF ? `tree of ${REF}` : "copy of the working tree"}); csv block ${BLOCK_BYTES} bytes, roll-up after ${RAW_POINTS_DAYS} days, cron "${TICK_CRON}", retention cron "${RETENTION_CRON}"`,
  );
  await startStack();
  const startedIn = Date.now() - t0;
  console.log(`stack up in ${(startedIn / 1000).toFixed(1)}s (mock upstream on 127.0.0.1:${upstream.port}); driving for ${SECONDS}s`);

  const driveStart = Date.now();
  driveUntil = driveStart + SECONDS * 1000;
  hardUntil = driveUntil + 90_000;
  const lanes = [
    tickLane("coingecko"),
    tickLane("coinpaprika"),
    cronLane(),
    rollupLane(),
    replayLane(),
    rollLane("a", 12),
    rollLane("b", 12),
    bulkLane(300),
    pinRowsLane(),
    pinLane("a", [0, 1, 2, 3]),
    pinLane("b", [4, 5, 6, 7]),
    mixLane("a"),
    mixLane("b"),
    listReader(),
    exportReader(),
    detailReader("a"),
    detailReader("b"),
  ];
  const progress = setInterval(() => {
    console.log(
      `  t+${Math.round((Date.now() - driveStart) / 1000)}s: ${traffic.writes} writes, ${traffic.reads} reads, ${uploadsSent.length} uploads, ${events.rollups} roll-ups, ${pinsSoFar()} pins, upstream ${upstream.stats.requests} requests (${upstream.stats.requests - upstream.stats.ok} faulted)`,
    );
  }, 15_000);
  const watcher = pointerWatcher();
  await Promise.all(lanes);
  clearInterval(progress);
  const droveFor = Date.now() - driveStart;
  // A last tick of every source, the CSV sweep among them, with everything uploaded: at least
  // SWEEP_OBJECTS objects under uploads/, more than one D1 statement binds (100 parameters).
  if (!workerExit) {
    const rnd = rngFor("top-up");
    for (let n = 0; uploadsSent.length < SWEEP_OBJECTS && n < SWEEP_OBJECTS; n++) {
      const rows = [...MIX_IDS]
        .sort(() => rnd() - 0.5)
        .slice(0, 5)
        .map((x) => ({ ...x, t: Date.now() - Math.floor(rnd() * 6 * HOUR) }));
      await upload(`top-up-${n}.csv`, csvFile(rows), "mix", rows);
    }
    const all = await call("POST", "/etl/run-all", { auth: true });
    if (all.status === 202) {
      events.runAll++;
      for (const run of all.json.data.runs) runsStarted.push({ run_id: run.run_id, source: run.source, trigger: run.trigger });
    }
  }

  // Drain: every run finished (runs retried by the queue included), bounded.
  const drainStart = Date.now();
  let stats = null;
  while (Date.now() - drainStart < DRAIN_S * 1000 && !workerExit) {
    const r = await call("GET", "/stats");
    stats = r.json?.data;
    if (stats && stats.runs.queued === 0 && stats.runs.running === 0) break;
    await sleep(1000);
  }
  const drainedIn = Date.now() - drainStart;
  // The last roll-up, after every late point is in: every old hour sent is then rolled up.
  let finalRollup = null;
  for (let i = 0; i < 3 && finalRollup?.status !== 200 && !workerExit; i++) {
    finalRollup = await call("GET", `/__scheduled?cron=${encodeURIComponent(RETENTION_CRON)}`);
  }
  const finalStats = (await call("GET", "/stats")).json?.data;
  watching = false;
  await watcher;
  const verifyStart = Date.now();
  console.log(
    `drove ${(droveFor / 1000).toFixed(0)}s, drained in ${(drainedIn / 1000).toFixed(0)}s (queued ${finalStats?.runs.queued}, running ${finalStats?.runs.running}); final roll-up answered ${finalRollup?.status}; verifying`,
  );

  const reloads = reloadsSoFar();
  verdict(
    "worker-stays-up",
    [
      ...(workerExit
        ? [
            `wrangler dev exited at ${workerExit.at} (code ${workerExit.code}, signal ${workerExit.signal}); see ${path.relative(root, DEV_LOG)}`,
          ]
        : []),
      ...(reloads
        ? [
            `wrangler dev reloaded the Worker ${reloads} times (a file it watches changed): queued messages and isolate state were lost, so later failures may be the reload's`,
          ]
        : []),
    ],
    "one Worker process, never reloaded",
  );
  if (!workerExit) await verify(finalStats);
  else console.log("the Worker is gone: the other invariants were not checked");

  // ---- report
  const problems = logProblems();
  console.log(
    `drove: ${events.ticks.coingecko} coingecko + ${events.ticks.coinpaprika} coinpaprika ticks (${events.ticks.conflicts} answered 409), ${events.cron} cron ticks, ${events.runAll} run-all, ${events.rollups} roll-ups, ${events.replays} replays, ${uploadsSent.length} uploads (${uploadsSent.filter((u) => u.duplicateOf).length} duplicates, ${uploadsSent.filter((u) => (u.blocks ?? 1) > 1).length} multi-block up to ${Math.max(0, ...uploadsSent.map((u) => u.blocks ?? 1))} blocks), ${pinsSoFar()} pins, ${csvSent.size} csv ids / ${[...csvSent.values()].reduce((a, m) => a + m.size, 0)} csv points`,
  );
  console.log(
    `upstream: ${upstream.stats.requests} requests: ${upstream.stats.r429} 429, ${upstream.stats.r5xx} 5xx, ${upstream.stats.truncated} truncated, ${upstream.stats.slow} slow, ${upstream.stats.hang} never answered; reads: ${seen.listReads} /data, ${seen.exports} exports, ${seen.detailReads} details, ${seen.historyReads} histories, ${seen.idsReads} ids=; pointer checked ${pointer.checks} times`,
  );
  console.log(`worker log: ${brief(problems)}`);
  console.log(
    `wall time ${((Date.now() - t0) / 1000).toFixed(0)}s: startup ${(startedIn / 1000).toFixed(0)}s, drive ${(droveFor / 1000).toFixed(0)}s, drain ${(drainedIn / 1000).toFixed(0)}s, verification ${((Date.now() - verifyStart) / 1000).toFixed(0)}s`,
  );
  fs.writeFileSync(
    path.join(OUT, "soak-report.json"),
    JSON.stringify(
      {
        options: { SECONDS, SEED, PORT, LIVE, REF },
        events,
        traffic,
        upstream: upstream.stats,
        seen,
        pointer,
        results,
        rollupLog,
        readFailures,
        writeFailures,
        regressions,
        unreal,
        pinsDone,
        uploadsSent,
        rejectedUploads,
      },
      null,
      1,
    ),
  );
  fs.writeFileSync(
    path.join(OUT, "soak-sent.json"),
    JSON.stringify({
      csv: Object.fromEntries([...csvSent].map(([id, m]) => [id, { kind: csvKind.get(id), points: [...m].map(([t, p]) => [iso(t), p]) }])),
      coingecko: Object.fromEntries([...upstream.delivered.coingecko].map(([id, m]) => [id, [...m].map(([t, e]) => [iso(t), e.price])])),
      coinpaprika: Object.fromEntries(
        [...upstream.delivered.coinpaprika].map(([id, m]) => [id, [...m].map(([t, e]) => [iso(t), e.price])]),
      ),
    }),
  );

  let passed = 0;
  let failed = 0;
  for (const r of results) {
    if (r.ok) {
      passed++;
      console.log(`PASS ${r.name}${r.passNote ? ` (${r.passNote})` : ""}`);
    } else {
      failed++;
      console.log(
        `FAIL ${r.name}: ${r.failures.slice(0, 6).join("; ")}${r.failures.length > 6 ? `; … ${r.failures.length - 6} more` : ""}`,
      );
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed;
}

// ---------------------------------------------------------------------------------------------
// End checks

async function pool(items, n, fn) {
  const out = new Array(items.length);
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) {
        const k = i++;
        out[k] = await fn(items[k], k);
      }
    }),
  );
  return out;
}

const newest = (byT) => {
  let best = null;
  for (const [t, v] of byT) if (!best || t > best.t) best = { t, price: typeof v === "number" ? v : v.price };
  return best;
};

async function verify(finalStats) {
  const exported = await readExport();
  if (exported) takeExport(exported, pinSlack());
  const finalExport = exported ?? [];
  const finalList = await call("GET", "/data?page_size=1");
  if (finalList.status === 200 && finalList.json.metadata.total === 0 && seen.nonEmptyAt)
    seen.emptyAfter.push({ at: iso(Date.now()), via: "GET /data (after drain)", total: 0 });
  const finalPointer = checkPointer();
  const listed = new Map();
  for (const a of finalExport) for (const [s, id] of Object.entries(a.source_ids)) listed.set(`${s}:${id}`, a.asset_uid);

  // ---- reads
  verdict(
    "reads-never-5xx",
    readFailures.map((f) => `${f.req} -> ${f.status} at ${f.at}${f.body ? ` (${f.body.slice(0, 100)})` : ""}`),
    `${traffic.reads} reads`,
  );
  verdict(
    "writes-never-5xx",
    writeFailures.map((f) => `${f.req} -> ${f.status} at ${f.at}${f.body ? ` (${f.body.slice(0, 100)})` : ""}`),
    `${traffic.writes} writes and scheduled events`,
  );

  // ---- /data never empty, never a smaller universe
  verdict(
    "data-never-empty-after-first-data",
    seen.emptyAfter.map((e) => `${e.via} answered total ${e.total} at ${e.at} (first data seen at ${seen.nonEmptyAt})`),
    `${seen.listReads} list reads, ${seen.exports} exports, first data at ${seen.nonEmptyAt}`,
  );
  verdict(
    "universe-never-shrinks",
    seen.shrinks.map(
      (s) => `export at ${s.at} listed ${s.pairs} source ids, ${s.max_before} listed before, ${s.pins_so_far} pins could explain`,
    ),
    `up to ${seen.maxPairs} source ids listed`,
  );

  // ---- published pointer
  const pointerFailures = pointer.dangling.map(
    (d) =>
      `read_model names v${d.version} at ${d.key}, not in R2 at that version or newer (seen at ${d.at} for ${d.seen_for_ms} ms; R2 held ${d.snapshots_in_r2.join(", ") || "no snapshot"}): an isolate loading it now answers total 0 or keeps an older snapshot`,
  );
  if (finalPointer && !finalPointer.ok) pointerFailures.push(`after drain: read_model names v${finalPointer.version} at ${finalPointer.key}, not in R2 at that version or newer`);
  if (!finalPointer) pointerFailures.push(`the local state could not be read (${pointer.lastError ?? "no D1/R2 files"})`);
  verdict("published-pointer-resolves", pointerFailures, `${pointer.checks} checks, final v${finalPointer?.version}`);

  // ---- nothing lost: the newest record each id was sent is what /data/{uid} serves for it
  const expected = [];
  for (const [id, m] of csvSent) expected.push({ source: "csv", id, want: newest(m) });
  for (const source of ["coingecko", "coinpaprika"])
    for (const [id, m] of upstream.delivered[source]) if (m.size) expected.push({ source, id, want: newest(m) });
  const uidOf = new Map();
  const lost = [];
  for (const e of expected) {
    const m = mappingOf(e.source, e.id);
    if (!m) lost.push(`${e.source}:${e.id} has no mapping (newest sent ${iso(e.want.t)})`);
    else uidOf.set(`${e.source}:${e.id}`, m.asset_uid);
  }
  const uids = [...new Set(uidOf.values())];
  const details = new Map();
  await pool(uids, 4, async (uid) => {
    const r = await call("GET", `/data/${encodeURIComponent(uid)}`);
    if (r.status === 200) details.set(uid, r.json.data);
  });
  let matched = 0;
  let uncertainServed = 0;
  for (const e of expected) {
    const key = `${e.source}:${e.id}`;
    const uid = uidOf.get(key);
    if (!uid) continue;
    const d = details.get(uid);
    if (!d) {
      lost.push(`${key}: GET /data/${uid} did not answer 200`);
      continue;
    }
    checkQuotes(d, "GET /data/{uid} (after drain)");
    const q = d.quotes.find((x) => x.source === e.source && x.source_id === e.id);
    if (!q) {
      const other = d.quotes.find((x) => x.source === e.source);
      lost.push(
        `${key}: /data/${uid} serves no quote of it${other ? ` (its ${e.source} quote is ${other.source_id}'s)` : ""}; newest sent ${iso(e.want.t)}`,
      );
      continue;
    }
    const t = Date.parse(q.source_updated_at);
    // A newer row from an upload whose PUT went unanswered may have been stored: it may be served instead.
    const uncertain = e.source === "csv" && t > e.want.t && samePrice(csvTried.get(e.id)?.get(t), q.price_usd);
    if (uncertain) uncertainServed++;
    else if (t !== e.want.t || !samePrice(q.price_usd, e.want.price)) {
      lost.push(`${key}: serves ${q.source_updated_at} $${q.price_usd}, newest sent ${iso(e.want.t)} $${e.want.price}`);
      continue;
    }
    if (listed.get(key) !== uid) {
      lost.push(`${key}: /data lists it ${listed.has(key) ? `under ${listed.get(key)}` : "nowhere"}, its mapping is ${uid}`);
      continue;
    }
    matched++;
  }
  verdict(
    "nothing-lost",
    lost,
    `${matched} ids: newest record sent = served quote, listed by /data${uncertainServed ? ` (${uncertainServed} serve a newer row of an unanswered upload)` : ""}`,
  );

  // ---- nothing regressed (readers during the run, and the final read against the newest seen)
  verdict(
    "nothing-regressed",
    regressions.map((r) => `${r.via} ${r.id ?? r.asset_uid}: ${r.before} then ${r.after} at ${r.at}`),
    `${lastSeenQuote.size} ids followed`,
  );
  verdict(
    "served-values-are-sent-values",
    unreal.map(
      (u) =>
        `${u.via} ${u.id} at ${u.source_updated_at ?? u.point_at}: served $${u.served}, sent ${typeof u.sent === "number" ? `$${u.sent}` : u.sent}`,
    ),
    "every quote and raw history point read matches a record sent at that time",
  );

  // ---- pins hold
  const lastPin = new Map();
  for (const p of pinsDone) if (p.status === 200) lastPin.set(p.source_id, p);
  const pinFailures = [];
  for (const [id, p] of lastPin) {
    const m = mappingOf("csv", id);
    if (m?.asset_uid !== p.asset_uid)
      pinFailures.push(`csv:${id} pinned last to ${p.asset_uid} at ${p.at}, mapped to ${m?.asset_uid ?? "nothing"}`);
  }
  for (const p of pinsDone)
    if (p.status !== 200) pinFailures.push(`PUT /assets/${p.asset_uid}/mappings csv:${p.source_id} answered ${p.status}`);
  verdict("pins-hold", pinFailures, `${lastPin.size} pinned ids`);

  // ---- history
  await verifyHistory(details, uidOf);

  // ---- runs
  await verifyRuns(finalStats);
}

async function verifyHistory(details, uidOf) {
  const weight = [];
  const points = [];
  let hoursChecked = 0;
  let hoursUnsure = 0;
  let idsChecked = 0;
  const rnd = rngFor("verify");
  const bulkIds = [...csvKind].filter(([, k]) => k === "bulk").map(([id]) => id);
  const sampleBulk = new Set(bulkIds.sort(() => rnd() - 0.5).slice(0, 30));
  const upstreamSample = ["coingecko", "coinpaprika"].flatMap((s) =>
    [...upstream.delivered[s].keys()]
      .sort(() => rnd() - 0.5)
      .slice(0, 15)
      .map((id) => ({ source: s, id })),
  );
  const targets = [
    ...[...csvKind]
      .filter(([id, k]) => csvSent.has(id) && (k !== "bulk" || sampleBulk.has(id)))
      .map(([id, kind]) => ({ source: "csv", id, kind })),
    ...upstreamSample.map((x) => ({ ...x, kind: "upstream" })),
  ];
  const hourStart = (t) => Math.floor(t / HOUR) * HOUR;
  await pool(targets, 4, async (x) => {
    const key = `${x.source}:${x.id}`;
    const uid = uidOf.get(key);
    const d = uid && details.get(uid);
    if (!d) return;
    const sameSource = (d.mappings ?? []).filter((m) => m.source === x.source);
    if (sameSource.length !== 1 || sameSource[0].source_id !== x.id) {
      points.push(`${key}: its asset ${uid} has ${sameSource.length} ${x.source} mappings; its history cannot be told apart`);
      return;
    }
    const r = await call("GET", `/data/${encodeURIComponent(uid)}/history?source=${x.source}&limit=10000`);
    if (r.status !== 200) return;
    idsChecked++;
    const served = r.json.data;
    const sent =
      x.source === "csv" ? csvSent.get(x.id) : new Map([...upstream.delivered[x.source].get(x.id)].map(([t, e]) => [t, e.price]));
    const tried = x.source === "csv" ? csvTried.get(x.id) : sent;
    // Rows of uploads whose PUT went unanswered: stored or not, nobody knows.
    const unsure = [...tried.keys()].filter((t) => !sent.has(t));
    if (x.kind === "roll") {
      // Every hour sent is older than the roll-up cutoff: served as one hourly point, the mean of the hour's points.
      const byHour = new Map();
      for (const [t, p] of sent) {
        const h = hourStart(t);
        if (!byHour.has(h)) byHour.set(h, []);
        byHour.get(h).push({ t, p });
      }
      for (const [h, ps] of byHour) {
        if (unsure.some((t) => hourStart(t) === h)) {
          hoursUnsure++;
          continue;
        }
        hoursChecked++;
        const inHour = served.filter((s) => hourStart(Date.parse(s.at)) === h);
        const want = ps.reduce((a, b) => a + b.p, 0) / ps.length;
        const hourly = inHour.filter((s) => s.resolution === "hour");
        const raw = inHour.filter((s) => s.resolution === "raw");
        if (hourly.length !== 1 || raw.length) {
          weight.push(
            `${key} hour ${iso(h)}: served ${hourly.length} hourly and ${raw.length} raw points, want one hourly point (mean of ${ps.length})`,
          );
          continue;
        }
        if (!samePrice(hourly[0].price_usd, want)) {
          // Which points the served mean is made of, when it is the mean of the hour's last points.
          const sorted = ps.sort((a, b) => a.t - b.t);
          let tail = null;
          for (let k = 1; k < sorted.length; k++) {
            const rest = sorted.slice(k);
            if (samePrice(rest.reduce((a, b) => a + b.p, 0) / rest.length, hourly[0].price_usd)) {
              tail = rest.length;
              break;
            }
          }
          weight.push(
            `${key} hour ${iso(h)}: hourly $${hourly[0].price_usd}, mean of its ${ps.length} points $${want}${tail ? ` (= mean of only its last ${tail} points: the earlier ${ps.length - tail} lost their weight)` : ""}`,
          );
        }
      }
      const stray = served.filter(
        (s) => !byHour.has(hourStart(Date.parse(s.at))) && !unsure.some((t) => hourStart(t) === hourStart(Date.parse(s.at))),
      );
      if (stray.length) weight.push(`${key}: ${stray.length} points in hours nothing was sent for (first ${stray[0].at})`);
      return;
    }
    const raw = served.filter((s) => s.resolution === "raw");
    const servedT = new Map(raw.map((s) => [Date.parse(s.at), s.price_usd]));
    for (const [t, p] of servedT) {
      if (!samePrice(tried.get(t), p)) points.push(`${key}: history point ${iso(t)} $${p} was never sent`);
    }
    if (served.length !== raw.length) points.push(`${key}: ${served.length - raw.length} rolled-up points in recent hours`);
    const top = newest(sent);
    if (!servedT.has(top.t) && !unsure.some((t) => t > top.t))
      points.push(`${key}: newest point sent (${iso(top.t)}) missing from its history`);
    if (x.kind === "bulk" || x.kind === "pin") {
      // Rows of these ids went up one upload after the other, each newer: every one is a history point.
      const missing = [...sent.keys()].filter((t) => !servedT.has(t));
      if (missing.length)
        points.push(`${key}: ${missing.length} of ${sent.size} points sent missing from its history (first ${iso(Math.min(...missing))})`);
    }
  });
  verdict(
    "history-weights-exact",
    weight,
    `${hoursChecked} old hours of ${[...csvKind.values()].filter((k) => k === "roll").length} ids, each one hourly point = the mean of the points sent in it${hoursUnsure ? `; ${hoursUnsure} hours with rows of unanswered uploads not checked` : ""}`,
  );
  verdict("history-points-kept", points, `${idsChecked} ids: raw points are points sent; the newest is kept; rising rows all kept`);
}

async function verifyRuns(finalStats) {
  const runs = [];
  for (let page = 1; page <= 400; page++) {
    const r = await call("GET", `/stats/runs?page=${page}&page_size=250`);
    const items = r.json?.data ?? [];
    runs.push(...items);
    if (items.length < 250) break;
  }
  const open = runs.filter((r) => !FINISHED.has(r.status));
  verdict(
    "runs-all-finish",
    [
      ...open.slice(0, 20).map((r) => `${r.run_id} (${r.source}, ${r.trigger}) still ${r.status}, started ${r.started_at ?? "never"}`),
      ...(open.length > 20 ? [`${open.length} runs open in all`] : []),
      ...(finalStats && (finalStats.runs.queued || finalStats.runs.running)
        ? [`/stats counts ${finalStats.runs.queued} queued, ${finalStats.runs.running} running after the drain`]
        : []),
    ],
    `${runs.length} runs, ${runs.filter((r) => r.status === "failed").length} failed (upstream faults), ${runs.filter((r) => r.status === "partial").length} partial`,
  );

  const bad = [];
  const byId = new Map(runs.map((r) => [r.run_id, r]));
  for (const r of runs) {
    if (!FINISHED.has(r.status)) continue;
    const c = r.records;
    const sweep = r.source === "csv" && r.trigger !== "upload";
    if (c.written > c.accepted) bad.push(`${r.run_id}: wrote ${c.written} of ${c.accepted} accepted`);
    if (sweep ? c.accepted + c.rejected > c.fetched : c.accepted + c.rejected !== c.fetched)
      bad.push(`${r.run_id} (${r.source}, ${r.trigger}): fetched ${c.fetched}, accepted ${c.accepted} + rejected ${c.rejected}`);
    // SPEC §6: failed stored nothing new; an error after some records were stored leaves the run partial.
    const want = r.error ? (c.written > 0 ? "partial" : "failed") : c.rejected > 0 ? "partial" : "succeeded";
    if (r.status !== want) bad.push(`${r.run_id}: status ${r.status} with ${c.rejected} rejected and error ${brief(r.error)}`);
    if (!r.finished_at || (r.started_at && r.finished_at < r.started_at))
      bad.push(`${r.run_id}: finished_at ${r.finished_at}, started_at ${r.started_at}`);
    if (Object.values(r.usage).some((v) => !Number.isInteger(v) || v < 0)) bad.push(`${r.run_id}: usage ${brief(r.usage)}`);
  }
  for (const s of runsStarted)
    if (!byId.has(s.run_id)) bad.push(`${s.run_id} (${s.source}, ${s.trigger}) was started but /stats/runs does not list it`);
  // Uploads: the rows the soak wrote are what the upload and its run count.
  const firstOf = new Map();
  for (const u of uploadsSent) if (!firstOf.has(u.upload_id)) firstOf.set(u.upload_id, u);
  await pool([...firstOf.values()], 4, async (u) => {
    const r = await call("GET", `/uploads/${u.upload_id}`);
    const got = r.json?.data;
    if (!got) return bad.push(`upload ${u.upload_id} (${u.name}): GET answered ${r.status}`);
    if (got.status === "failed") bad.push(`upload ${u.upload_id} (${u.name}): failed`);
    if (got.records.accepted !== u.accepted || got.records.rejected !== u.rejected)
      bad.push(
        `upload ${u.upload_id} (${u.name}, ${u.bytes} bytes): accepted ${got.records.accepted}, rejected ${got.records.rejected}; the file had ${u.accepted} valid and ${u.rejected} invalid rows`,
      );
    const run = byId.get(got.run_id);
    if (run && (run.records.accepted !== got.records.accepted || run.records.rejected !== got.records.rejected))
      bad.push(`upload ${u.upload_id}: counts ${brief(got.records)}, its run ${got.run_id} ${brief(run.records)}`);
  });
  // Faults are injected upstream only: a run of anything else that fails is the Worker's own failure.
  const upstreamFault = /HTTP \d{3} from|timed out after|network error|malformed JSON/;
  const unexplained = runs.filter((r) => {
    if (r.status !== "failed") return false;
    if (r.trigger === "replay") return !/JSON|Unexpected|malformed/.test(r.error ?? ""); // a truncated payload replayed fails again
    return !((r.source === "coingecko" || r.source === "coinpaprika") && upstreamFault.test(r.error ?? ""));
  });
  verdict(
    "runs-fail-only-on-upstream-faults",
    unexplained.map((r) => `${r.run_id} (${r.source}, ${r.trigger}) failed: ${String(r.error).slice(0, 160)}`),
    `${runs.filter((r) => r.status === "failed").length} failed runs, each after an injected upstream fault`,
  );
  const failedRuns = runs.filter((r) => r.status === "failed");
  const wroteButFailed = failedRuns.filter((r) => r.records.written > 0).length;
  verdict(
    "run-counts-consistent",
    bad,
    `${runs.length} runs, ${firstOf.size} uploads counted exactly${wroteButFailed ? `; note: ${wroteButFailed} failed runs wrote records before their error` : ""}`,
  );
}

function logProblems() {
  if (!fs.existsSync(DEV_LOG)) return {};
  const counts = {};
  let reloads = 0;
  const retention = { runs: 0, hourly_points_added: 0, raw_points_removed: 0 };
  for (const line of fs.readFileSync(DEV_LOG, "utf8").split("\n")) {
    if (line.includes("Reloading local server")) reloads++;
    // wrangler prints warn and error lines wrapped ("▲ [WARNING] {...}"), with colour codes.
    const at = line.indexOf('{"level"');
    if (at < 0) continue;
    try {
      const e = JSON.parse(line.slice(at).replace(/\u001b\[[0-9;]*m/g, ""));
      if (e.event === "retention") {
        retention.runs++;
        retention.hourly_points_added += e.hourly_points_added ?? 0;
        retention.raw_points_removed += e.raw_points_removed ?? 0;
      }
      if (e.level === "warn" || e.level === "error") counts[`${e.level}:${e.event}`] = (counts[`${e.level}:${e.event}`] ?? 0) + 1;
    } catch {}
  }
  return { warn_error_events: counts, retention, reloads };
}

let code = 1;
try {
  const failed = await main();
  code = failed ? 1 : 0;
} catch (e) {
  console.error(`soak aborted: ${e?.stack ?? e}`);
  console.log("0 passed, 1 failed");
  code = 1;
} finally {
  try {
    d1?.close();
    r2?.close();
  } catch {}
  stopAll();
  if (!KEEP && !LIVE) fs.rmSync(path.join(os.tmpdir(), `coinfuse-soak-${PORT}`), { recursive: true, force: true });
  fs.rmSync(path.join(os.tmpdir(), `coinfuse-soak-${PORT}-registry`), { recursive: true, force: true });
}
process.exit(code);
