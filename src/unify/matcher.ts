import { idKey, looseNameKey, nameKey, symbolKey } from "./keys";

/** What the matcher knows of an incoming record. */
export type Identity = {
  source: string;
  sourceId: string;
  symbol: string;
  name: string;
  priceUsd: number | null;
  rank: number | null;
  marketCapUsd: number | null;
};

/** A (source, source_id) already mapped to an asset, with its latest figures. */
export type KnownMapping = Identity & { assetUid: string };

export type Rule = "pinned" | "known" | "provider_id" | "name_symbol" | "symbol_corroborated" | "new_asset";
export type Decision = { assetUid: string | null; rule: Rule; ambiguous?: string[] };

/** Same coin, different providers: prices agree within this fraction of the lower one. */
const PRICE_TOLERANCE = 0.1;
/** A name or id match is still refused when prices are this far apart (an old/new contract, a namesake). */
const PRICE_SANITY = 0.5;

const recordKey = (r: { source: string; sourceId: string }) => `${r.source}\u0000${r.sourceId}`;

function priceGap(a: number | null, b: number | null) {
  if (a == null || b == null || a <= 0 || b <= 0) return null;
  return Math.abs(a - b) / Math.min(a, b);
}

function pricesCompatible(a: number | null, b: number | null, tolerance: number) {
  const gap = priceGap(a, b);
  return gap == null || gap <= tolerance;
}

/** Rank or market cap must agree as well as price before two different names are joined on symbol. */
function sizeCorroborates(r: Identity, m: Identity) {
  if (r.rank && m.rank) {
    const lo = Math.min(r.rank, m.rank);
    const hi = Math.max(r.rank, m.rank);
    return hi - lo <= 25 || hi / lo <= 1.5;
  }
  if (r.marketCapUsd && m.marketCapUsd) {
    const ratio = Math.max(r.marketCapUsd, m.marketCapUsd) / Math.min(r.marketCapUsd, m.marketCapUsd);
    return ratio <= 3;
  }
  return true;
}

type AssetView = { uid: string; mappings: KnownMapping[]; sources: Set<string> };

/**
 * Decides the asset of every record in `records`, given the mappings already known (the
 * records' own ones and those of every asset that could match). Rules run in order over the
 * whole batch, and ties are broken by price closeness then id, so the result does not depend on
 * the order of `records`. An asset takes at most one id per API source (CSV files may each name
 * the same coin differently, so CSV ids may share an asset).
 */
export function decide(records: Identity[], known: KnownMapping[], pinned: Map<string, string>): Map<string, Decision> {
  const out = new Map<string, Decision>();
  const assets = new Map<string, AssetView>();
  const byRecord = new Map<string, KnownMapping>();
  for (const m of known) {
    byRecord.set(recordKey(m), m);
    const a = assets.get(m.assetUid) ?? { uid: m.assetUid, mappings: [], sources: new Set<string>() };
    a.mappings.push(m);
    a.sources.add(m.source);
    assets.set(m.assetUid, a);
  }

  let pending: Identity[] = [];
  for (const r of records) {
    const key = recordKey(r);
    const pin = pinned.get(key);
    if (pin) out.set(key, { assetUid: pin, rule: "pinned" });
    else if (byRecord.has(key)) out.set(key, { assetUid: byRecord.get(key)!.assetUid, rule: "known" });
    else pending.push(r);
  }

  const canJoin = (r: Identity, a: AssetView) => r.source === "csv" || !a.sources.has(r.source);
  const others = (r: Identity, a: AssetView) => a.mappings.filter((m) => m.source !== r.source);

  const rules: [Rule, (r: Identity, m: KnownMapping) => boolean][] = [
    [
      "provider_id",
      (r, m) =>
        idKey(r.source, r.sourceId, r.symbol) === idKey(m.source, m.sourceId, m.symbol) &&
        (symbolKey(r.symbol) === symbolKey(m.symbol) || looseNameKey(r.name) === looseNameKey(m.name)) &&
        pricesCompatible(r.priceUsd, m.priceUsd, PRICE_SANITY),
    ],
    [
      "name_symbol",
      (r, m) =>
        symbolKey(r.symbol) === symbolKey(m.symbol) &&
        (nameKey(r.name) === nameKey(m.name) || looseNameKey(r.name) === looseNameKey(m.name)) &&
        pricesCompatible(r.priceUsd, m.priceUsd, PRICE_SANITY),
    ],
    [
      "symbol_corroborated",
      (r, m) =>
        symbolKey(r.symbol) !== "" &&
        symbolKey(r.symbol) === symbolKey(m.symbol) &&
        priceGap(r.priceUsd, m.priceUsd) !== null &&
        priceGap(r.priceUsd, m.priceUsd)! <= PRICE_TOLERANCE &&
        sizeCorroborates(r, m),
    ],
  ];

  for (const [rule, matches] of rules) {
    // Every record proposes the assets this rule allows; each asset then goes to its closest claimant.
    const claims = new Map<string, { r: Identity; gap: number }[]>();
    const options = new Map<string, string[]>();
    for (const r of pending) {
      const uids: string[] = [];
      for (const a of assets.values()) {
        if (!canJoin(r, a)) continue;
        const hits = others(r, a).filter((m) => matches(r, m));
        if (hits.length) uids.push(a.uid);
      }
      if (!uids.length) continue;
      options.set(recordKey(r), uids.sort());
      const best = pickClosest(r, uids, assets);
      const list = claims.get(best) ?? [];
      list.push({ r, gap: closestGap(r, assets.get(best)!) });
      claims.set(best, list);
    }
    const next: Identity[] = [];
    const won = new Set<string>();
    for (const [uid, list] of claims) {
      const asset = assets.get(uid)!;
      list.sort((x, y) => x.gap - y.gap || (x.r.sourceId < y.r.sourceId ? -1 : 1));
      for (const { r } of list) {
        if (!canJoin(r, asset)) continue;
        const key = recordKey(r);
        const alternatives = options.get(key)!;
        // Under the weak rule, a record that fits several assets equally is not guessed.
        if (rule === "symbol_corroborated" && alternatives.length > 1) continue;
        out.set(key, { assetUid: uid, rule, ...(alternatives.length > 1 ? { ambiguous: alternatives } : {}) });
        won.add(key);
        const m: KnownMapping = { ...r, assetUid: uid };
        asset.mappings.push(m);
        asset.sources.add(r.source);
      }
    }
    for (const r of pending) if (!won.has(recordKey(r))) next.push(r);
    pending = next;
  }

  for (const r of pending) {
    const key = recordKey(r);
    const alternatives = lookalikes(r);
    out.set(key, { assetUid: null, rule: "new_asset", ...(alternatives.length ? { ambiguous: alternatives } : {}) });
  }
  return out;

  function lookalikes(r: Identity) {
    const sym = symbolKey(r.symbol);
    if (!sym) return [];
    return [...assets.values()]
      .filter((a) => canJoin(r, a) && others(r, a).some((m) => symbolKey(m.symbol) === sym && pricesCompatible(r.priceUsd, m.priceUsd, PRICE_TOLERANCE)))
      .map((a) => a.uid)
      .sort();
  }
}

function closestGap(r: Identity, a: AssetView) {
  let best = Number.POSITIVE_INFINITY;
  for (const m of a.mappings) {
    const g = priceGap(r.priceUsd, m.priceUsd);
    if (g !== null && g < best) best = g;
  }
  return best;
}

function pickClosest(r: Identity, uids: string[], assets: Map<string, AssetView>) {
  let best = uids[0];
  let bestGap = closestGap(r, assets.get(best)!);
  for (const uid of uids.slice(1)) {
    const g = closestGap(r, assets.get(uid)!);
    if (g < bestGap) {
      best = uid;
      bestGap = g;
    }
  }
  return best;
}

export const matchKey = recordKey;
