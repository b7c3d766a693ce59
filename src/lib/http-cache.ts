import { hex } from "./digest";
import type { AppContext } from "./router";

/** Every cached public read carries this tag; a run that changed data purges it. */
export const READ_CACHE_TAG = "coinfuse-data";
/** Seconds a public read may be served from the edge (longer stale while it revalidates). */
const READ_MAX_AGE = 15;

/** The caching headers of every public read, JSON or download. */
export const readCacheHeaders = (maxAge = READ_MAX_AGE) => ({
  "cache-control": `public, max-age=${maxAge}, stale-while-revalidate=${maxAge * 4}`,
  "cache-tag": READ_CACHE_TAG,
});

/**
 * JSON with a strong validator: the ETag hashes what the client would see apart from the
 * per-request metadata (request id, latency), so an unchanged page answers 304 with no body.
 * `Cache-Control` and `Cache-Tag` let Workers Cache serve it from the edge until the next run purges it.
 */
export async function cachedJson<T extends { data: unknown; metadata: { request_id: string; api_latency_ms: number } }>(
  c: AppContext,
  body: T,
  maxAge = READ_MAX_AGE,
) {
  const { request_id: _r, api_latency_ms: _l, ...stable } = body.metadata;
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(JSON.stringify([body.data, stable])));
  const etag = `"${hex(new Uint8Array(digest))}"`;
  const headers = { etag, ...readCacheHeaders(maxAge) };
  const match = c.req.header("if-none-match");
  if (match?.split(",").some((t) => t.trim().replace(/^W\//, "") === etag)) {
    return c.body(null, 304, headers);
  }
  // Typed with the body, so a route's handler is checked against the response schema it declares.
  return c.json<T, 200>(body, 200, headers);
}

type CachePurge = { cache?: { purge?: (o: { tags: string[] }) => Promise<unknown> } };

/**
 * Purges the cached public reads after a run changed data. `wrangler dev` and the test runtime have
 * no purge, so its absence (or failure) is not an error: entries then expire by max-age.
 */
export async function purgeReadCache(ctx: ExecutionContext | undefined) {
  const purge = (ctx as CachePurge | undefined)?.cache?.purge;
  if (typeof purge !== "function") return false;
  try {
    await purge.call((ctx as CachePurge).cache, { tags: [READ_CACHE_TAG] });
    return true;
  } catch {
    return false;
  }
}
