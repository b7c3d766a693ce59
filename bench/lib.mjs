// Shared plumbing for the benchmarks: a fresh local Worker (wrangler dev on loopback, its own
// state directory), HTTP helpers and statistics. Loopback only.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
export const TOKEN = "bench-admin-token";

export async function startWorker({ port = 18800, vars = {}, name = "bench" } = {}) {
  const state = path.join(root, "bench", "out", `${name}-state`);
  fs.rmSync(state, { recursive: true, force: true });
  fs.mkdirSync(state, { recursive: true });
  const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
  // wrangler needs Node >= 22: the project brings it (npm package "node") in node_modules/.bin.
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", PATH: `${path.join(root, "node_modules", ".bin")}${path.delimiter}${process.env.PATH}` };
  const mig = spawnSync(wrangler, ["d1", "migrations", "apply", "coinfuse", "--local", "--persist-to", state], { cwd: root, env, encoding: "utf8" });
  if (mig.status !== 0) throw new Error(`migrations failed: ${mig.stdout}${mig.stderr}`);
  const allVars = { ADMIN_TOKEN: TOKEN, READ_RATE_LIMIT: "off", ...vars };
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--test-scheduled", ...Object.entries(allVars).flatMap(([k, v]) => ["--var", `${k}:${v}`])];
  const log = fs.openSync(path.join(root, "bench", "out", `${name}-dev.log`), "w");
  const proc = spawn(wrangler, args, { cwd: root, env, stdio: ["ignore", log, log], detached: true });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`${base}/health`);
      if (r.status === 200 || r.status === 503) break;
    } catch {}
    await sleep(300);
  }
  return {
    base,
    state,
    stop: () => {
      try {
        process.kill(-proc.pid, "SIGTERM");
      } catch {}
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function call(base, method, p, { body, headers = {}, token } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(base + p, { method, headers: h, body });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

export async function waitFinished(base, p, timeoutMs = 900_000) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const r = await call(base, "GET", p);
    if (["succeeded", "partial", "failed"].includes(r.json?.data?.status)) return r.json.data;
    await sleep(250);
  }
  throw new Error(`${p} did not finish`);
}

export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
}
export const median = (xs) => quantile(xs, 0.5);

/** A CoinCap-style CSV: every number a 16-decimal string, like the real export. */
export function coincapCsv(rows, tag = "bulk") {
  const lines = ["id,rank,symbol,name,supply,maxSupply,marketCapUsd,volumeUsd24Hr,priceUsd,changePercent24Hr,vwap24Hr,explorer,timestamp"];
  for (let i = 1; i <= rows; i++) {
    lines.push(
      `${tag}-coin-${i},${i},${tag.toUpperCase().slice(0, 2)}${i},${tag} Coin ${i},${(i * 1000.5).toFixed(16)},,${(i * 99.25).toFixed(16)},${(i * 7.5).toFixed(16)},${(1 + i / 1000).toFixed(16)},0.5000000000000000,${(1 + i / 1000).toFixed(16)},,2026-11-22T12:00:00Z`,
    );
  }
  return `${lines.join("\n")}\n`;
}
