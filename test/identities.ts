import type { Identity } from "../src/unify/evidence";

/** Identities for the pure unification tests: a source's record with price, rank and market cap. */
export const identityOf = (
  source: string,
  sourceId: string,
  symbol: string,
  name: string,
  priceUsd: number | null,
  rank: number | null = null,
  marketCapUsd: number | null = null,
): Identity => ({ source, sourceId, symbol, name, priceUsd, rank, marketCapUsd });

/** A record of one API source: id, symbol, name, price, then rank and market cap. */
const ofSource =
  (source: string) =>
  (id: string, symbol: string, name: string, price: number | null, rank: number | null = null, mcap: number | null = null) =>
    identityOf(source, id, symbol, name, price, rank, mcap);
export const gecko = ofSource("coingecko");
export const paprika = ofSource("coinpaprika");
export const csvRecord = (id: string, symbol: string, name: string, price: number | null, mcap: number | null = null) =>
  identityOf("csv", id, symbol, name, price, null, mcap);
