// The currency the dashboard shows amounts in (the API's vs_currency), remembered in this browser,
// and money formatted in it: the currency's sign and digits from Intl.NumberFormat (en-US), or the
// unit /currencies gives for codes Intl does not know (sats, bits).
import { getData } from "./api.js";
import { h } from "./dom.js";

const KEY = "coinfuse.vs_currency";
const DASH = "—";

/** The chosen code, lower case ("usd" until one is chosen). */
export function currencyCode() {
  try {
    return localStorage.getItem(KEY) || "usd";
  } catch {
    return "usd";
  }
}

let listed = null;
let list = [];
/** GET /currencies, once per page load. */
export function loadCurrencies() {
  listed ??= getData("/currencies")
    .then((data) => {
      list = data ?? [];
      return list;
    })
    .catch(() => {
      listed = null;
      return list;
    });
  return listed;
}

/** Chooses a currency: remembered, and every view listening to "currencychange" redraws in it. */
export function setCurrency(code) {
  try {
    localStorage.setItem(KEY, code);
  } catch {}
  window.dispatchEvent(new CustomEvent("currencychange", { detail: code }));
}

/** The query parameter for the chosen currency (none for USD, the API's default). */
export const vsCurrencyQuery = () => (currencyCode() === "usd" ? {} : { vs_currency: currencyCode() });

/** A select of every currency /currencies lists, fiat first, the chosen one selected. */
export function currencyPicker() {
  const select = h("select", { id: "currency-picker", name: "vs_currency", "aria-label": "Currency" });
  const fill = (currencies) => {
    const chosen = currencyCode();
    const known = currencies.some((c) => c.code === chosen);
    const options = currencies.length ? currencies : [{ code: "usd", name: "US Dollar", type: "fiat" }];
    const groups = ["fiat", "crypto", "commodity"].map((type) => ({ type, items: options.filter((c) => c.type === type) }));
    select.replaceChildren(
      ...groups
        .filter((g) => g.items.length)
        .map((g) =>
          h(
            "optgroup",
            { label: g.type === "fiat" ? "Fiat" : g.type === "crypto" ? "Crypto" : "Commodities" },
            g.items.map((c) => h("option", { value: c.code, selected: c.code === chosen }, `${c.code.toUpperCase()} · ${c.name}`)),
          ),
        ),
    );
    // A code remembered from before that the API no longer lists falls back to USD.
    if (!known && chosen !== "usd" && currencies.length) setCurrency("usd");
  };
  fill([]);
  loadCurrencies().then(fill);
  select.addEventListener("change", () => setCurrency(select.value));
  return h("div.field.currency-field", {}, h("label", { for: "currency-picker" }, "Currency"), select);
}

const formats = new Map();
/** Intl's currency formatting of `code` with these options, or null for a code Intl does not take. */
function intlCurrency(code, opts = {}) {
  const key = `${code}|${JSON.stringify(opts)}`;
  if (!formats.has(key)) {
    let f = null;
    if (/^[a-z]{3}$/.test(code)) {
      try {
        f = new Intl.NumberFormat("en-US", { style: "currency", currency: code.toUpperCase(), ...opts });
      } catch {}
    }
    formats.set(key, f);
  }
  return formats.get(key);
}

/** How a number is written in `code`: its sign before (Intl's), or its unit after, and its usual decimals. */
export function moneyStyle(code = currencyCode()) {
  const f = intlCurrency(code);
  if (f) {
    const parts = f.formatToParts(1);
    const sign = parts.find((p) => p.type === "currency")?.value ?? code.toUpperCase();
    return { prefix: sign, suffix: "", digits: f.resolvedOptions().maximumFractionDigits };
  }
  const unit = list.find((c) => c.code === code)?.unit ?? code.toUpperCase();
  return { prefix: "", suffix: ` ${unit}`, digits: 2 };
}

const fixed = new Map();
const number = (min, max) => {
  const key = `${min}-${max}`;
  if (!fixed.has(key)) fixed.set(key, new Intl.NumberFormat("en-US", { minimumFractionDigits: min, maximumFractionDigits: max }));
  return fixed.get(key);
};
const significant = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

/**
 * A price in the chosen currency: the currency's own decimals above 10 units ($91,234.50, ¥13,811,000),
 * up to 4 decimals from 1 to 10, 4 significant digits below 1 ($0.00001234).
 */
export function fmtMoney(v, code = currencyCode()) {
  if (typeof v !== "number" || !Number.isFinite(v)) return DASH;
  const { prefix, suffix, digits } = moneyStyle(code);
  const abs = Math.abs(v);
  let text;
  if (abs >= 10) text = number(digits, digits).format(abs);
  else if (abs >= 1) text = number(digits, Math.max(digits, 4)).format(abs);
  else if (abs === 0) text = number(digits, digits).format(0);
  else {
    text = significant.format(abs);
    const decimals = text.split(".")[1]?.length ?? 0;
    if (decimals < digits) text = `${text}${decimals ? "" : "."}${"0".repeat(digits - decimals)}`;
  }
  return `${v < 0 ? "-" : ""}${prefix}${text}${suffix}`;
}

/** Market caps and volumes: $1.2B, €534.1M, 12.5K sats. */
export function fmtMoneyCompact(v, code = currencyCode()) {
  if (typeof v !== "number" || !Number.isFinite(v)) return DASH;
  const { prefix, suffix } = moneyStyle(code);
  return `${v < 0 ? "-" : ""}${prefix}${compact.format(Math.abs(v))}${suffix}`;
}

/** The whole amount, for a tooltip: "91234.5 EUR". */
export const fullAmount = (v, code = currencyCode()) => (typeof v === "number" ? `${v} ${code.toUpperCase()}` : null);
