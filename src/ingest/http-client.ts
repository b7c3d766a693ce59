import { now, sleep } from "../lib/clock";
import { log } from "../lib/log";

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
  ) {
    super(message);
  }
}

export type FetchPolicy = {
  timeoutMs: number;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Called before every attempt: the per-source request budget. */
  beforeAttempt: () => Promise<void>;
  /** Called when the upstream names a time before which it takes no calls. */
  onRateLimited: (untilMs: number) => Promise<void>;
};

/**
 * The one retry policy of every upstream call (quote pages, FX rates, contract lists): 4 tries,
 * exponential backoff from 0.5 s to 8 s with jitter, paced by the source's request budget.
 */
export const upstreamPolicy = (timeoutMs: number, pacer: Pick<FetchPolicy, "beforeAttempt" | "onRateLimited">): FetchPolicy => ({
  timeoutMs,
  maxAttempts: 4,
  baseDelayMs: 500,
  maxDelayMs: 8_000,
  beforeAttempt: pacer.beforeAttempt,
  onRateLimited: pacer.onRateLimited,
});

export type UpstreamBody = { bytes: Uint8Array; contentType: string; status: number; attempts: number };

/**
 * The one HTTP client for upstreams: a timeout on every attempt; 429 waits for Retry-After or
 * x-ratelimit-reset (CoinGecko sends the latter, as an HTTP date or epoch seconds), else
 * exponential backoff with full jitter; 5xx, network errors and timeouts are retried up to
 * maxAttempts; other 4xx fail at once.
 */
export async function fetchUpstream(
  url: string,
  headers: Record<string, string>,
  policy: FetchPolicy,
  fetchImpl: typeof fetch = fetch,
): Promise<UpstreamBody> {
  let lastError = "";
  for (let attempt = 1; attempt <= policy.maxAttempts; attempt++) {
    await policy.beforeAttempt();
    let waitMs: number | null = null;
    try {
      const res = await fetchImpl(url, { headers, signal: AbortSignal.timeout(policy.timeoutMs) });
      if (res.ok) {
        const bytes = new Uint8Array(await res.arrayBuffer());
        return { bytes, contentType: res.headers.get("content-type") ?? "application/json", status: res.status, attempts: attempt };
      }
      await res.body?.cancel();
      lastError = `HTTP ${res.status} from ${new URL(url).pathname}`;
      if (res.status === 429) {
        const until = rateLimitResetAt(res.headers);
        if (until !== null) {
          waitMs = Math.max(0, until - now());
          await policy.onRateLimited(until);
        }
      } else if (res.status < 500) {
        throw new UpstreamError(lastError, false);
      }
    } catch (e) {
      if (e instanceof UpstreamError) throw e;
      const err = e as Error;
      lastError = err.name === "TimeoutError" ? `timed out after ${policy.timeoutMs} ms` : `network error: ${err.message}`;
    }
    if (attempt === policy.maxAttempts) break;
    const delay = waitMs ?? backoff(attempt, policy.baseDelayMs, policy.maxDelayMs);
    log("warn", "upstream_retry", { url: redact(url), attempt, error: lastError, wait_ms: Math.round(delay) });
    await sleep(delay);
  }
  throw new UpstreamError(`${lastError} (gave up after ${policy.maxAttempts} attempts)`, true);
}

/** Full-jitter exponential backoff: uniform in [base, min(max, base * 2^(attempt-1))]. */
export function backoff(attempt: number, baseMs: number, maxMs: number) {
  const cap = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return baseMs + Math.random() * Math.max(0, cap - baseMs);
}

/** When the upstream will take calls again, in epoch ms, from Retry-After or x-ratelimit-reset; null if not said. */
export function rateLimitResetAt(h: Headers): number | null {
  const retryAfter = h.get("retry-after");
  if (retryAfter) {
    const secs = Number(retryAfter);
    if (Number.isFinite(secs)) return now() + secs * 1000;
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return at;
  }
  const reset = h.get("x-ratelimit-reset");
  if (reset) {
    const n = Number(reset);
    if (Number.isFinite(n)) {
      // Epoch seconds, epoch ms, or seconds from now (small numbers).
      if (n > 1e12) return n;
      if (n > 1e9) return n * 1000;
      return now() + n * 1000;
    }
    const at = Date.parse(reset);
    // An HTTP date has one-second resolution: the reset happens within the second it names.
    if (Number.isFinite(at)) return at + 1000;
  }
  return null;
}

const redact = (url: string) => url.replace(/([?&](?:x_cg_[a-z]+_api_key|key|api_key)=)[^&]+/gi, "$1***");
