// Source status strip: GET /health (bare) + GET /stats ({data}) merged per source.
import { getData, request } from "./api.js";
import { h, statusPill, timeAgo } from "./dom.js";
import { fmtDuration, fmtInt, fmtRate } from "./format.js";

const KNOWN = ["coingecko", "coinpaprika", "csv"];

export function sourceTilesSection() {
  const healthLine = h("p.health-line", { id: "health-line" }, "Checking health…");
  const list = h("ul.tiles", { id: "source-tiles", "aria-busy": "true", "aria-label": "Source status", tabindex: "0" });
  const section = h(
    "section",
    { "aria-labelledby": "sources-h" },
    h("div.section-head", {}, h("h2", { id: "sources-h" }, "Sources"), healthLine),
    list,
  );
  return { section, load: (signal) => loadTiles(list, healthLine, signal) };
}

async function loadTiles(list, healthLine, signal) {
  const [health, stats] = await Promise.allSettled([request("/health", { signal }), getData("/stats", { signal })]);
  const hv = health.status === "fulfilled" ? health.value : null;
  const sv = stats.status === "fulfilled" ? stats.value : null;
  list.removeAttribute("aria-busy");

  healthLine.replaceChildren();
  if (hv) {
    healthLine.append("API ", statusPill(hv.status));
    for (const [name, state] of Object.entries(hv.checks ?? {})) healthLine.append(" · ", `${name.toUpperCase()} `, statusPill(state));
    if (hv.time) healthLine.append(" · checked ", timeAgo(hv.time));
  } else {
    healthLine.append("API ", statusPill("down"), ` · ${health.reason?.message ?? "health check failed"}`);
  }

  const names = [...new Set([...KNOWN, ...Object.keys(hv?.sources ?? {}), ...Object.keys(sv?.sources ?? {})])];
  list.replaceChildren(...names.map((name) => tile(name, hv?.sources?.[name], sv?.sources?.[name])));
}

function tile(name, health, stats) {
  let status = health?.status ?? "never";
  if (health?.stale && status === "ok") status = "stale";
  const lastRun = stats?.last_run;
  const lastRunAt = typeof lastRun === "object" && lastRun ? (lastRun.finished_at ?? lastRun.started_at) : lastRun;
  const lastSuccess = health?.last_success_at ?? stats?.last_success_at;
  const row = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
  return h(
    "li.tile",
    { dataset: { source: name } },
    h("div.tile-head", {}, h("h3", {}, name), statusPill(status)),
    h(
      "dl",
      {},
      row("Last success", timeAgo(lastSuccess)),
      row("Records", fmtInt(stats?.records)),
      row("Success rate", fmtRate(stats?.success_rate)),
      row(
        "Last run",
        lastRunAt
          ? [
              typeof lastRun === "object" ? `${lastRun.status}${lastRun.origin === "recorded" ? " (recorded)" : ""} · ` : "",
              timeAgo(lastRunAt),
            ]
          : h("span.muted", {}, "none"),
      ),
      stats?.mean_duration_ms != null ? row("Mean duration", fmtDuration(stats.mean_duration_ms)) : null,
    ),
    health?.last_error ? h("p.tile-error", { title: health.last_error }, health.last_error) : null,
  );
}
