#!/usr/bin/env node
// End-to-end check of the dashboard (public/) against a running coinfuse worker.
//
//   node test/e2e/dashboard.e2e.mjs --base http://127.0.0.1:8787 --token <ADMIN_TOKEN> --screenshots docs/
//
// Needs `playwright-core` (resolved from this repo, or from the directory in
// PLAYWRIGHT_CORE_DIR) and a Chromium at /usr/bin/chromium (or --chromium <path>).
// Uploads a tiny CSV of made-up "ZZE2E*" assets, so run it against a dev database.
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";

const args = parseArgs(process.argv.slice(2));
const BASE = (args.base ?? process.env.BASE_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");
const TOKEN = args.token ?? process.env.ADMIN_TOKEN ?? "";
const SHOTS = args.screenshots ?? null;
const CHROMIUM = args.chromium ?? process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const TIMEOUT = Number(args.timeout ?? 20_000);
const UPLOAD_TIMEOUT = Number(args["upload-timeout"] ?? 120_000);
const FINAL = ["succeeded", "partial", "failed"];

const results = [];
async function check(name, fn) {
  try {
    const detail = await fn();
    results.push({ name, ok: true });
    console.log(`PASS ${name}${detail ? ` - ${detail}` : ""}`);
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name} - ${String(err?.message ?? err).split("\n")[0]}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const { chromium } = await loadPlaywright();
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);

const origin = new URL(BASE).origin;
const foreignRequests = [];
const pageErrors = [];
page.on("request", (req) => {
  const url = req.url();
  if (/^https?:/.test(url) && new URL(url).origin !== origin) foreignRequests.push(url);
});
page.on("pageerror", (err) => pageErrors.push(err.message));
page.on("console", (msg) => {
  if (msg.type() === "error" && !/Failed to load resource/.test(msg.text())) pageErrors.push(msg.text());
});
if (SHOTS) fs.mkdirSync(SHOTS, { recursive: true });
const shot = async (name) => SHOTS && page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

const rowNames = () => page.$$eval("#market-table tbody tr[data-asset-uid] th[scope=row] a", (as) => as.map((a) => a.textContent.trim()));
let assetUid = null;

try {
  await check("market table loads rows", async () => {
    const res = await page.goto(`${BASE}/`);
    assert(res?.ok(), `GET / answered ${res?.status()}`);
    await page.waitForSelector("#market-table tbody tr[data-asset-uid]");
    const names = await rowNames();
    assert(names.length > 0, "no rows");
    await page.waitForSelector("#source-tiles:not([aria-busy]) .tile");
    const tiles = await page.$$eval("#source-tiles .tile", (els) => els.map((e) => e.dataset.source));
    for (const s of ["coingecko", "coinpaprika", "csv"]) assert(tiles.includes(s), `no tile for ${s}`);
    await shot("dashboard-market.png");
    return `${names.length} rows, tiles: ${tiles.join(", ")}`;
  });

  await check("sorting by price toggles aria-sort", async () => {
    await page.click('#market-table button[data-sort="price"]');
    await page.waitForSelector('#market-table th[aria-sort="descending"] button[data-sort="price"]');
    await page.waitForFunction(() => !document.querySelector("#market-table[aria-busy]"));
    await page.click('#market-table button[data-sort="rank"]');
    await page.waitForSelector('#market-table th[aria-sort="ascending"] button[data-sort="rank"]');
    await page.waitForFunction(() => !document.querySelector("#market-table[aria-busy]"));
    return "price desc, then rank asc";
  });

  await check('searching "bitc" narrows the table to Bitcoin rows', async () => {
    await page.fill("#asset-search", "bitc");
    await page.waitForFunction(() => location.hash.includes("q=bitc") && !document.querySelector("#market-table[aria-busy]"));
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#market-table tbody tr[data-asset-uid]")];
      return rows.length > 0 && rows.every((r) => /bitc/i.test(r.textContent));
    });
    const names = await rowNames();
    assert(
      names.some((n) => /bitcoin/i.test(n)),
      `no Bitcoin among ${names.join(", ")}`,
    );
    const exact = await page.$('#market-table tbody tr[data-asset-uid] th[scope=row] a:text-is("Bitcoin")');
    const link = exact ?? (await page.$("#market-table tbody tr[data-asset-uid] th[scope=row] a"));
    assetUid = await link.evaluate((a) => a.closest("tr").dataset.assetUid);
    return `${names.length} rows: ${names.slice(0, 6).join(", ")}`;
  });

  await check("Export CSV downloads the rows the market view shows", async () => {
    const href = await page.$eval("#export-csv", (a) => a.href);
    assert(/\/data\/export\?/.test(href) && href.includes("q=bitc") && href.includes("format=csv"), `export link ${href}`);
    const text = await page.evaluate(async (u) => (await fetch(u)).text(), href);
    const lines = text.trim().split("\r\n");
    assert(lines[0].startsWith("asset_uid,symbol,name,"), `header ${lines[0]}`);
    assert(lines.length > 1 && lines.slice(1).every((l) => /bitc/i.test(l)), `rows ${lines.slice(1, 4).join(" | ")}`);
    return `${lines.length - 1} rows`;
  });

  await check("asset page draws one uPlot series per source", async () => {
    assert(assetUid, "no asset picked by the search step");
    await page.click(`#market-table tr[data-asset-uid="${cssEscape(assetUid)}"] th[scope=row] a`);
    await page.waitForSelector("#quotes-table");
    await page.waitForFunction(() => document.querySelector("#price-chart")?.dataset.seriesCount !== undefined, null, { timeout: TIMEOUT });
    const history = await page.evaluate(async (uid) => {
      const r = await fetch(`/data/${encodeURIComponent(uid)}/history`, { headers: { accept: "application/json" } });
      return (await r.json()).data;
    }, assetUid);
    const sources = [...new Set(history.filter((p) => typeof p.price_usd === "number").map((p) => p.source))];
    assert(sources.length > 0, `no price history for ${assetUid}`);
    await page.waitForSelector("#price-chart .uplot canvas");
    const legend = await page.$$eval("#price-chart .u-legend .u-series", (els) =>
      els.map((e) => e.querySelector(".u-label")?.textContent.trim() ?? ""),
    );
    const drawn = legend.length - 1; // the first legend entry is the x (time) series
    assert(
      drawn === sources.length,
      `legend has ${drawn} source series (${legend.slice(1).join(", ")}), history has ${sources.length} (${sources.join(", ")})`,
    );
    for (const s of sources) assert(legend.includes(s), `no series for ${s}`);
    const quoteCols = await page.$$eval("#quotes-table thead th[data-source]", (els) => els.length);
    assert(quoteCols > 0, "quotes table has no source columns");
    await shot("dashboard-asset.png");
    return `${assetUid}: ${drawn} series (${sources.join(", ")}), ${history.length} points, ${quoteCols} quote columns`;
  });

  await check("upload with a wrong token shows the API error code", async () => {
    await page.goto(`${BASE}/#/runs`);
    await page.waitForSelector("#runs-table tbody tr");
    await page.fill("#upload-token", "definitely-not-the-token");
    await page.setInputFiles("#csv-file", {
      name: "e2e-wrong-token.csv",
      mimeType: "text/csv",
      buffer: Buffer.from("symbol,name,price\nZZE2EX,Coinfuse E2E Wrong,1\n"),
    });
    await page.click("#upload-submit");
    const code = await (await page.waitForSelector("#upload-result .error-box code")).textContent();
    assert(["unauthorized", "admin_disabled"].includes(code), `expected unauthorized, got ${code}`);
    return code;
  });

  await check("CSV upload shows its run finishing", async () => {
    assert(TOKEN, "no admin token: pass --token <ADMIN_TOKEN>");
    const file = writeCsv();
    await page.fill("#upload-token", TOKEN);
    await page.setInputFiles("#csv-file", file);
    await page.click("#upload-submit");
    const uploadId = await (await page.waitForSelector("#upload-id")).textContent();
    const runId = await page.textContent("#upload-run-id");
    const el = await page.waitForSelector(FINAL.map((s) => `#upload-status[data-status="${s}"]`).join(","), { timeout: UPLOAD_TIMEOUT });
    const status = await el.getAttribute("data-status");
    const accepted = Number((await page.textContent("#upload-accepted")).replace(/,/g, ""));
    const rejected = Number((await page.textContent("#upload-rejected")).replace(/,/g, ""));
    assert(status === "partial" || status === "succeeded", `upload ${uploadId} ended ${status}`);
    assert(accepted === 3, `accepted ${accepted}, expected 3`);
    assert(rejected === 1, `rejected ${rejected}, expected 1`);
    const rejectedRow = await page.textContent("#rejected-rows tbody tr th");
    assert(rejectedRow.trim() === "4", `rejected row number ${rejectedRow}, expected 4`);
    if (runId && runId !== "—") {
      await page.waitForSelector(
        `#runs-table tr[data-run-id="${cssEscape(runId)}"]:is([data-status="partial"],[data-status="succeeded"])`,
        { timeout: UPLOAD_TIMEOUT },
      );
    }
    await shot("dashboard-ingestion.png");
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
    return `upload ${uploadId} → run ${runId}: ${status}, ${accepted} accepted, ${rejected} rejected`;
  });

  await check("no request left the origin and no script errors", async () => {
    assert(foreignRequests.length === 0, `foreign requests: ${foreignRequests.slice(0, 3).join(" ")}`);
    assert(pageErrors.length === 0, `page errors: ${pageErrors.slice(0, 3).join(" | ")}`);
    return `all requests to ${origin}`;
  });
} finally {
  await browser.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

function writeCsv() {
  // Three good rows and one with a negative price (rejected as row 4); the timestamp makes
  // every run's file new, since an object already ingested is not ingested again.
  const at = new Date().toISOString();
  const stamp = at.replace(/\D/g, "").slice(0, 14);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coinfuse-e2e-"));
  const file = path.join(dir, `e2e-${stamp}.csv`);
  fs.writeFileSync(
    file,
    [
      "symbol,name,price_usd,market_cap,volume_24h,timestamp",
      `ZZE2EA,Coinfuse E2E Alpha,1.2345,1000000,50000,${at}`,
      `ZZE2EB,Coinfuse E2E Beta,0.5,200000,1000,${at}`,
      `ZZE2EC,Coinfuse E2E Gamma,42,,,${at}`,
      `ZZE2ED,Coinfuse E2E Broken,-1,,,${at}`,
      "",
    ].join("\n"),
  );
  return file;
}

function cssEscape(s) {
  return String(s).replace(/["\\]/g, "\\$&");
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const m = argv[i].match(/^--([^=]+)(?:=(.*))?$/);
    if (!m) continue;
    out[m[1]] = m[2] ?? (argv[i + 1] && !argv[i + 1].startsWith("--") ? argv[++i] : "true");
  }
  return out;
}

async function loadPlaywright() {
  try {
    return await import("playwright-core");
  } catch {
    const dir = process.env.PLAYWRIGHT_CORE_DIR;
    if (dir) return createRequire(path.join(path.resolve(dir), "noop.js"))("playwright-core");
    console.error(
      "playwright-core not found: `npm install --no-save playwright-core`, or set PLAYWRIGHT_CORE_DIR to a directory whose node_modules has it.",
    );
    process.exit(2);
  }
}
