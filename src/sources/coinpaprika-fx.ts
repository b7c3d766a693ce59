import { coinpaprikaRequest } from "./coinpaprika";
import { badPrice, CURRENCY_CODE, type FxNormalised, type FxSourceAdapter, fxRejection, isObject } from "./fx";
import { PayloadError } from "./source";

/**
 * CoinPaprika's BTC ticker priced in several quote currencies: `{quotes: {USD: {price}, EUR: {price}}}`,
 * so a currency's usd_rate is quotes[CODE].price / quotes[USD].price. The ticker says nothing of
 * what a currency is (name, type): CoinGecko's rates or the built-in list name it.
 */
export const coinpaprikaFx: FxSourceAdapter = {
  name: "coinpaprika",
  request(config) {
    return coinpaprikaRequest(config, `/tickers/btc-bitcoin?quotes=${config.COINPAPRIKA_FX_QUOTES.join(",")}`);
  },
  normalise(body): FxNormalised {
    const quotes = isObject(body) ? body.quotes : undefined;
    if (!isObject(quotes)) throw new PayloadError("coinpaprika /tickers/btc-bitcoin did not return an object with `quotes`");
    const priceOf = (q: unknown) => (isObject(q) ? q.price : undefined);
    const usd = priceOf(quotes.USD);
    const usdProblem = badPrice(usd);
    if (usdProblem) throw new PayloadError(`coinpaprika /tickers/btc-bitcoin: USD ${usdProblem}; no rate can be derived`);
    const out: FxNormalised = { rates: [], rejected: [] };
    for (const [key, quote] of Object.entries(quotes)) {
      const code = key.toLowerCase();
      const problem = CURRENCY_CODE.test(code) ? badPrice(priceOf(quote)) : "code must be 2 to 10 letters or digits";
      if (problem) out.rejected.push(fxRejection("coinpaprika", code.slice(0, 20), problem));
      else
        out.rates.push({
          code,
          usdRate: code === "usd" ? 1 : (priceOf(quote) as number) / (usd as number),
          name: null,
          unit: null,
          type: null,
        });
    }
    return out;
  },
};
