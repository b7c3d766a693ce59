import { weightedAverage } from "../lib/averages";
import type { Resolution } from "./schema";

/** Slots per quote and history bucket: a steady tick rewrites a row per bucket touched, a history read decodes one bucket. */
export const QUOTES_PER_BUCKET = 64;
export const bucketOf = (slot: number) => Math.floor(slot / QUOTES_PER_BUCKET);

/**
 * One stored price point of the id at `slot` (its bucket is implied by the row). A rolled-up point
 * is the mean of `weight` raw points (absent: 1), so a late point merges into it exactly.
 */
export type Point = {
  slot: number;
  at: number;
  priceUsd: number;
  marketCapUsd: number | null;
  volume24hUsd: number | null;
  weight?: number;
};

/**
 * 21 bytes a point, little-endian: slot within the bucket (u8), milliseconds since the period's start
 * (u32: a month fits), price (f64), market cap and volume (f32, NaN for unknown). Market cap and
 * volume keep 7 significant digits, which is finer than any provider agrees with another on.
 */
export const POINT_BYTES = 21;

/**
 * Rolled-up rows (hourly, daily) add each point's weight (u32) after its 21 bytes, behind one tag
 * byte: a plain row starts with a slot (< 64), so rows written before weights decode as weight 1.
 */
const WEIGHTED_TAG = 0x80;
const WEIGHTED_BYTES = POINT_BYTES + 4;

/** The period a point at `at` (ms) is stored in: raw points by the hour, hourly ones by the day, daily ones by the month. */
export function periodStart(resolution: Resolution, at: number) {
  const d = new Date(at);
  if (resolution === "raw") return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours());
  if (resolution === "hour") return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Raw rows hold single points; rolled-up rows carry their points' weights. */
export const isWeighted = (resolution: Resolution) => resolution !== "raw";

export function encodePoints(start: number, points: Point[], weighted = false): Uint8Array {
  const size = weighted ? WEIGHTED_BYTES : POINT_BYTES;
  const head = weighted ? 1 : 0;
  const out = new Uint8Array(head + points.length * size);
  const view = new DataView(out.buffer);
  if (weighted) out[0] = WEIGHTED_TAG;
  points.forEach((p, i) => {
    const o = head + i * size;
    if (weighted) view.setUint32(o + POINT_BYTES, p.weight ?? 1, true);
    view.setUint8(o, p.slot % QUOTES_PER_BUCKET);
    view.setUint32(o + 1, p.at - start, true);
    view.setFloat64(o + 5, p.priceUsd, true);
    view.setFloat32(o + 13, p.marketCapUsd ?? Number.NaN, true);
    view.setFloat32(o + 17, p.volume24hUsd ?? Number.NaN, true);
  });
  return out;
}

export function decodePoints(start: number, bucket: number, bytes: Uint8Array): Point[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Point[] = [];
  const nullable = (x: number) => (Number.isNaN(x) ? null : x);
  const weighted = bytes.byteLength > 0 && bytes[0] === WEIGHTED_TAG;
  const size = weighted ? WEIGHTED_BYTES : POINT_BYTES;
  for (let o = weighted ? 1 : 0; o + size <= bytes.byteLength; o += size) {
    out.push({
      slot: bucket * QUOTES_PER_BUCKET + view.getUint8(o),
      at: start + view.getUint32(o + 1, true),
      priceUsd: view.getFloat64(o + 5, true),
      marketCapUsd: nullable(view.getFloat32(o + 13, true)),
      volume24hUsd: nullable(view.getFloat32(o + 17, true)),
      weight: weighted ? view.getUint32(o + POINT_BYTES, true) : 1,
    });
  }
  return out;
}

/** D1 hands BLOBs back as arrays of numbers; bound ones go in as bytes. */
export const blobBytes = (v: unknown) =>
  v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v) : Uint8Array.from(v as number[]);

/**
 * Adds points to a period's points, one point per slot and time, kept in time order. A raw point is
 * a quote: the same one stored again replaces it. Rolled-up points at the same slot and time are
 * means of different raw points (a late point rolled up after its hour was): they combine, weighted.
 */
export function mergePoints(existing: Point[], added: Point[], combine = false): Point[] {
  const byKey = new Map<string, Point>();
  for (const p of existing) byKey.set(`${p.slot}:${p.at}`, p);
  for (const p of added) {
    const k = `${p.slot}:${p.at}`;
    const old = byKey.get(k);
    byKey.set(k, combine && old ? weightedMean([old, p], p.at) : p);
  }
  return [...byKey.values()].sort((a, b) => a.at - b.at || a.slot - b.slot);
}

/**
 * The mean of points of one slot as one point at `at`, weighing each by how many raw points it
 * stands for; a field unknown in some points is the mean of the points that know it.
 */
export function weightedMean(points: Point[], at: number): Point {
  const mean = (pick: (p: Point) => number | null) => weightedAverage(points, pick, (p) => p.weight ?? 1);
  return {
    slot: points[0].slot,
    at,
    priceUsd: mean((p) => p.priceUsd)!,
    marketCapUsd: mean((p) => p.marketCapUsd),
    volume24hUsd: mean((p) => p.volume24hUsd),
    weight: points.reduce((w, p) => w + (p.weight ?? 1), 0),
  };
}
