import type { HttpSource } from "../config";
import { coingecko } from "./coingecko";
import { coingeckoFx } from "./coingecko-fx";
import { coinpaprika } from "./coinpaprika";
import { coinpaprikaFx } from "./coinpaprika-fx";
import type { FxSourceAdapter } from "./fx";
import type { HttpSourceAdapter } from "./source";

export const httpSources: Record<HttpSource, HttpSourceAdapter> = { coingecko, coinpaprika };
export const fxSources: Record<HttpSource, FxSourceAdapter> = { coingecko: coingeckoFx, coinpaprika: coinpaprikaFx };
