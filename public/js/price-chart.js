// Price-history chart with uPlot (vendored, loaded only when an asset page needs it).
// One line per source. Timestamps from different sources are merged onto one x axis; a source
// with no point at another's time is joined across it (uPlot skips `undefined`), but where a
// source goes quiet for much longer than its own spacing around that stretch, its line breaks
// (`null` is a gap in uPlot).
import { fmtPrice } from "./format.js";

let uplotReady = null;

function loadUplot() {
  uplotReady ??= new Promise((resolve, reject) => {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/vendor/uplot/uPlot.min.css";
    document.head.append(css);
    const js = document.createElement("script");
    js.src = "/vendor/uplot/uPlot.iife.min.js";
    js.onload = () => resolve(window.uPlot);
    js.onerror = () => {
      uplotReady = null;
      reject(new Error("Could not load the chart library."));
    };
    document.head.append(js);
  });
  return uplotReady;
}

/** A step this many times longer than the steps on both sides of it is a gap, not a slow stretch. */
const GAP_FACTOR = 6;

/** [from, to] pairs (seconds) of consecutive times far longer apart than their neighbours. */
export function findGaps(times) {
  const gaps = [];
  for (let i = 0; i + 1 < times.length; i++) {
    const step = times[i + 1] - times[i];
    const around = [times[i] - times[i - 1], times[i + 2] - times[i + 1]].filter(Number.isFinite);
    if (around.length && step > GAP_FACTOR * Math.max(...around)) gaps.push([times[i], times[i + 1]]);
  }
  return gaps;
}

/**
 * Group history points into uPlot's aligned data: [xs, ys(source1), ys(source2), …], with
 * `undefined` where a source has no point at that time and `null` inside its gaps (a time is
 * added in the middle of a gap no other source has a point in).
 */
export function alignHistory(points) {
  const bySource = new Map();
  for (const p of points) {
    const t = Date.parse(p.at);
    // `price` is in the currency the history was asked in (vs_currency); `price_usd` where there is none.
    const price = typeof p.price === "number" ? p.price : p.price_usd;
    if (!Number.isFinite(t) || typeof price !== "number") continue;
    if (!bySource.has(p.source)) bySource.set(p.source, new Map());
    bySource.get(p.source).set(Math.round(t / 1000), price);
  }
  const sources = [...bySource.keys()].sort();
  const gaps = new Map(sources.map((s) => [s, findGaps([...bySource.get(s).keys()].sort((a, b) => a - b))]));
  const times = new Set(sources.flatMap((s) => [...bySource.get(s).keys()]));
  for (const [from, to] of [...gaps.values()].flat()) {
    if (![...times].some((x) => x > from && x < to)) times.add(Math.round((from + to) / 2));
  }
  const xs = [...times].sort((a, b) => a - b);
  const ys = sources.map((s) => {
    const own = bySource.get(s);
    const inGap = (x) => gaps.get(s).some(([from, to]) => x > from && x < to);
    return xs.map((x) => (own.has(x) ? own.get(x) : inGap(x) ? null : undefined));
  });
  const counts = sources.map((s) => bySource.get(s).size);
  return { sources, xs, ys, counts, gaps: sources.map((s) => gaps.get(s).length) };
}

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

const FALLBACK_COLORS = ["#6e40c9", "#bf3989", "#0a7e8c", "#7d4e00"];

/**
 * Y tick labels as compact amounts ($90.7k, €1.25M, $0.0123; `style` gives the currency's sign or
 * unit) with as many decimals as the tick step needs, and more until no two labels read the same.
 */
export function priceTicks(splits, incr, style = { prefix: "$", suffix: "" }) {
  const finite = splits.filter((v) => v != null && Number.isFinite(v));
  if (!finite.length) return splits.map(() => "");
  const mag = Math.max(...finite.map(Math.abs));
  const [unit, suffix] = mag >= 1e6 ? [1e6, "M"] : mag >= 1e4 ? [1e3, "k"] : [1, ""];
  const step = incr > 0 ? incr / unit : mag / unit;
  let decimals = step > 0 ? Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)) : 2;
  for (; ; decimals++) {
    const fmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    const labels = splits.map((v) =>
      v == null || !Number.isFinite(v) ? "" : `${v < 0 ? "-" : ""}${style.prefix}${fmt.format(Math.abs(v) / unit)}${suffix}${style.suffix}`,
    );
    const shown = labels.filter(Boolean);
    if (new Set(shown).size === shown.length || decimals >= 20) return labels;
  }
}

/** Indices of points with no line on either side (between gaps, or alone), which need a dot. */
function isolated(ys) {
  const defined = [];
  for (let i = 0; i < ys.length; i++) if (ys[i] !== undefined) defined.push(i);
  return defined.filter((i, k) => ys[i] !== null && ys[defined[k - 1]] == null && ys[defined[k + 1]] == null);
}

let measure = null;
/** Width in CSS pixels of the widest label in `font`. */
function widest(labels, font) {
  measure ??= document.createElement("canvas").getContext("2d");
  measure.font = font;
  return Math.max(0, ...labels.map((v) => measure.measureText(v ?? "").width));
}

const HOUR = 3600;
const DAY = 24 * HOUR;
const MINUTES = [1, 2, 5, 10, 15, 30].map((m) => m * 60);
const HOURS = [1, 2, 3, 6, 12].map((h) => h * HOUR);
const DAYS = [1, 2, 7, 14, 30, 91, 182, 365, 730, 1826].map((d) => d * DAY);
const TIME_STEPS = [...MINUTES, ...HOURS, ...DAYS];

/** Draws the chart into `box`, amounts written with `money` (the dashboard's currency); returns a destroy function. */
export async function drawPriceChart(box, aligned, money = { format: fmtPrice, style: { prefix: "$", suffix: "" } }) {
  const uPlot = await loadUplot();
  const muted = cssVar("--muted", "#57606a");
  const grid = cssVar("--grid", "rgba(0,0,0,.1)");
  const text = cssVar("--text", "#1f2328");
  const font = `12px ${cssVar("--font", "system-ui")}`;
  const axis = {
    stroke: muted,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    font,
  };
  const { xs } = aligned;
  const few = xs.length < 40;
  const height = () => (window.innerWidth < 640 ? 240 : 320);
  const lone = aligned.ys.map(isolated);

  const opts = {
    width: Math.max(280, box.clientWidth - 2),
    height: height(),
    cursor: { points: { size: 7 } },
    legend: { live: true },
    scales: {
      // One moment has no span: show the hour either side of it. (uPlot would add a day counted in
      // its `ms` unit, 86,400,000 s with second timestamps: an axis years long.)
      x: { time: true, range: xs.length === 1 ? () => [xs[0] - HOUR, xs[0] + HOUR] : (_u, min, max) => [min, max] },
      // One price (or a flat line): ±1% around it, so the labels say something.
      y: { range: (_u, min, max) => (min === max ? [min * 0.99, max * 1.01] : uPlot.rangeNum(min, max, 0.1, true)) },
    },
    axes: [
      // Ticks a minute apart at least: points come minutes apart, and uPlot's second ticks
      // (":15", ":30") crowd a short span with labels that run into each other.
      { ...axis, stroke: muted, space: 60, incrs: TIME_STEPS },
      {
        ...axis,
        values: (_u, splits, _i, _space, incr) => priceTicks(splits, incr, money.style),
        // Wide enough for the longest label, measured in the axis font.
        size: (_u, values) => (values ? Math.ceil(widest(values, font)) + 20 : 60),
      },
    ],
    series: [
      { label: "Time", value: (_u, ts) => (ts == null ? "—" : `${new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 16)} UTC`) },
      ...aligned.sources.map((source, i) => ({
        label: source,
        stroke: cssVar(`--src-${source}`, FALLBACK_COLORS[i % FALLBACK_COLORS.length]),
        width: 2,
        spanGaps: false,
        points: { show: few, size: 5, filter: (_u, _si, show) => (show || !lone[i].length ? null : lone[i]) },
        value: (_u, v) => money.format(v),
      })),
    ],
  };
  const chart = new uPlot(opts, [xs, ...aligned.ys], box);
  chart.root.style.color = text;
  box.dataset.seriesCount = String(aligned.sources.length);

  const resize = () => chart.setSize({ width: Math.max(280, box.clientWidth - 2), height: height() });
  const ro = new ResizeObserver(resize);
  ro.observe(box);
  return () => {
    ro.disconnect();
    chart.destroy();
  };
}
