#!/usr/bin/env node
// End-to-end check of the dashboard (public/) against a running coinfuse worker.
//
//   node test/e2e/dashboard.e2e.mjs --base http://127.0.0.1:8787 --token <ADMIN_TOKEN> --screenshots docs/
//
// Needs `playwright-core` (resolved from this repo, or from the directory in
// PLAYWRIGHT_CORE_DIR) and a Chromium at /usr/bin/chromium (or --chromium <path>).
// Uploads tiny CSVs of made-up "ZZE2E*" assets, so run it against a dev database.
// Charts are read from the uPlot instances the page makes (window.uPlot is wrapped before the
// page's scripts run) and from the pixels on their canvas.
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
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light", timezoneId: "UTC" });
await context.addInitScript(captureCharts);
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
const failedResponses = [];
page.on("response", (r) => {
  if (r.status() >= 400 && !r.url().includes("/uploads/csv/")) failedResponses.push(`${r.request().method()} ${r.url()} -> ${r.status()}`);
});

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
const shot = async (name) => {
  if (!SHOTS) return;
  await page.mouse.move(0, 0); // no row highlighted by the pointer
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
};

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

  await check("asset page draws a line per source over its history", async () => {
    assert(assetUid, "no asset picked by the search step");
    await page.click(`#market-table tr[data-asset-uid="${cssEscape(assetUid)}"] th[scope=row] a`);
    await page.waitForSelector("#quotes-table");
    const c = await chartDrawn(page);
    const history = await page.evaluate(async (uid) => {
      const r = await fetch(`/data/${encodeURIComponent(uid)}/history`, { headers: { accept: "application/json" } });
      return (await r.json()).data;
    }, assetUid);
    const sources = [...new Set(history.filter((p) => typeof p.price_usd === "number").map((p) => p.source))].sort();
    assert(sources.length > 0, `no price history for ${assetUid}`);
    const labels = c.series.map((x) => x.label);
    assert(labels.join() === sources.join(), `chart series ${labels.join(", ")}, history sources ${sources.join(", ")}`);
    assertLines(c, 2);
    assertAxes(c);
    const legend = await page.$$eval("#price-chart .u-legend .u-series", (els) => els.length - 1);
    assert(legend === sources.length, `legend has ${legend} source entries, history has ${sources.length} sources`);
    const quoteCols = await page.$$eval("#quotes-table thead th[data-source]", (els) => els.length);
    assert(quoteCols > 0, "quotes table has no source columns");
    await shot("dashboard-asset.png");
    return `${assetUid}: ${describe(c)}, ${history.length} points in the API, ${quoteCols} quote columns`;
  });

  await check("24 h, 7 d and 30 d each draw a line for every source", async () => {
    const out = [];
    for (const label of ["24 h", "7 d", "30 d"]) {
      const before = await chartCount(page);
      await page.click(`#asset-body .range-group button:text-is("${label}")`);
      const c = await chartDrawn(page, before);
      assertLines(c, 2);
      assertAxes(c);
      out.push(`${label}: ${c.series.map((x) => `${x.label} ${x.points}`).join(", ")}`);
    }
    await page.click('#asset-body .range-group button:text-is("All")');
    return out.join("; ");
  });

  let chartAssets = null;
  await check("a chart of one point and a chart with a gap read right", async () => {
    assert(TOKEN, "no admin token: pass --token <ADMIN_TOKEN>");
    chartAssets = await uploadChartAssets();
    const out = [];

    await page.goto(`${BASE}/#/asset/${encodeURIComponent(chartAssets.one)}`);
    let c = await chartDrawn(page);
    assert(c.series.length === 1 && c.series[0].points === 1, `one-point chart: ${describe(c)}`);
    assert(c.coloured > 0, "the one point is not drawn");
    assert(c.x.max - c.x.min > 0 && c.x.max - c.x.min <= 2 * 3600 + 1, `x axis spans ${c.x.max - c.x.min} s around one point`);
    assert(c.dataX[0] >= c.x.min && c.dataX[0] <= c.x.max, "the point is off the x axis");
    assertAxes(c);
    const caption = await page.textContent("#chart-caption");
    assert(/\b1 point\b/.test(caption) && /\b1 source\b/.test(caption), `caption: ${caption}`);
    const summary = await page.textContent("#history-table summary");
    assert(summary === "Show the point as a table", `table summary: ${summary}`);
    out.push(`one point: x ${fmtX(c.x.min)}–${fmtX(c.x.max)}, y [${c.yLabels.join(" ")}]`);

    await page.goto(`${BASE}/#/asset/${encodeURIComponent(chartAssets.gap)}`);
    c = await chartDrawn(page);
    const s = c.series[0];
    assert(c.series.length === 1 && s.points === 6, `gap chart: ${describe(c)}`);
    assert(s.gaps === 1 && s.gapsOpen === 1, `the gap is drawn over (${s.gaps} gaps, ${s.gapsOpen} left open)`);
    assert(s.segments === 4 && s.onLine === 4, `${s.onLine} of ${s.segments} segments drawn`);
    assertAxes(c);
    const gapCaption = await page.textContent("#chart-caption");
    assert(/breaks where/.test(gapCaption) && /\b6 points\b/.test(gapCaption), `caption: ${gapCaption}`);
    out.push(`gap: ${s.segments} segments drawn, the gap left open`);
    return out.join("; ");
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

  await check("the icons and /docs load without a failed request", async () => {
    const out = [];
    for (const icon of ["/favicon.ico", "/favicon.svg"]) {
      const r = await fetch(`${BASE}${icon}`);
      const type = r.headers.get("content-type") ?? "";
      const bytes = (await r.arrayBuffer()).byteLength;
      assert(r.status === 200 && type.startsWith("image/") && bytes > 0, `${icon} -> ${r.status} ${type} ${bytes} bytes`);
      out.push(`${icon} ${type}`);
    }
    const before = failedResponses.length;
    await page.goto(`${BASE}/docs`, { waitUntil: "load" });
    await page.waitForSelector(".swagger-ui .info", { timeout: TIMEOUT });
    await page.waitForLoadState("networkidle", { timeout: 5000 }).catch(() => {});
    const failed = failedResponses.slice(before);
    assert(failed.length === 0, `failed requests on /docs: ${failed.join(" | ")}`);
    return `${out.join(", ")}; /docs with no failed request`;
  });

  await check("at 390 px the tiles wrap and the runs show without sideways scrolling", async () => {
    const narrow = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "light", timezoneId: "UTC" });
    await narrow.addInitScript(captureCharts);
    const p = await narrow.newPage();
    p.setDefaultTimeout(TIMEOUT);
    const shotNarrow = async (name) => SHOTS && p.screenshot({ path: path.join(SHOTS, name), fullPage: true });
    try {
      const out = [];
      await p.goto(`${BASE}/`);
      await p.waitForSelector("#market-table tbody tr[data-asset-uid]");
      await p.waitForSelector("#source-tiles:not([aria-busy]) .tile");
      let o = await p.evaluate(overflow);
      assert(!o.past.length, `market: past the right edge: ${o.past.slice(0, 3).join("; ")}`);
      const tiles = await p.$$eval("#source-tiles .tile", (els) => els.map((e) => e.getBoundingClientRect().right));
      assert(
        tiles.every((r) => r <= innerWidthOf(p)),
        `tiles end at ${tiles.join(", ")}px`,
      );
      await shotNarrow("dashboard-market-390.png");
      out.push(`market: ${tiles.length} tiles inside the viewport`);

      await p.goto(`${BASE}/#/asset/${encodeURIComponent(assetUid ?? "bitcoin")}`);
      const c = await chartDrawn(p);
      assertLines(c, 2);
      assertAxes(c);
      o = await p.evaluate(overflow);
      assert(!o.past.length, `asset: past the right edge: ${o.past.slice(0, 3).join("; ")}`);
      const tables = await p.$$eval(["#quotes-table", "#mappings-table"].join(","), (els) =>
        els.map((t) => ({ id: t.id, hidden: t.closest(".table-scroll").scrollWidth - t.closest(".table-scroll").clientWidth })),
      );
      for (const t of tables) assert(t.hidden <= 1, `asset: #${t.id} hides ${t.hidden}px behind a sideways scroll`);
      await shotNarrow("dashboard-asset-390.png");
      out.push(`asset: ${describe(c)}, quotes and mappings without sideways scroll`);

      await p.goto(`${BASE}/#/runs`);
      await p.waitForSelector("#runs-table tbody tr[data-run-id]");
      o = await p.evaluate(overflow);
      assert(!o.past.length, `runs: past the right edge: ${o.past.slice(0, 3).join("; ")}`);
      const runs = await p.$eval("#runs-table", (t) => {
        const box = t.closest(".table-scroll");
        const row = t.querySelector("tbody tr[data-run-id]");
        const shown = (sel) => {
          const el = row.querySelector(sel);
          return !!el && el.getClientRects().length > 0 && el.getBoundingClientRect().right <= box.getBoundingClientRect().right;
        };
        return {
          hidden: box.scrollWidth - box.clientWidth,
          shown: [
            "td.run-status",
            "td.run-source",
            "td.run-trigger",
            "td.run-started",
            'td[data-label="accepted"]',
            'td[data-label="rejected"]',
          ].filter(shown).length,
        };
      });
      assert(runs.hidden <= 1, `the runs table hides ${runs.hidden}px behind a sideways scroll`);
      assert(runs.shown === 6, `a run shows ${runs.shown} of status, source, trigger, start, accepted, rejected`);
      await shotNarrow("dashboard-ingestion-390.png");
      out.push("runs: status, source, trigger, start, accepted and rejected in view, no sideways scroll");
      return out.join("; ");
    } finally {
      await narrow.close();
    }
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

// ---------------------------------------------------------------- charts
// Runs in the page before its scripts: every uPlot instance the page makes is kept in window.__charts.
function captureCharts() {
  const charts = [];
  Object.defineProperty(window, "__charts", { value: charts });
  let U;
  Object.defineProperty(window, "uPlot", {
    configurable: true,
    get: () => U,
    set: (Orig) => {
      function Wrapped(...a) {
        const u = new Orig(...a);
        charts.push(u);
        return u;
      }
      Object.setPrototypeOf(Wrapped, Orig);
      Wrapped.prototype = Orig.prototype;
      U = Wrapped;
    },
  });
}

function chartCount(p) {
  return p.evaluate(() => (window.__charts ?? []).length);
}

/** Waits for a chart newer than the `before`th, drawn, and reads it. */
async function chartDrawn(p, before = 0) {
  await p.waitForFunction(
    (n) => {
      const all = window.__charts ?? [];
      const box = document.querySelector("#price-chart");
      return all.length > n && all.at(-1).root?.isConnected && box && !box.hasAttribute("aria-busy");
    },
    before,
    { timeout: TIMEOUT },
  );
  await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const c = await p.evaluate(chartState);
  assert(c, "no chart on the page");
  return c;
}

/**
 * What the newest chart shows (runs in the page). For each series: its points; each stretch
 * between two consecutive points, and whether the canvas has a line there (the midpoint is on
 * the series' stroke, inside its clip, and a pixel of colour is near it); stretches with a gap
 * (null) between must have none. Plus coloured pixels in the plot and the axes' labels.
 */
function chartState() {
  const u = (window.__charts ?? []).filter((c) => c.root?.isConnected).at(-1);
  if (!u) return null;
  const ctx = u.ctx;
  const xs = u.data[0];
  const { left, top, width, height } = u.bbox;
  const img = ctx.getImageData(0, 0, ctx.canvas.width, ctx.canvas.height).data;
  const colourAt = (x, y) => {
    const i = (Math.round(y) * ctx.canvas.width + Math.round(x)) * 4;
    const [r, g, b, a] = [img[i], img[i + 1], img[i + 2], img[i + 3]];
    return a > 100 && Math.max(r, g, b) - Math.min(r, g, b) > 50;
  };
  const colourNear = (x, y, d = 3) => {
    for (let dx = -d; dx <= d; dx++) for (let dy = -d; dy <= d; dy++) if (colourAt(x + dx, y + dy)) return true;
    return false;
  };
  let coloured = 0;
  for (let y = top; y < top + height; y++) for (let x = left; x < left + width; x++) if (colourAt(x, y)) coloured++;
  const dataX = [];
  const series = u.series.slice(1).map((s, k) => {
    const ys = u.data[k + 1];
    const idx = ys.flatMap((y, j) => (typeof y === "number" && Number.isFinite(y) ? [j] : []));
    for (const j of idx) dataX.push(xs[j]);
    const stroke = s._paths?.stroke;
    const clip = s._paths?.clip;
    ctx.save();
    ctx.lineWidth = 4 * devicePixelRatio;
    let segments = 0,
      onLine = 0,
      gaps = 0,
      gapsOpen = 0;
    for (let a = 0; a + 1 < idx.length; a++) {
      const [j0, j1] = [idx[a], idx[a + 1]];
      const x = (u.valToPos(xs[j0], "x", true) + u.valToPos(xs[j1], "x", true)) / 2;
      const y = (u.valToPos(ys[j0], "y", true) + u.valToPos(ys[j1], "y", true)) / 2;
      const drawn = !!stroke && ctx.isPointInStroke(stroke, x, y) && (!clip || ctx.isPointInPath(clip, x, y)) && colourNear(x, y);
      if (ys.slice(j0 + 1, j1).some((v) => v === null)) {
        gaps++;
        if (!drawn) gapsOpen++;
      } else {
        segments++;
        if (drawn) onLine++;
      }
    }
    ctx.restore();
    return { label: String(s.label), points: idx.length, segments, onLine, gaps, gapsOpen };
  });
  return {
    series,
    coloured,
    plotWidth: width,
    x: { min: u.scales.x.min, max: u.scales.x.max },
    dataX: [Math.min(...dataX), Math.max(...dataX)],
    xLabels: (u.axes[0]._values ?? []).map(String),
    yLabels: (u.axes[1]._values ?? []).map(String),
  };
}

/** Every series has at least `min` points and a line through each of its stretches. */
function assertLines(c, min) {
  for (const s of c.series) {
    assert(s.points >= min, `${s.label} has ${s.points} points (want ${min}+)`);
    assert(s.segments > 0 && s.onLine === s.segments, `${s.label}: a line is drawn over ${s.onLine} of its ${s.segments} stretches`);
  }
  assert(c.coloured >= c.plotWidth / 2, `only ${c.coloured} coloured pixels in a ${c.plotWidth}px wide plot`);
}

/** The x axis stays on the data (10% of the span, a minute at least, or an hour either side of one moment); no label repeats. */
function assertAxes(c) {
  const span = c.dataX[1] - c.dataX[0];
  const tol = span ? Math.max(0.1 * span, 60) : 3600;
  assert(
    c.x.min >= c.dataX[0] - tol && c.x.max <= c.dataX[1] + tol,
    `x axis ${fmtX(c.x.min)}–${fmtX(c.x.max)}, data ${fmtX(c.dataX[0])}–${fmtX(c.dataX[1])}`,
  );
  const xs = c.xLabels.filter((v) => v.trim());
  assert(xs.length > 0, "no x-axis labels");
  const side = xs.filter((v, i) => i > 0 && v === xs[i - 1]);
  assert(!side.length, `x-axis labels repeat side by side: [${xs.join(" | ")}]`);
  const ys = c.yLabels.filter((v) => v.trim());
  assert(ys.length > 0, "no y-axis labels");
  assert(new Set(ys).size === ys.length, `y-axis labels repeat: [${ys.join(" ")}]`);
}

function fmtX(s) {
  return new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");
}
function describe(c) {
  const series = c.series.map((s) => `${s.label} ${s.points} point${s.points === 1 ? "" : "s"}`).join(", ");
  return `${series}, x ${fmtX(c.x.min)}–${fmtX(c.x.max)}, y [${c.yLabels.join(" ")}]`;
}

/**
 * Uploads, through the API, two made-up assets for the chart checks (unique to this run, so a dev
 * database that already has earlier ones does not matter): one with a single point, one with
 * three points 5 minutes apart, nothing for 2 h 40 min, then three more.
 */
async function uploadChartAssets() {
  const tag = Date.now().toString(36).toUpperCase().slice(-6);
  const now = Date.now();
  const at = (min) => new Date(now - min * 60_000).toISOString();
  const csv = [
    "symbol,name,price_usd,timestamp",
    `ZZO${tag},Coinfuse E2E One Point ${tag},4321.5,${at(1)}`,
    ...[
      [180, 0.0777],
      [175, 0.0781],
      [170, 0.0779],
      [10, 0.0802],
      [5, 0.0799],
      [0, 0.0805],
    ].map(([min, price]) => `ZZG${tag},Coinfuse E2E Gap ${tag},${price},${at(min)}`),
    "",
  ].join("\n");
  const put = await fetch(`${BASE}/uploads/csv/e2e-charts-${tag}.csv`, {
    method: "PUT",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/csv" },
    body: csv,
  });
  assert(put.status === 202, `chart assets upload answered ${put.status}`);
  const { upload_id } = (await put.json()).data;
  for (let i = 0; ; i++) {
    const u = (await (await fetch(`${BASE}/uploads/${upload_id}`)).json()).data;
    if (FINAL.includes(u?.status)) {
      assert(u.status === "succeeded", `chart assets upload ${upload_id} ended ${u.status}`);
      break;
    }
    assert(i < UPLOAD_TIMEOUT / 250, `chart assets upload ${upload_id} did not finish`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const uid = async (symbol) => {
    const r = await (await fetch(`${BASE}/data?symbol=${symbol}`)).json();
    assert(r.data?.length === 1, `/data?symbol=${symbol} found ${r.data?.length ?? 0} assets`);
    return r.data[0].asset_uid;
  };
  return { one: await uid(`ZZO${tag}`), gap: await uid(`ZZG${tag}`) };
}

/** Elements past the viewport's right edge, outside any box that scrolls sideways (runs in the page). */
function overflow() {
  const vw = document.documentElement.clientWidth;
  const scrolls = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  const past = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || r.right <= vw + 1) continue;
    let inside = false;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) if (scrolls(a)) inside = true;
    if (!inside && !past.some((p) => p.el.contains(el)))
      past.push({
        el,
        d: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}.${[...el.classList].join(".")} right edge ${Math.round(r.right)}px`,
      });
  }
  return { vw, docW: document.documentElement.scrollWidth, past: past.map((p) => p.d) };
}

function innerWidthOf(p) {
  return p.viewportSize().width;
}

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
