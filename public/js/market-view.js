// Market page: source tiles + searchable, sortable, paged table of unified assets (GET /data).
import { dataOrigin, getEnvelope } from "./api.js";
import { currencyCode, fmtMoney, fmtMoneyCompact, fullAmount, vsCurrencyQuery } from "./currency.js";
import { errorBox, h, sampleDataNotice, setStatus, sourceBadge } from "./dom.js";
import { fmtInt, fmtPct } from "./format.js";
import { sourceTilesSection } from "./source-tiles.js";

const DEFAULTS = { q: "", page: 1, page_size: 50, sort: "rank", order: "asc", source: "" };
const SOURCES = ["coingecko", "coinpaprika", "csv"];
const PAGE_SIZES = [25, 50, 100, 250];
const COLUMNS = [
  { key: "rank", label: "#", aria: "Rank", sort: "rank", num: true, first: "asc" },
  { key: "name", label: "Name", sort: "name", first: "asc" },
  { key: "symbol", label: "Symbol", sort: "symbol", first: "asc", cls: "hide-sm" },
  { key: "price", label: "Price", sort: "price", num: true, first: "desc" },
  { key: "change", label: "24h", sort: "change_24h", num: true, first: "desc" },
  { key: "mcap", label: "Market cap", sort: "market_cap", num: true, first: "desc" },
  { key: "volume", label: "Volume 24h", sort: "volume", num: true, first: "desc" },
  { key: "sources", label: "Sources" },
];

function readState(query) {
  const int = (v, d, max) => Math.min(max, Math.max(1, Number.parseInt(v ?? "", 10) || d));
  const sort = COLUMNS.some((c) => c.sort === query.get("sort")) ? query.get("sort") : DEFAULTS.sort;
  return {
    q: query.get("q") ?? "",
    page: int(query.get("page"), 1, 1e6),
    page_size: PAGE_SIZES.includes(Number(query.get("page_size"))) ? Number(query.get("page_size")) : DEFAULTS.page_size,
    sort,
    order: query.get("order") === "desc" || query.get("order") === "asc" ? query.get("order") : DEFAULTS.order,
    source: SOURCES.includes(query.get("source")) ? query.get("source") : "",
  };
}

function writeState(state) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v !== DEFAULTS[k] && v !== "") params.set(k, String(v));
  const hash = `#/${params.size ? `?${params}` : ""}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

export function renderMarket(root, query) {
  document.title = "coinfuse · Market";
  const state = readState(query);
  const aborts = new Set();
  const track = () => {
    const ac = new AbortController();
    aborts.add(ac);
    return ac;
  };
  let listAbort = null;
  let debounce = 0;

  const tiles = sourceTilesSection();

  const search = h("input", {
    type: "search",
    id: "asset-search",
    name: "q",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "Bitcoin, ETH…",
    value: state.q,
  });
  const sourceSelect = h(
    "select",
    { id: "source-filter", name: "source" },
    h("option", { value: "" }, "All sources"),
    SOURCES.map((s) => h("option", { value: s, selected: s === state.source }, s)),
  );
  const sizeSelect = h(
    "select",
    { id: "page-size", name: "page_size" },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.page_size }, String(n))),
  );
  // Every asset matching the current search, source and sort, as one CSV download.
  const exportLink = h("a.btn", { id: "export-csv", download: "coinfuse-assets.csv" }, "Export CSV");
  const updateExport = () => {
    const p = new URLSearchParams({ format: "csv", sort: state.sort, order: state.order, ...vsCurrencyQuery() });
    if (state.q) p.set("q", state.q);
    if (state.source) p.set("source", state.source);
    exportLink.href = `/data/export?${p}`;
    exportLink.download = currencyCode() === "usd" ? "coinfuse-assets.csv" : `coinfuse-assets-${currencyCode()}.csv`;
  };
  const toolbar = h(
    "form.toolbar",
    {
      role: "search",
      "aria-label": "Filter assets",
      onsubmit: (e) => {
        e.preventDefault();
        clearTimeout(debounce);
        state.page = 1;
        load();
      },
    },
    h("div.field.field-grow", {}, h("label", { for: "asset-search" }, "Search name or symbol"), search),
    h("div.field", {}, h("label", { for: "source-filter" }, "Quoted by"), sourceSelect),
    h("div.field", {}, h("label", { for: "page-size" }, "Rows"), sizeSelect),
    exportLink,
  );

  const caption = h("caption.visually-hidden", {});
  const headRow = h("tr", {});
  const tbody = h("tbody", {});
  const table = h("table", { id: "market-table" }, caption, h("thead", {}, headRow), tbody);
  const errorSlot = h("div", { id: "market-error" });
  const summary = h("p.muted.small", { id: "market-summary" });
  const prev = h(
    "button.btn",
    {
      type: "button",
      id: "page-prev",
      onclick: () => {
        state.page--;
        load();
      },
    },
    "← Previous",
  );
  const next = h(
    "button.btn",
    {
      type: "button",
      id: "page-next",
      onclick: () => {
        state.page++;
        load();
      },
    },
    "Next →",
  );
  const pageInfo = h("p", { id: "page-info", "aria-live": "polite" });
  const originNote = sampleDataNotice("data-origin");

  root.append(
    h("h1", { tabindex: "-1" }, "Market"),
    originNote,
    tiles.section,
    h(
      "section",
      { "aria-labelledby": "assets-h" },
      h("div.section-head", {}, h("h2", { id: "assets-h" }, "Assets"), summary),
      toolbar,
      errorSlot,
      h("div.table-scroll", { role: "region", "aria-label": "Assets table", tabindex: "0" }, table),
      h("nav.pager", { "aria-label": "Pagination" }, prev, pageInfo, next),
    ),
  );

  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      state.q = search.value.trim();
      state.page = 1;
      load();
    }, 250);
  });
  sourceSelect.addEventListener("change", () => {
    state.source = sourceSelect.value;
    state.page = 1;
    load();
  });
  sizeSelect.addEventListener("change", () => {
    state.page_size = Number(sizeSelect.value);
    state.page = 1;
    load();
  });

  headRow.append(
    ...COLUMNS.map((col) => {
      const th = h("th", {
        scope: "col",
        class: [col.num ? "num" : "", col.cls ?? ""].join(" ").trim() || null,
        dataset: { col: col.key },
      });
      if (!col.sort) th.append(col.label);
      else
        th.append(
          h(
            "button.sort-btn",
            { type: "button", "aria-label": col.aria, dataset: { sort: col.sort }, onclick: () => sortBy(col) },
            col.label,
          ),
        );
      return th;
    }),
  );

  function renderHead() {
    for (const th of headRow.children) {
      const sort = th.querySelector("[data-sort]")?.dataset.sort;
      if (sort && sort === state.sort) th.setAttribute("aria-sort", state.order === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }

  function sortBy(col) {
    if (state.sort === col.sort) state.order = state.order === "asc" ? "desc" : "asc";
    else {
      state.sort = col.sort;
      state.order = col.first;
    }
    state.page = 1;
    load();
  }

  async function load() {
    updateExport();
    writeState(state);
    renderHead();
    listAbort?.abort();
    listAbort = track();
    table.setAttribute("aria-busy", "true");
    setStatus("Loading assets…");
    errorSlot.replaceChildren();
    try {
      const body = await getEnvelope("/data", {
        signal: listAbort.signal,
        query: {
          page: state.page,
          page_size: state.page_size,
          q: state.q,
          sort: state.sort,
          order: state.order,
          source: state.source,
          ...vsCurrencyQuery(),
        },
      });
      const rows = body?.data ?? [];
      const meta = body?.metadata ?? {};
      const total = Number.isFinite(meta.total) ? meta.total : rows.length;
      originNote.hidden = meta.data_origin !== "recorded";
      if (meta.data_origin) dataOrigin(meta.data_origin);
      const pages = Math.max(1, Math.ceil(total / state.page_size));
      if (state.page > pages && total > 0) {
        state.page = pages;
        return load();
      }
      tbody.replaceChildren(...(rows.length ? rows.map(assetRow) : [emptyRow()]));
      const from = total ? (state.page - 1) * state.page_size + 1 : 0;
      const to = from ? from + rows.length - 1 : 0;
      summary.textContent = `${fmtInt(total)} asset${total === 1 ? "" : "s"}${state.q ? ` matching “${state.q}”` : ""}${state.source ? ` quoted by ${state.source}` : ""}`;
      pageInfo.textContent = `Page ${state.page} of ${pages}`;
      caption.textContent = `Assets ${from}–${to} of ${total}, sorted by ${state.sort} ${state.order === "asc" ? "ascending" : "descending"}.`;
      prev.disabled = state.page <= 1;
      next.disabled = state.page >= pages;
      setStatus(total ? `Showing ${fmtInt(from)}–${fmtInt(to)} of ${fmtInt(total)} assets.` : "No assets found.");
    } catch (err) {
      if (err.name === "AbortError") return;
      errorSlot.replaceChildren(errorBox(err));
      setStatus(`Could not load assets: ${err.message}`, { error: true });
    } finally {
      table.removeAttribute("aria-busy");
    }
  }

  function emptyRow() {
    const text = state.q ? `No assets match “${state.q}”.` : "No assets yet. Run an ingestion or upload a CSV on the Ingestion page.";
    return h("tr", {}, h("td.empty", { colspan: COLUMNS.length }, text));
  }

  const tilesAbort = track();
  tiles.load(tilesAbort.signal).catch(() => {});
  load();

  return () => {
    clearTimeout(debounce);
    for (const ac of aborts) ac.abort();
  };
}

function assetRow(a) {
  const change = fmtPct(a.change_24h_pct);
  return h(
    "tr",
    { dataset: { assetUid: a.asset_uid } },
    h("td.num", {}, a.rank ?? "—"),
    h(
      "th",
      { scope: "row" },
      h(
        "div.asset-name",
        {},
        h("a", { href: `#/asset/${encodeURIComponent(a.asset_uid)}` }, a.name || a.asset_uid),
        h("span.show-sm.mono.muted.small", {}, (a.symbol ?? "").toUpperCase()),
      ),
    ),
    h("td.mono.hide-sm", {}, (a.symbol ?? "").toUpperCase()),
    h("td.num", { title: fullAmount(a.price) }, fmtMoney(a.price)),
    h("td.num", { class: `num ${change.dir}` }, change.text),
    h("td.num", { title: fullAmount(a.market_cap) }, fmtMoneyCompact(a.market_cap)),
    h("td.num", { title: fullAmount(a.volume_24h) }, fmtMoneyCompact(a.volume_24h)),
    h("td", {}, h("div.badges", {}, (a.sources ?? []).map(sourceBadge))),
  );
}
