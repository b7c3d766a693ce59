import { coingeckoRequest } from "./coingecko";
import {
  badPrice,
  CURRENCY_CODE,
  CURRENCY_TYPES,
  type CurrencyType,
  type FxNormalised,
  type FxSourceAdapter,
  fxRejection,
  isObject,
} from "./fx";
import { PayloadError } from "./source";

const text = (v: unknown) => (typeof v === "string" && v.trim() ? v.trim().slice(0, 100) : null);

/**
 * CoinGecko's /exchange_rates: `{rates: {<code>: {name, unit, value, type}}}`, each value in units
 * of that currency per 1 BTC, so a currency's usd_rate is value[code] / value[usd].
 */
export const coingeckoFx: FxSourceAdapter = {
  name: "coingecko",
  request(config) {
    return coingeckoRequest(config, "/exchange_rates");
  },
  normalise(body): FxNormalised {
    const rates = isObject(body) ? body.rates : undefined;
    if (!isObject(rates)) throw new PayloadError("coingecko /exchange_rates did not return an object with `rates`");
    const usd = isObject(rates.usd) ? rates.usd.value : undefined;
    const usdProblem = badPrice(usd);
    if (usdProblem) throw new PayloadError(`coingecko /exchange_rates: usd ${usdProblem}; no rate can be derived`);
    const out: FxNormalised = { rates: [], rejected: [] };
    for (const [key, entry] of Object.entries(rates)) {
      const code = key.toLowerCase();
      if (!CURRENCY_CODE.test(code)) {
        out.rejected.push(fxRejection("coingecko", key.slice(0, 20), "code must be 2 to 10 letters or digits"));
        continue;
      }
      const r = isObject(entry) ? entry : {};
      const problem = badPrice(r.value);
      const type = r.type as CurrencyType;
      if (problem) out.rejected.push(fxRejection("coingecko", code, problem));
      else if (!CURRENCY_TYPES.includes(type))
        out.rejected.push(fxRejection("coingecko", code, `type must be fiat, crypto or commodity, got ${JSON.stringify(r.type)}`));
      else {
        const usdRate = code === "usd" ? 1 : (r.value as number) / (usd as number);
        out.rates.push({ code, usdRate, name: text(r.name), unit: text(r.unit), type });
      }
    }
    return out;
  },
};
