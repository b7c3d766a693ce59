import type { Config } from "../config";
import { type HttpSourceAdapter, PayloadError } from "./source";
import { derivedSourceId, type Normalised, toIsoTime, validateQuote } from "./source-quote";

type Ticker = Record<string, unknown> & { quotes?: { USD?: Record<string, unknown> } };

/** A CoinPaprika call: `path` (with its query) under the configured base URL, with the key header. */
export function coinpaprikaRequest(config: Config, path: string) {
  const headers: Record<string, string> = { accept: "application/json" };
  // CoinPaprika takes the bare key, without "Bearer".
  if (config.COINPAPRIKA_API_KEY) headers.authorization = config.COINPAPRIKA_API_KEY;
  return { url: `${config.COINPAPRIKA_BASE_URL.replace(/\/$/, "")}${path}`, headers };
}

export const coinpaprika: HttpSourceAdapter = {
  name: "coinpaprika",
  perPage: null,
  request(config) {
    return coinpaprikaRequest(config, "/tickers?quotes=USD");
  },
  requestsPerMinute: (config) => config.COINPAPRIKA_REQUESTS_PER_MINUTE,
  normalise(body, fetchedAt): Normalised {
    if (!Array.isArray(body)) throw new PayloadError("coinpaprika /tickers did not return a JSON array");
    const out: Normalised = { quotes: [], rejected: [] };
    body.forEach((item: Ticker, i) => {
      const r = item && typeof item === "object" ? item : ({} as Ticker);
      const usd = (r.quotes && typeof r.quotes === "object" ? r.quotes.USD : undefined) ?? {};
      const sourceId = typeof r.id === "string" && r.id ? r.id : derivedSourceId(r.symbol, r.name);
      const result = validateQuote(
        {
          source: "coinpaprika",
          sourceId,
          symbol: r.symbol,
          name: r.name,
          rank: r.rank,
          priceUsd: usd.price,
          marketCapUsd: usd.market_cap,
          volume24hUsd: usd.volume_24h,
          change24hPct: usd.percent_change_24h,
          circulatingSupply: r.circulating_supply,
          totalSupply: r.total_supply,
          maxSupply: r.max_supply === 0 ? null : r.max_supply, // 0 means "no cap" at CoinPaprika
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
