// Read-API latency and D1 cost at two catalogue sizes, in one run.
//   node bench/api.mjs [requests=500] [concurrency=8]
// For N in [1000, 132000]: a fresh `wrangler dev`, N assets loaded through the real CSV path
// (PUT /uploads/csv, poll GET /uploads/{id}), then `requests` GETs per URL at `concurrency` in
// flight (after a warm-up, in round-robin rounds), plus 100 sequential GETs per URL; p50/p99 per
// URL and size, p50@132k / p50@1k per URL, the sequential p50 above the 404 floor (goal: <= 1 ms
// for page 1 and page 1000 alike) and the D1 rows each URL read (Server-Timing, goal: <= 120).
import { call, coincapCsv, drive, emit, fail, logProblems, quantile, startWorker, TOKEN, waitFinished } from "./lib.mjs";

const REQUESTS = Number(process.argv[2] ?? 500);
const CONCURRENCY = Number(process.argv[3] ?? 8);
const SIZES = [1000, 132_000];
const ABOVE_FLOOR_GOAL_MS = 1;
const TARGET = 1.25;
const WARMUP = 50;
const ROUNDS = 5;
const SEQUENTIAL = 100; // extra requests per URL with one in flight

const URLS = [
  { key: "floor_404", path: () => "/no-such-route", status: "404" },
  { key: "list_page1", path: () => "/data?page=1&page_size=50" },
  { key: "list_page1000_market_cap", path: () => "/data?page=1000&page_size=50&sort=market_cap" },
  { key: "list_page40_market_cap", path: () => "/data?page=40&page_size=50&sort=market_cap" },
  { key: "symbol", path: () => "/data?symbol=XX123" },
  { key: "detail", path: (uid) => `/data/${uid}` },
];

const results = {};
for (const [k, n] of SIZES.entries()) {
  const worker = await startWorker({
    name: `api-${n}`,
    port: 18820 + k,
    vars: { MAX_UPLOAD_BYTES: String(200 * 1024 * 1024), READ_RATE_LIMIT: "off" },
  });
  try {
    // Load: one CSV upload of n CoinCap-style rows (symbols XX1..XXn).
    const body = coincapCsv(n, "xx");
    const t0 = performance.now();
    const put = await call(worker.base, "PUT", `/uploads/csv/api-${n}.csv`, {
      body,
      headers: { "content-type": "text/csv" },
      token: TOKEN,
    });
    if (put.status !== 202) throw new Error(`upload answered ${put.status}: ${put.text.slice(0, 300)}`);
    const up = await waitFinished(worker.base, `/uploads/${put.json.data.upload_id}`, 900_000);
    const loadS = (performance.now() - t0) / 1000;
    const list = await call(worker.base, "GET", "/data?page=1&page_size=1");
    const total = list.json?.metadata?.total;
    emit({
      bench: "api_load",
      assets: n,
      status: up.status,
      accepted: up.records.accepted,
      total,
      seconds: +loadS.toFixed(2),
      rows_per_s: Math.round(n / loadS),
    });
    if (up.status !== "succeeded" || total !== n) throw new Error(`loading ${n} assets: upload ${up.status}, /data total ${total}`);

    const bySymbol = await call(worker.base, "GET", "/data?symbol=XX123");
    const uid = bySymbol.json?.data?.[0]?.asset_uid;
    if (!uid) throw new Error(`GET /data?symbol=XX123 found nothing: ${bySymbol.text.slice(0, 200)}`);

    // Warm-up, then ROUNDS round-robin rounds over the URLs, so a transient (a checkpoint, GC, a
    // neighbour on the machine) lands on every URL rather than on whichever came first. Then a
    // sequential pass (one in flight) for latency without queueing in wrangler's proxy.
    const meas = URLS.map((u) => ({
      u,
      p: u.path(uid),
      c8: { lat: [], server: [], statuses: {}, errors: 0, seconds: 0 },
      c1: { lat: [], server: [], statuses: {}, errors: 0, seconds: 0 },
    }));
    const add = (acc, r) => {
      acc.lat.push(...r.lat);
      acc.server.push(...r.server);
      for (const [st, c] of Object.entries(r.statuses)) acc.statuses[st] = (acc.statuses[st] ?? 0) + c;
      acc.errors += r.errors;
      acc.seconds += r.seconds;
    };
    for (const m of meas) {
      const sample = await fetch(worker.base + m.p);
      const json = await sample.json().catch(() => null);
      m.items = Array.isArray(json?.data) ? json.data.length : json?.data ? 1 : 0;
      m.rowsRead = Number(/rows_read=(\d+)/.exec(sample.headers.get("server-timing") ?? "")?.[1] ?? Number.NaN);
      await drive(worker.base, () => m.p, { requests: WARMUP, concurrency: CONCURRENCY });
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const m of meas)
        add(m.c8, await drive(worker.base, () => m.p, { requests: Math.ceil(REQUESTS / ROUNDS), concurrency: CONCURRENCY, maxMs: 60_000 }));
    }
    for (let round = 0; round < 2; round++) {
      for (const m of meas) add(m.c1, await drive(worker.base, () => m.p, { requests: SEQUENTIAL / 2, concurrency: 1, maxMs: 60_000 }));
    }
    for (const m of meas) {
      const { c8, c1 } = m;
      const fig = {
        bench: "api_latency",
        assets: n,
        url: m.u.key,
        path: m.p,
        items: m.items,
        d1_rows_read: m.rowsRead,
        requests: c8.lat.length,
        concurrency: CONCURRENCY,
        statuses: c8.statuses,
        errors: c8.errors,
        rps: Math.round(c8.lat.length / c8.seconds),
        p50_ms: +quantile(c8.lat, 0.5).toFixed(2),
        p99_ms: +quantile(c8.lat, 0.99).toFixed(2),
        server_p50_ms: c8.server.length ? quantile(c8.server, 0.5) : null,
        server_p99_ms: c8.server.length ? quantile(c8.server, 0.99) : null,
        seq_requests: c1.lat.length,
        seq_p50_ms: +quantile(c1.lat, 0.5).toFixed(2),
        seq_p99_ms: +quantile(c1.lat, 0.99).toFixed(2),
      };
      emit(fig);
      if (!results[m.u.key]) results[m.u.key] = {};
      results[m.u.key][n] = fig;
      const non200 = Object.entries({ ...c8.statuses, ...c1.statuses }).filter(([st]) => st !== (m.u.status ?? "200"));
      if (!(m.rowsRead <= 120)) fail("api_rows_read", `${m.p} at ${n} assets read ${m.rowsRead} D1 rows`);
      if (non200.length || c8.errors || c1.errors)
        fail(
          "api_latency",
          `${m.p} at ${n} assets: non-200 answers ${JSON.stringify(Object.fromEntries(non200))}, ${c8.errors + c1.errors} network errors`,
        );
    }
  } finally {
    worker.stop();
  }
  emit({ bench: "api_log", assets: n, ...logProblems(`api-${n}`) });
  await new Promise((r) => setTimeout(r, 2000)); // let the old wrangler release its ports
}

for (const n of SIZES) {
  const floor = results.floor_404?.[n]?.seq_p50_ms;
  for (const u of URLS.filter((x) => x.key !== "floor_404")) {
    const fig = results[u.key]?.[n];
    if (!fig || floor === undefined) continue;
    const above = +(fig.seq_p50_ms - floor).toFixed(2);
    emit({
      bench: "api_above_floor",
      assets: n,
      url: u.key,
      seq_p50_ms: fig.seq_p50_ms,
      floor_ms: floor,
      above_ms: above,
      goal_ms: ABOVE_FLOOR_GOAL_MS,
    });
  }
}

for (const u of URLS) {
  const [small, big] = SIZES.map((n) => results[u.key]?.[n]);
  if (!small || !big) continue;
  const ratio = big.p50_ms / small.p50_ms;
  emit({
    bench: "api_ratio",
    url: u.key,
    p50_1k_ms: small.p50_ms,
    p50_132k_ms: big.p50_ms,
    ratio: +ratio.toFixed(3),
    server_ratio: small.server_p50_ms && big.server_p50_ms ? +(big.server_p50_ms / small.server_p50_ms).toFixed(3) : null,
    seq_p50_1k_ms: small.seq_p50_ms,
    seq_p50_132k_ms: big.seq_p50_ms,
    seq_ratio: +(big.seq_p50_ms / small.seq_p50_ms).toFixed(3),
    target: TARGET,
    meets_target: ratio <= TARGET,
  });
}
