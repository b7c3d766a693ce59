import type { Resolution } from "./schema";

/** Slots per quote and history bucket: a steady tick rewrites a row per bucket touched, a history read decodes one bucket. */
export const QUOTES_PER_BUCKET = 64;
export const bucketOf = (slot: number) => Math.floor(slot / QUOTES_PER_BUCKET);

/** One stored price point of the id at `slot` (its bucket is implied by the row). */
export type Point = { slot: number; at: number; priceUsd: number; marketCapUsd: number | null; volume24hUsd: number | null };

/**
 * 21 bytes a point, little-endian: slot within the bucket (u8), milliseconds since the period's start
 * (u32: a month fits), price (f64), market cap and volume (f32, NaN for unknown). Market cap and
 * volume keep 7 significant digits, which is finer than any provider agrees with another on.
 */
export const POINT_BYTES = 21;

/** The period a point at `at` (ms) is stored in: raw points by the hour, hourly ones by the day, daily ones by the month. */
export function periodStart(resolution: Resolution, at: number) {
  const d = new Date(at);
  if (resolution === "raw") return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours());
  if (resolution === "hour") return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export function encodePoints(start: number, points: Point[]): Uint8Array {
  const out = new Uint8Array(points.length * POINT_BYTES);
  const view = new DataView(out.buffer);
  points.forEach((p, i) => {
    const o = i * POINT_BYTES;
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
  for (let o = 0; o + POINT_BYTES <= bytes.byteLength; o += POINT_BYTES) {
    out.push({
      slot: bucket * QUOTES_PER_BUCKET + view.getUint8(o),
      at: start + view.getUint32(o + 1, true),
      priceUsd: view.getFloat64(o + 5, true),
      marketCapUsd: nullable(view.getFloat32(o + 13, true)),
      volume24hUsd: nullable(view.getFloat32(o + 17, true)),
    });
  }
  return out;
}

/** D1 hands BLOBs back as arrays of numbers; bound ones go in as bytes. */
export const blobBytes = (v: unknown) =>
  v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v) : Uint8Array.from(v as number[]);

/** Adds points to a period's points: one point per slot and time, the later write winning; kept in time order. */
export function mergePoints(existing: Point[], added: Point[]): Point[] {
  const byKey = new Map<string, Point>();
  for (const p of existing) byKey.set(`${p.slot}:${p.at}`, p);
  for (const p of added) byKey.set(`${p.slot}:${p.at}`, p);
  return [...byKey.values()].sort((a, b) => a.at - b.at || a.slot - b.slot);
}
