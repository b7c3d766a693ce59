/** Which sources' latest quotes make an asset's consensus price. */
export type ConsensusRules = { staleAfterMinutes: number; outlierPct: number };
export const DEFAULT_CONSENSUS: ConsensusRules = { staleAfterMinutes: 60, outlierPct: 10 };

import type { Source } from "../config";
import { median } from "../lib/averages";

export type Exclusion = { source: Source; reason: "stale" | "outlier" };
type Priced = { source: string; priceUsd: number; sourceUpdatedAt: string };

/**
 * The consensus over one latest quote per source. A quote older than the asset's freshest by more
 * than `staleAfterMinutes` is left out: measured against that freshest quote, not the clock, so
 * recorded data and a source-wide outage still give a consensus (/health watches the clock). With
 * three or more fresh quotes, the one furthest from the median of the others is left out while it
 * is more than `outlierPct` away, one at a time, so one broken source cannot drag the price.
 */
export function consensusOf<Q extends Priced>(latest: Q[], rules: ConsensusRules) {
  const excluded: Exclusion[] = [];
  const freshest = latest.reduce((m, q) => Math.max(m, Date.parse(q.sourceUpdatedAt)), Number.NEGATIVE_INFINITY);
  let used = latest.filter((q) => {
    const stale = freshest - Date.parse(q.sourceUpdatedAt) > rules.staleAfterMinutes * 60_000;
    if (stale) excluded.push({ source: q.source as Source, reason: "stale" });
    return !stale;
  });
  while (used.length >= 3) {
    const away = used.map((q) => {
      const others = median(used.filter((o) => o !== q).map((o) => o.priceUsd))!;
      return { q, pct: (Math.abs(q.priceUsd - others) / others) * 100 };
    });
    const worst = away.reduce((a, b) => (b.pct > a.pct ? b : a));
    if (worst.pct <= rules.outlierPct) break;
    excluded.push({ source: worst.q.source as Source, reason: "outlier" });
    used = used.filter((q) => q !== worst.q);
  }
  const prices = used.map((q) => q.priceUsd);
  const price = median(prices);
  return {
    price_usd: price,
    spread_pct: price ? ((Math.max(...prices) - Math.min(...prices)) / price) * 100 : null,
    sources: used.length,
    excluded,
  };
}
