import type { HttpSource } from "../config";
import { coingecko } from "./coingecko";
import { coinpaprika } from "./coinpaprika";
import type { HttpSourceAdapter } from "./source";

export const httpSources: Record<HttpSource, HttpSourceAdapter> = { coingecko, coinpaprika };
