// Hash router: #/ (market), #/asset/<asset_uid>, #/runs. Each view renders into #view
// and returns a cleanup function (timers, pending requests) run before the next view.

import { renderAsset } from "./asset-view.js";
import { currencyPicker } from "./currency.js";
import { h, setStatus, tickTimes } from "./dom.js";
import { renderMarket } from "./market-view.js";
import { renderRuns } from "./runs-view.js";

const routes = [
  { pattern: /^\/asset\/([^/?]+)\/?$/, nav: "market", render: (el, m) => renderAsset(el, decodeURIComponent(m[1])) },
  { pattern: /^\/runs\/?$/, nav: "runs", render: (el) => renderRuns(el) },
  { pattern: /^\/?$/, nav: "market", render: (el, _m, query) => renderMarket(el, query) },
];

let cleanup = null;
let firstRender = true;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

function route() {
  const { path, query } = parseHash();
  const view = document.getElementById("view");
  if (cleanup) cleanup();
  cleanup = null;
  setStatus("");
  view.replaceChildren();

  const match = routes.map((r) => ({ r, m: path.match(r.pattern) })).find((x) => x.m);
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (match && a.dataset.nav === match.r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!match) {
    document.title = "coinfuse · Not found";
    view.append(h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to the market")));
  } else {
    cleanup = match.r.render(view, match.m, query) ?? null;
  }
  if (!firstRender) {
    window.scrollTo(0, 0);
    view.querySelector("h1")?.focus({ preventScroll: true });
  }
  firstRender = false;
}

window.addEventListener("hashchange", route);
// Amounts are shown in the currency picked in the header (remembered in this browser); a new pick redraws the view.
document.querySelector(".header-row")?.append(currencyPicker());
window.addEventListener("currencychange", route);
setInterval(() => tickTimes(), 15_000);
route();
