import { median } from "./averages";
import { groupBy } from "./group-by";

/** A stored price point of one source, as history returns it; `price` is `price_usd` in the request's currency. */
export type SeriesPoint = {
  source: string;
  at: string;
  price_usd: number;
  market_cap_usd: number | null;
  volume_24h_usd: number | null;
  price: number;
  resolution: "raw" | "hour" | "day";
};

export const INTERVALS = { "5m": 300_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000 } as const;
export type Interval = keyof typeof INTERVALS;

const RESOLUTION_ORDER = ["raw", "hour", "day"] as const;
const coarser = (a: SeriesPoint["resolution"], b: SeriesPoint["resolution"]) =>
  RESOLUTION_ORDER.indexOf(a) >= RESOLUTION_ORDER.indexOf(b) ? a : b;
const startOf = (at: string, ms: number) => Math.floor(Date.parse(at) / ms) * ms;

export type BucketPoint = SeriesPoint & { min_usd: number; max_usd: number; min: number; max: number };

/**
 * One point per source and bucket of `interval`, `at` the bucket's start: the bucket's last price,
 * market cap and volume, with its lowest and highest price (in USD and in the request's currency,
 * each point converted at its own rate). A bucket with no point is missing, never invented.
 * `points` must be oldest first.
 */
export function bucketed(points: SeriesPoint[], interval: Interval): BucketPoint[] {
  const ms = INTERVALS[interval];
  const out = new Map<string, BucketPoint>();
  for (const p of points) {
    const t = startOf(p.at, ms);
    const key = `${p.source}@${t}`;
    const b = out.get(key);
    if (!b) {
      out.set(key, { ...p, at: new Date(t).toISOString(), min_usd: p.price_usd, max_usd: p.price_usd, min: p.price, max: p.price });
      continue;
    }
    b.price_usd = p.price_usd;
    b.price = p.price;
    b.market_cap_usd = p.market_cap_usd;
    b.volume_24h_usd = p.volume_24h_usd;
    b.resolution = coarser(b.resolution, p.resolution);
    b.min_usd = Math.min(b.min_usd, p.price_usd);
    b.max_usd = Math.max(b.max_usd, p.price_usd);
    b.min = Math.min(b.min, p.price);
    b.max = Math.max(b.max, p.price);
  }
  return [...out.values()].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.source < b.source ? -1 : 1));
}

const medianOf = (xs: (number | null)[]) => median(xs.filter((x): x is number => x !== null));

/** The consensus series: per bucket of `interval`, the median over the sources of each bucketed field. */
export function consensusSeries(points: SeriesPoint[], interval: Interval): BucketPoint[] {
  return [...groupBy(bucketed(points, interval), (b) => b.at)].map(([at, bs]) => ({
    source: "consensus",
    at,
    price_usd: medianOf(bs.map((b) => b.price_usd))!,
    market_cap_usd: medianOf(bs.map((b) => b.market_cap_usd)),
    volume_24h_usd: medianOf(bs.map((b) => b.volume_24h_usd)),
    price: medianOf(bs.map((b) => b.price))!,
    resolution: bs.map((b) => b.resolution).reduce(coarser),
    min_usd: medianOf(bs.map((b) => b.min_usd))!,
    max_usd: medianOf(bs.map((b) => b.max_usd))!,
    min: medianOf(bs.map((b) => b.min))!,
    max: medianOf(bs.map((b) => b.max))!,
  }));
}

export type Candle = { t: string; open: number; high: number; low: number; close: number; volume_24h_usd: number | null; points: number };

/**
 * Candles of `interval` over a series (oldest first): open, high, low and close of its prices (in the
 * request's currency, each point at its own rate), the last volume (USD), and how many points made each.
 */
export function candles(series: { at: string; price: number; volume_24h_usd: number | null }[], interval: Interval): Candle[] {
  const ms = INTERVALS[interval];
  const out = new Map<number, Candle>();
  for (const p of series) {
    const t = startOf(p.at, ms);
    const c = out.get(t);
    if (!c) {
      out.set(t, {
        t: new Date(t).toISOString(),
        open: p.price,
        high: p.price,
        low: p.price,
        close: p.price,
        volume_24h_usd: p.volume_24h_usd,
        points: 1,
      });
      continue;
    }
    c.high = Math.max(c.high, p.price);
    c.low = Math.min(c.low, p.price);
    c.close = p.price;
    c.volume_24h_usd = p.volume_24h_usd;
    c.points++;
  }
  return [...out.values()];
}
