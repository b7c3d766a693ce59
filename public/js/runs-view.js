// Ingestion page: CSV upload card + recent runs (GET /stats/runs), refreshed automatically.
import { getData } from "./api.js";
import { csvUploadCard } from "./csv-upload.js";
import { errorBox, h, setStatus, sourceBadge, statusPill, timeAgo } from "./dom.js";
import { fmtDuration, fmtInt, shortId } from "./format.js";

const REFRESH_MS = 10_000;
const ACTIVE_REFRESH_MS = 3_000;
const SOURCES = ["coingecko", "coinpaprika", "csv"];
const STATUSES = ["queued", "running", "succeeded", "partial", "failed"];

export function renderRuns(root) {
  document.title = "coinfuse · Ingestion";
  let timer = 0;
  let ac = null;
  let active = false;
  const filter = { source: "", status: "" };

  const upload = csvUploadCard({ onFinished: () => refresh() });

  const auto = h("input", { type: "checkbox", id: "auto-refresh", checked: true });
  const refreshed = h("span.muted.small", { id: "runs-updated" });
  const select = (id, label, values, key) => {
    const el = h(
      "select",
      { id },
      h("option", { value: "" }, `All`),
      values.map((v) => h("option", { value: v }, v)),
    );
    el.addEventListener("change", () => {
      filter[key] = el.value;
      refresh();
    });
    return h("div.field", {}, h("label", { for: id }, label), el);
  };
  const tbody = h("tbody", {});
  const table = h(
    "table",
    { id: "runs-table" },
    h("caption.visually-hidden", {}, "Recent ingestion runs, newest first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Status", "Source", "Trigger", "Started", "Duration", "Fetched", "Accepted", "Rejected", "Written", "Run id", "Error"].map(
          (l, i) => h("th", { scope: "col", class: i >= 4 && i <= 8 ? "num" : null }, l),
        ),
      ),
    ),
    tbody,
  );
  const errorSlot = h("div", {});

  root.append(
    h("h1", { tabindex: "-1" }, "Ingestion"),
    upload.card,
    h(
      "section",
      { "aria-labelledby": "runs-h" },
      h("div.section-head", {}, h("h2", { id: "runs-h" }, "Recent runs"), refreshed),
      h(
        "div.toolbar",
        {},
        select("runs-source", "Source", SOURCES, "source"),
        select("runs-status", "Status", STATUSES, "status"),
        h("label.check", { for: "auto-refresh" }, auto, "Auto-refresh"),
        h("button.btn", { type: "button", id: "runs-refresh", onclick: () => refresh() }, "Refresh now"),
      ),
      errorSlot,
      h("div.table-scroll", { role: "region", "aria-label": "Runs table", tabindex: "0" }, table),
    ),
  );

  auto.addEventListener("change", schedule);
  document.addEventListener("visibilitychange", schedule);

  function schedule() {
    clearTimeout(timer);
    if (auto.checked && !document.hidden) timer = setTimeout(refresh, active ? ACTIVE_REFRESH_MS : REFRESH_MS);
  }

  async function refresh() {
    clearTimeout(timer);
    ac?.abort();
    ac = new AbortController();
    table.setAttribute("aria-busy", "true");
    try {
      const runs = (await getData("/stats/runs", { signal: ac.signal, query: { page_size: 50, ...filter } })) ?? [];
      errorSlot.replaceChildren();
      active = runs.some((r) => r.status === "queued" || r.status === "running");
      tbody.replaceChildren(...(runs.length ? runs.map(runRow) : [h("tr", {}, h("td.empty", { colspan: 11 }, "No runs recorded yet."))]));
      refreshed.replaceChildren(
        "Updated ",
        timeAgo(new Date().toISOString()),
        auto.checked ? ` · every ${(active ? ACTIVE_REFRESH_MS : REFRESH_MS) / 1000} s` : "",
      );
      setStatus(`${runs.length} run${runs.length === 1 ? "" : "s"} shown${active ? ", some still in progress" : ""}.`);
    } catch (err) {
      if (err.name === "AbortError") return;
      errorSlot.replaceChildren(errorBox(err));
      setStatus(`Could not load runs: ${err.message}`, { error: true });
    } finally {
      table.removeAttribute("aria-busy");
    }
    schedule();
  }

  refresh();
  return () => {
    clearTimeout(timer);
    ac?.abort();
    upload.stop();
    document.removeEventListener("visibilitychange", schedule);
  };
}

function runRow(r) {
  const rec = r.records ?? {};
  // data-label names a cell where the narrow layout shows rows as cards (app.css).
  const count = (label, n, extra = "") => h(`td.num${extra}`, { dataset: { label } }, fmtInt(n));
  return h(
    "tr",
    { dataset: { runId: r.run_id, status: r.status } },
    h("td.run-status", {}, statusPill(r.status)),
    h("td.run-source", {}, sourceBadge(r.source)),
    h(
      "td.run-trigger",
      {},
      r.trigger ?? "—",
      r.origin === "recorded" ? h("span.tag", { title: "Upstream was the bundled recorded sample data" }, "recorded") : null,
    ),
    h("td.run-started", {}, r.started_at ? timeAgo(r.started_at) : h("span.muted", {}, "not yet")),
    h("td.num", { dataset: { label: "took" } }, fmtDuration(r.duration_ms)),
    count("fetched", rec.fetched, ".run-minor"),
    count("accepted", rec.accepted),
    count("rejected", rec.rejected),
    count("written", rec.written, ".run-minor"),
    h("td.mono.run-minor", { title: r.run_id }, shortId(r.run_id)),
    h("td.run-error", {}, r.error ? h("div.cell-error", { title: r.error }, r.error) : h("span.muted", {}, "—")),
  );
}
