import type { Config, HttpSource } from "../config";
import type { Rejection } from "./source-quote";

export const CURRENCY_TYPES = ["fiat", "crypto", "commodity"] as const;
export type CurrencyType = (typeof CURRENCY_TYPES)[number];

/** A currency code as served: lower case letters and digits (CoinGecko's `bits`, `sats` and `xau` included). */
export const CURRENCY_CODE = /^[a-z0-9]{2,10}$/;

/** One source's rate for one currency: units of it per 1 USD, with what the source says the currency is. */
export type FxRate = { code: string; usdRate: number; name: string | null; unit: string | null; type: CurrencyType | null };
export type FxNormalised = { rates: FxRate[]; rejected: Rejection[] };

/** The FX endpoint of an HTTP source: reference data fetched with its runs, never counted in their records. */
export interface FxSourceAdapter {
  name: HttpSource;
  request(config: Config): { url: string; headers: Record<string, string> };
  /** Turns a parsed body into validated rates; throws PayloadError when the body is not the expected shape. */
  normalise(body: unknown): FxNormalised;
}

const describe = (v: unknown) => JSON.stringify(v)?.slice(0, 40) ?? String(v);

/** Why a price of a currency cannot make a rate (null when it can): it must be a finite number > 0. */
export function badPrice(v: unknown): string | null {
  if (v === undefined || v === null) return "rate is missing";
  if (typeof v !== "number" || !Number.isFinite(v)) return `rate must be a finite number, got ${describe(v)}`;
  if (v <= 0) return `rate must be > 0, got ${describe(v)}`;
  return null;
}

export const fxRejection = (source: HttpSource, code: string, reason: string): Rejection => ({
  recordKey: `fx:${code}`,
  row: null,
  sourceId: code,
  reason: `${source} FX ${code}: ${reason}`,
});

export const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
