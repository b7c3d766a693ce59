import { z } from "@hono/zod-openapi";
import { SourceSchema } from "../config";
import { CURRENCY_CODE, CURRENCY_TYPES } from "../sources/fx";

export const CurrencySchema = z
  .object({
    code: z.string().openapi({ description: "What `vs_currency` takes (case-insensitive).", example: "eur" }),
    name: z.string().openapi({ example: "Euro" }),
    type: z.enum(CURRENCY_TYPES),
    unit: z.string().nullable().openapi({
      description: "The currency's sign as CoinGecko gives it (`€`, `BTC`, `sats`); null when no source gives one.",
      example: "€",
    }),
    usd_rate: z.number().openapi({
      description:
        "Units of this currency per 1 USD: the median of the sources' rates fetched no more than FX_STALE_AFTER_MINUTES before the freshest one. USD is 1.",
      example: 0.9231,
    }),
    as_of: z
      .string()
      .nullable()
      .openapi({ description: "When the freshest rate behind `usd_rate` was fetched (null for USD before any rate was)." }),
    sources: z.array(SourceSchema).openapi({ description: "The sources whose rates make `usd_rate`." }),
  })
  .openapi("Currency");

/** Every route that prices in a currency takes it the same way: a code from /currencies, case-insensitive. */
export const VsCurrencyQuery = {
  vs_currency: z.string().trim().toLowerCase().regex(CURRENCY_CODE, "must be a currency code from GET /currencies").default("usd").openapi({
    description:
      "The currency of `price`, `market_cap`, `volume_24h` (history and candle prices too): a `code` from GET /currencies, case-insensitive. Unknown codes answer 400. `*_usd` fields stay USD.",
    example: "eur",
  }),
};

/** What a response priced in a currency says of it: the code and the rate used for the latest values. */
export const FxMetadataShape = {
  vs_currency: z.string().openapi({ example: "eur" }),
  fx: z
    .object({
      usd_rate: z.number().openapi({ description: "Units of `vs_currency` per 1 USD used for the latest values (1 for USD)." }),
      as_of: z.string().nullable().openapi({
        description: "When that rate was fetched; for USD (1 by definition), when the freshest rate was, null before any was.",
      }),
    })
    .openapi({ description: "The rate used for the latest values; history and candles convert each point at the rate of its own time." }),
};
