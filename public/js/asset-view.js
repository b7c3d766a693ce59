// Asset page: consensus, per-source quotes side by side, price history chart, mappings, contracts.
import { dataOrigin, getData } from "./api.js";
import { currencyCode, fmtMoney, fmtMoneyCompact, moneyStyle, vsCurrencyQuery } from "./currency.js";
import { errorBox, h, sampleDataNotice, scrollTable, setStatus, sourceBadge, statusPill, timeAgo } from "./dom.js";
import { fmtCompact, fmtInt, fmtPct } from "./format.js";
import { alignHistory, drawPriceChart } from "./price-chart.js";

const RANGES = [
  { key: "all", label: "All", seconds: 0 },
  { key: "30d", label: "30 d", seconds: 30 * 86400 },
  { key: "7d", label: "7 d", seconds: 7 * 86400 },
  { key: "24h", label: "24 h", seconds: 86400 },
];

export function renderAsset(root, uid) {
  document.title = `coinfuse · ${uid}`;
  const ac = new AbortController();
  let destroyChart = null;
  let range = "all";
  let current = null;

  const title = h("h1", { tabindex: "-1" }, uid);
  const body = h("div", { id: "asset-body", "aria-busy": "true" });
  root.append(h("a.back", { href: "#/" }, "← Market"), title, body);
  setStatus(`Loading ${uid}…`);

  getData(`/data/${encodeURIComponent(uid)}`, { signal: ac.signal, query: vsCurrencyQuery() })
    .then((asset) => {
      body.removeAttribute("aria-busy");
      document.title = `coinfuse · ${asset.name} (${(asset.symbol ?? "").toUpperCase()})`;
      title.textContent = asset.name || asset.asset_uid;
      if (asset.asset_uid !== uid) history.replaceState(null, "", `#/asset/${encodeURIComponent(asset.asset_uid)}`);
      current = asset;
      body.append(...assetSections(asset));
      setStatus(`Loaded ${asset.name}.`);
      loadHistory(asset);
    })
    .catch((err) => {
      if (err.name === "AbortError") return;
      body.removeAttribute("aria-busy");
      body.append(errorBox(err));
      if (err.status === 404) title.textContent = "Asset not found";
      setStatus(`Could not load ${uid}: ${err.message}`, { error: true });
    });

  function loadHistory(asset) {
    const box = body.querySelector("#price-chart");
    const caption = body.querySelector("#chart-caption");
    const tableSlot = body.querySelector("#history-table");
    const r = RANGES.find((x) => x.key === range);
    const from = r.seconds ? new Date(Date.now() - r.seconds * 1000).toISOString() : undefined;
    box.setAttribute("aria-busy", "true");
    caption.textContent = "Loading price history…";
    getData(`/data/${encodeURIComponent(asset.asset_uid)}/history`, { signal: ac.signal, query: { from, ...vsCurrencyQuery() } })
      .then(async (points) => {
        destroyChart?.();
        destroyChart = null;
        box.replaceChildren();
        const aligned = alignHistory(points ?? []);
        if (!aligned.xs.length) {
          box.dataset.seriesCount = "0";
          caption.textContent = "No price history in this range yet.";
          tableSlot.replaceChildren();
          return;
        }
        caption.textContent = chartCaption(asset, aligned);
        tableSlot.replaceChildren(historyTable(aligned));
        destroyChart = await drawPriceChart(box, aligned, { format: fmtMoney, style: moneyStyle() });
      })
      .catch((err) => {
        if (err.name === "AbortError") return;
        box.replaceChildren(errorBox(err));
        caption.textContent = "Price history could not be loaded.";
      })
      .finally(() => box.removeAttribute("aria-busy"));
  }

  function rangeButtons(asset) {
    const group = h("div.range-group", { role: "group", "aria-label": "History range" });
    for (const r of RANGES) {
      group.append(
        h(
          "button.btn",
          {
            type: "button",
            "aria-pressed": String(r.key === range),
            onclick: (e) => {
              range = r.key;
              for (const b of group.children) b.setAttribute("aria-pressed", String(b === e.currentTarget));
              loadHistory(asset);
            },
          },
          r.label,
        ),
      );
    }
    return group;
  }

  function assetSections(asset) {
    const c = asset.consensus ?? {};
    const change = fmtPct(asset.change_24h_pct);
    const spread = fmtPct(c.spread_pct, { signed: false });
    // consensus.sources may be a count or the list of sources that went into the price
    const nSources = typeof c.sources === "number" ? c.sources : (c.sources ?? asset.sources ?? []).length;
    return [
      h(
        "div.asset-head",
        {},
        h(
          "div",
          {},
          h(
            "p.asset-title",
            {},
            h("span.symbol.mono", {}, (asset.symbol ?? "").toUpperCase()),
            asset.rank != null ? h("span.muted", {}, `Rank #${asset.rank}`) : null,
            h("span.muted.mono.small", {}, asset.asset_uid),
          ),
          h("div.badges", { "aria-label": "Quoted by" }, (asset.sources ?? []).map(sourceBadge)),
        ),
        h(
          "div",
          {},
          h("div.price-big", { id: "consensus-price" }, fmtMoney(asset.price)),
          h(
            "p.small",
            {},
            h("span", { class: change.dir }, change.text),
            h("span.muted", {}, ` 24h · consensus of ${nSources} source${nSources === 1 ? "" : "s"}`),
          ),
          (c.excluded ?? []).length
            ? h(
                "p.small.notice",
                { id: "consensus-excluded" },
                `Left out of the consensus: ${c.excluded.map((x) => `${x.source} (${x.reason === "stale" ? "stale quote" : "outlier price"})`).join(", ")}`,
              )
            : null,
        ),
      ),
      h(
        "dl.kpis",
        {},
        kpi("Spread between sources", spread.text, "Highest minus lowest source price, relative to the median source price"),
        kpi("Market cap", fmtMoneyCompact(asset.market_cap)),
        kpi("Volume 24h", fmtMoneyCompact(asset.volume_24h)),
        kpi("Updated", timeAgo(asset.updated_at)),
      ),
      h("section", { "aria-labelledby": "quotes-h" }, h("h2", { id: "quotes-h" }, "Quotes by source"), quotesTable(asset)),
      h(
        "section",
        { "aria-labelledby": "history-h" },
        h("div.section-head", {}, h("h2", { id: "history-h" }, "Price history"), rangeButtons(asset)),
        originNote(),
        h(
          "figure.chart-fig",
          {},
          h("div.chart-box", { id: "price-chart" }),
          h("figcaption.muted.small", { id: "chart-caption", "aria-live": "polite" }),
        ),
        h("div", { id: "history-table" }),
      ),
      h(
        "section",
        { "aria-labelledby": "mappings-h" },
        h("h2", { id: "mappings-h" }, "Source mappings"),
        mappingsTable(asset.mappings ?? []),
        asset.aliases?.length
          ? h(
              "div.small.aliases",
              {},
              "Also answers to: ",
              h(
                "ul.alias-list",
                {},
                asset.aliases.map((a) => h("li.mono", {}, a)),
              ),
            )
          : null,
      ),
      h(
        "section",
        { "aria-labelledby": "contracts-h" },
        h("h2", { id: "contracts-h" }, "Contracts"),
        contractsTable(asset.contracts ?? []),
      ),
    ];
  }

  // Chart colours come from CSS variables, so redraw when the colour scheme flips.
  const onScheme = () => current && destroyChart && loadHistory(current);
  const mq = window.matchMedia("(prefers-color-scheme: dark)");
  mq.addEventListener("change", onScheme);

  return () => {
    ac.abort();
    mq.removeEventListener("change", onScheme);
    destroyChart?.();
  };
}

function originNote() {
  const note = sampleDataNotice("asset-data-origin", { short: true });
  dataOrigin().then((o) => {
    note.hidden = o !== "recorded";
  });
  return note;
}

function kpi(label, value, hint) {
  return h("div.kpi", {}, h("dt", { title: hint }, label), h("dd", {}, value));
}

function quotesTable(asset) {
  const quotes = asset.quotes ?? [];
  if (!quotes.length) return h("p.muted", {}, "No quotes stored for this asset.");
  const consensus = asset.consensus?.price_usd;
  const rows = [
    ["Price", (q) => fmtMoney(q.price)],
    [
      "vs consensus",
      (q) => {
        if (typeof q.price_usd !== "number" || typeof consensus !== "number" || !consensus) return "—";
        const d = fmtPct(((q.price_usd - consensus) / consensus) * 100);
        return h("span", { class: d.dir }, d.text);
      },
    ],
    [
      "24h change",
      (q) => {
        const d = fmtPct(q.change_24h_pct);
        return h("span", { class: d.dir }, d.text);
      },
    ],
    ["Market cap", (q) => fmtMoneyCompact(q.market_cap)],
    ["Volume 24h", (q) => fmtMoneyCompact(q.volume_24h)],
    ["Circulating supply", (q) => fmtCompact(q.circulating_supply)],
    ["Total supply", (q) => fmtCompact(q.total_supply)],
    ["Max supply", (q) => fmtCompact(q.max_supply)],
    ["Source rank", (q) => fmtInt(q.rank)],
    ["Source id", (q) => h("span.mono", {}, q.source_id ?? "—")],
    ["Source time", (q) => timeAgo(q.source_updated_at)],
    ["Ingested", (q) => timeAgo(q.ingested_at)],
  ];
  return scrollTable({
    label: "Quotes table",
    tag: "table.quote-table",
    id: "quotes-table",
    head: [
      h("th", { scope: "col" }, h("span.visually-hidden", {}, "Field")),
      quotes.map((q) => h("th.num", { scope: "col", dataset: { source: q.source } }, q.source)),
    ],
    rows: rows.map(([label, fn]) =>
      h(
        "tr",
        {},
        h("th", { scope: "row" }, label),
        quotes.map((q) => h("td.num", {}, fn(q))),
      ),
    ),
  });
}

function mappingsTable(mappings) {
  if (!mappings.length) return h("p.muted", {}, "No mappings recorded.");
  return scrollTable({
    label: "Mappings table",
    id: "mappings-table",
    head: ["Source", "Source id", "Rule", "Pinned"].map((l) => h("th", { scope: "col" }, l)),
    rows: mappings.map((m) =>
      h(
        "tr",
        {},
        h("th", { scope: "row" }, sourceBadge(m.source)),
        h("td.mono", {}, m.source_id),
        h("td", {}, m.rule ?? "—"),
        h("td", {}, m.pinned ? statusPill("pinned") : h("span.muted", {}, "no")),
      ),
    ),
  });
}

/** Each (chain, address) the asset's ids list, with who lists it, a copy button and the chain's explorer. */
function contractsTable(contracts) {
  if (!contracts.length) return h("p.muted", {}, "No contract listed (a native coin, or one known only from a CSV).");
  return scrollTable({
    label: "Contracts table",
    id: "contracts-table",
    head: ["Chain", "Address", "Listed by", "Explorer"].map((l) => h("th", { scope: "col" }, l)),
    rows: contracts.map((c) =>
      h(
        "tr",
        {},
        h("th", { scope: "row" }, c.chain, c.active === false ? h("span.muted.small", {}, " (inactive)") : null),
        h("td", {}, h("span.mono.contract-address", {}, c.address), " ", copyButton(c.address, `${c.chain} address`)),
        h("td", {}, (c.sources ?? []).map(sourceBadge)),
        h(
          "td",
          {},
          c.explorer_url
            ? h("a", { href: c.explorer_url, target: "_blank", rel: "noopener noreferrer" }, "View")
            : h("span.muted", {}, "—"),
        ),
      ),
    ),
  });
}

function copyButton(text, what) {
  const button = h("button.btn.btn-small", { type: "button", "aria-label": `Copy the ${what}`, title: "Copy" }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => {
      button.textContent = "Copy";
    }, 1500);
  });
  return button;
}

const plural = (n, word) => `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
const utc = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ");

function chartCaption(asset, { sources, xs, ys, counts, gaps }) {
  const times = xs.filter((_, i) => ys.some((col) => typeof col[i] === "number"));
  const span = times.length === 1 ? `at ${utc(times[0])} UTC` : `${utc(times[0])} to ${utc(times.at(-1))} UTC`;
  const total = counts.reduce((a, b) => a + b, 0);
  const broken = sources.filter((_, i) => gaps[i] > 0);
  return (
    `${asset.name} price in ${currencyCode().toUpperCase()} from ${plural(sources.length, "source")} (${sources.join(", ")}), ${plural(total, "point")}, ${span}.` +
    (broken.length
      ? ` The ${broken.join(", ")} line${broken.length === 1 ? " breaks where it has" : "s break where they have"} no points for a while.`
      : "")
  );
}

function historyTable({ sources, xs, ys }) {
  const rows = xs.map((_, i) => i).filter((i) => ys.some((col) => typeof col[i] === "number"));
  const n = Math.min(rows.length, 50);
  const idx = rows.slice(-n).reverse();
  return h(
    "details",
    {},
    h("summary", {}, n === 1 ? "Show the point as a table" : `Show the latest ${n} points as a table`),
    scrollTable({
      id: "history-points",
      caption: `Latest price points, newest first (${currencyCode().toUpperCase()})`,
      head: [h("th", { scope: "col" }, "Time (UTC)"), sources.map((s) => h("th.num", { scope: "col" }, s))],
      rows: idx.map((i) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, new Date(xs[i] * 1000).toISOString().slice(0, 16).replace("T", " ")),
          ys.map((col) => h("td.num", {}, fmtMoney(col[i]))),
        ),
      ),
    }),
  );
}
