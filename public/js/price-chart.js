// Price-history chart with uPlot (vendored, loaded only when an asset page needs it).
// One line per source; timestamps from different sources are merged onto one x axis
// and gaps are spanned so each source draws a continuous line.
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

/** Group history points into uPlot's aligned data: [xs, ys(source1), ys(source2), …]. */
export function alignHistory(points) {
  const bySource = new Map();
  for (const p of points) {
    const t = Date.parse(p.at);
    if (!Number.isFinite(t) || typeof p.price_usd !== "number") continue;
    if (!bySource.has(p.source)) bySource.set(p.source, new Map());
    bySource.get(p.source).set(Math.round(t / 1000), p.price_usd);
  }
  const sources = [...bySource.keys()].sort();
  const xs = [...new Set(sources.flatMap((s) => [...bySource.get(s).keys()]))].sort((a, b) => a - b);
  const ys = sources.map((s) => xs.map((x) => bySource.get(s).get(x) ?? null));
  return { sources, xs, ys };
}

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

const FALLBACK_COLORS = ["#6e40c9", "#bf3989", "#0a7e8c", "#7d4e00"];

function axisValue(v) {
  if (v == null) return "";
  const abs = Math.abs(v);
  if (abs >= 1e6) return `$${(v / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `$${(v / 1e3).toFixed(abs >= 1e5 ? 0 : 1)}k`;
  return fmtPrice(v);
}

/** Draws the chart into `box`; returns a destroy function. */
export async function drawPriceChart(box, aligned) {
  const uPlot = await loadUplot();
  const muted = cssVar("--muted", "#57606a");
  const grid = cssVar("--grid", "rgba(0,0,0,.1)");
  const text = cssVar("--text", "#1f2328");
  const axis = {
    stroke: muted,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    font: `12px ${cssVar("--font", "system-ui")}`,
  };
  const few = aligned.xs.length < 40;
  const height = () => (window.innerWidth < 640 ? 240 : 320);

  const opts = {
    width: Math.max(280, box.clientWidth - 2),
    height: height(),
    cursor: { points: { size: 7 } },
    legend: { live: true },
    scales: { x: { time: true } },
    axes: [
      { ...axis, stroke: muted },
      { ...axis, size: 72, values: (_u, vals) => vals.map(axisValue) },
    ],
    series: [
      { label: "Time", value: (_u, ts) => (ts == null ? "—" : `${new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 16)} UTC`) },
      ...aligned.sources.map((source, i) => ({
        label: source,
        stroke: cssVar(`--src-${source}`, FALLBACK_COLORS[i % FALLBACK_COLORS.length]),
        width: 2,
        spanGaps: true,
        points: { show: few, size: 5 },
        value: (_u, v) => fmtPrice(v),
      })),
    ],
  };
  const chart = new uPlot(opts, [aligned.xs, ...aligned.ys], box);
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
