import type { Config } from "../config";
import { type HttpSourceAdapter, PayloadError } from "./source";
import { derivedSourceId, type Normalised, toIsoTime, validateQuote } from "./source-quote";

type MarketRecord = Record<string, unknown>;

/** The key goes in x-cg-demo-api-key, or x-cg-pro-api-key on the Pro plan. */
/** A CoinGecko call: `path` (with its query) under the configured base URL, with the plan's key header. */
export function coingeckoRequest(config: Config, path: string) {
  const headers: Record<string, string> = { accept: "application/json" };
  if (config.COINGECKO_API_KEY) {
    headers[config.COINGECKO_PLAN === "pro" ? "x-cg-pro-api-key" : "x-cg-demo-api-key"] = config.COINGECKO_API_KEY;
  }
  return { url: `${config.COINGECKO_BASE_URL.replace(/\/$/, "")}${path}`, headers };
}

export const coingecko: HttpSourceAdapter = {
  name: "coingecko",
  perPage: 250, // the API's maximum; the last page is short or empty
  request(config, page) {
    const query = new URLSearchParams({
      vs_currency: "usd",
      order: "market_cap_desc",
      per_page: "250",
      page: String(page),
      price_change_percentage: "24h",
    });
    return coingeckoRequest(config, `/coins/markets?${query}`);
  },
  requestsPerMinute: (config) => config.COINGECKO_REQUESTS_PER_MINUTE,
  normalise(body, fetchedAt): Normalised {
    if (!Array.isArray(body)) throw new PayloadError("coingecko /coins/markets did not return a JSON array");
    const out: Normalised = { quotes: [], rejected: [] };
    body.forEach((item: MarketRecord, i) => {
      const r = item && typeof item === "object" ? item : {};
      const sourceId = typeof r.id === "string" && r.id ? r.id : derivedSourceId(r.symbol, r.name);
      const result = validateQuote(
        {
          source: "coingecko",
          sourceId,
          symbol: typeof r.symbol === "string" ? r.symbol.toUpperCase() : r.symbol,
          name: r.name,
          rank: r.market_cap_rank,
          priceUsd: r.current_price,
          marketCapUsd: r.market_cap,
          volume24hUsd: r.total_volume,
          change24hPct: r.price_change_percentage_24h,
          circulatingSupply: r.circulating_supply,
          totalSupply: r.total_supply,
          maxSupply: r.max_supply,
          sourceUpdatedAt: toIsoTime(r.last_updated, fetchedAt),
        },
        { recordKey: sourceId || `#${i}`, row: null, sourceId: sourceId || null },
      );
      if ("quote" in result) out.quotes.push(result.quote);
      else out.rejected.push(result.rejection);
    });
    return out;
  },
};
