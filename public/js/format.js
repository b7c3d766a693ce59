// Number and time formatting for the dashboard (en-US, USD).
const DASH = "—";
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });
const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const price2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const price4 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
const priceSig = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** $91,234.50, $1.0012, $0.00001234: cents above $10, up to 4 significant digits below. */
export function fmtPrice(v) {
  if (!isNum(v)) return DASH;
  const abs = Math.abs(v);
  if (abs >= 10) return `$${price2.format(v)}`;
  if (abs >= 1) return `$${price4.format(v)}`;
  if (abs === 0) return "$0.00";
  const text = priceSig.format(v);
  return `$${/\.\d\d/.test(text) ? text : text.includes(".") ? `${text}0` : `${text}.00`}`;
}

/** $1.2B, $534.1M */
export function fmtUsdCompact(v) {
  return isNum(v) ? `$${compact.format(v)}` : DASH;
}

export function fmtCompact(v) {
  return isNum(v) ? compact.format(v) : DASH;
}

export function fmtInt(v) {
  return isNum(v) ? integer.format(v) : DASH;
}

/** "+2.31%" / "-0.84%" plus a direction for colour; the sign carries the meaning without colour. */
export function fmtPct(v, { signed = true } = {}) {
  if (!isNum(v)) return { text: DASH, dir: "" };
  const rounded = Math.abs(v) < 0.005 ? 0 : v;
  const sign = signed && rounded > 0 ? "+" : rounded < 0 ? "-" : "";
  return { text: `${sign}${price2.format(Math.abs(rounded))}%`, dir: !signed || rounded === 0 ? "" : rounded > 0 ? "up" : "down" };
}

export function fmtRate(v) {
  if (!isNum(v)) return DASH;
  const pct = v <= 1 ? v * 100 : v; // success_rate may be a 0..1 fraction or a percentage
  return `${pct.toFixed(pct >= 99.95 || pct === 0 ? 0 : 1)}%`;
}

export function fmtDuration(ms) {
  if (!isNum(ms)) return DASH;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s % 60)} s`;
}

export function fmtBytes(n) {
  if (!isNum(n)) return DASH;
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago", then the date. */
export function fmtAgo(date, now = Date.now()) {
  const diff = Math.round((now - date.getTime()) / 1000);
  const future = diff < 0;
  const s = Math.abs(diff);
  let text;
  if (s < 5) return "just now";
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h`;
  else if (s < 30 * 86400) text = `${Math.floor(s / 86400)} d`;
  else return date.toISOString().slice(0, 10);
  return future ? `in ${text}` : `${text} ago`;
}

export function shortId(id) {
  const s = String(id ?? "");
  return s.length > 12 ? `${s.slice(0, 8)}…` : s;
}
