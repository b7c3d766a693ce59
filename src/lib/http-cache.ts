import type { AppContext } from "./router";

/**
 * JSON with a strong validator: the ETag hashes what the client would see apart from the
 * per-request metadata (request id, latency), so an unchanged page answers 304 with no body.
 */
export async function cachedJson(c: AppContext, body: { data: unknown; metadata: Record<string, unknown> }, maxAge = 15) {
  const { request_id: _r, api_latency_ms: _l, ...stable } = body.metadata;
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(JSON.stringify([body.data, stable])));
  const etag = `"${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")}"`;
  const headers = { etag, "cache-control": `public, max-age=${maxAge}, stale-while-revalidate=${maxAge * 4}` };
  const match = c.req.header("if-none-match");
  if (match?.split(",").some((t) => t.trim().replace(/^W\//, "") === etag)) {
    return c.body(null, 304, headers);
  }
  return c.json(body, 200, headers);
}
