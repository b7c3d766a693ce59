import { gzipSync } from "node:zlib";

/**
 * Gzip for the archived upstream bodies (R2 bills storage by the GB-month), at level 1: they are
 * written every tick and read rarely, and level 1 gzips a CoinGecko page in about three quarters of
 * the CPU of the default level (2.4 against 3.1 ms, profiled) for about a fifth more bytes (193 KB of
 * JSON: 49 KB against 41 KB).
 */
export const gzip = (bytes: Uint8Array) => new Uint8Array(gzipSync(bytes, { level: 1 }));

/** An archived body as it was received: gunzipped when it was stored compressed (archives of earlier builds were not). */
export async function readArchived(bucket: R2Bucket, key: string): Promise<ReadableStream<Uint8Array> | null> {
  const object = await bucket.get(key);
  return object ? unpacked(object) : null;
}

/** An R2 object's body as it was before `gzip`, when it was stored compressed. */
export const unpacked = (object: R2ObjectBody): ReadableStream<Uint8Array> =>
  object.httpMetadata?.contentEncoding === "gzip" ? object.body.pipeThrough(new DecompressionStream("gzip")) : object.body;
