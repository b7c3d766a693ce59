import { createRoute, z } from "@hono/zod-openapi";
import { errorResponses, jsonEnvelope } from "../../lib/openapi";
import { CurrencySchema } from "../../schemas/currencies";

export const list = createRoute({
  method: "get",
  path: "/currencies",
  tags: ["Data"],
  summary: "Every currency vs_currency accepts, with its latest rate",
  description:
    "Rates come from CoinGecko's /exchange_rates and CoinPaprika's BTC ticker, fetched with each run of those sources. A currency's `usd_rate` is the median of the sources whose rate was fetched no more than FX_STALE_AFTER_MINUTES before the freshest one; `sources` names them. Fiat first, then crypto and commodities, each by code.",
  responses: {
    200: jsonEnvelope(z.array(CurrencySchema), "The currencies"),
    304: { description: "Not modified (If-None-Match)" },
    ...errorResponses(),
  },
});

export type ListRoute = typeof list;
