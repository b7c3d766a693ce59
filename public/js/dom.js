// Tiny DOM helpers. Data only ever reaches the page through textContent/attributes, never innerHTML.
import { fmtAgo } from "./format.js";

/** h("a.link", {href: "#/"}, "text", child) creates an element; class names after dots. */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A table in a horizontally scrollable box; with a `label` the box is a focusable, named region (keyboard scrolling). */
export function scrollTable({ label, tag = "table", id, caption, head, rows }) {
  const box = label ? { role: "region", "aria-label": label, tabindex: "0" } : {};
  return h(
    "div.table-scroll",
    box,
    h(tag, { id }, caption ? h("caption", {}, caption) : null, h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows)),
  );
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** <time> showing "3 min ago" with the ISO timestamp as title; refreshed by tickTimes(). */
export function timeAgo(iso) {
  if (!iso) return h("span.muted", {}, "never");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, String(iso));
  const text = date.toISOString();
  return h("time", { datetime: text, title: text, "data-ago": "" }, fmtAgo(date));
}

export function tickTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-ago]")) el.textContent = fmtAgo(new Date(el.dateTime));
}

export function sourceBadge(source) {
  return h("span.badge", { dataset: { source } }, source);
}

export function statusPill(status) {
  return h("span.pill", { dataset: { status: status ?? "unknown" } }, status ?? "unknown");
}

/** Error box for {error:{code,message,request_id}} (see api.js ApiError). */
export function errorBox(err) {
  return h(
    "div.error-box",
    { role: "alert" },
    h("code", {}, err.code ?? "error"),
    ": ",
    err.message ?? String(err),
    err.requestId ? h("span.muted.small", {}, ` (request ${err.requestId})`) : null,
  );
}

export function setStatus(text, { error = false } = {}) {
  const el = document.getElementById("app-status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

/** The notice shown while the data is the bundled sample (DATA_ORIGIN=recorded); hidden until then. */
export function sampleDataNotice(id, { short = false } = {}) {
  const replay = [h("code", {}, "npm run dev"), " replays them as past ticks, each price moved by a seeded random walk"];
  return h(
    "p.notice",
    { id, hidden: true },
    h("strong", {}, "Sample data. "),
    short
      ? ["Prices and history are illustrative: recorded payloads that ", ...replay, "."]
      : [
          "This instance ingests the bundled recorded CoinGecko, CoinPaprika and CSV payloads, not live markets: prices are illustrative, not current. ",
          ...replay,
          ", so the charts have a history.",
        ],
  );
}
