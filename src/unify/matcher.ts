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
/** Under the weak rules, one claimant must be this much closer in size (log ratio, 2x) than the next to be preferred. */
const SIZE_MARGIN = Math.log(2);
/** Provider ids shorter than this are too generic to stand as evidence without a matching symbol or name. */
const MIN_ID_ONLY_LENGTH = 4;
/** Prices this close to $1 are a peg, not a fingerprint. */
const PEG_BAND = 0.03;

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

/** Close prices (both known) and sizes that do not contradict each other. */
function figuresAgree(r: Identity, m: Identity) {
  const gap = priceGap(r.priceUsd, m.priceUsd);
  if (gap === null || gap > PRICE_TOLERANCE) return false;
  // Every dollar stablecoin (and its bridged copies) costs $1: there the price says nothing, and the size must.
  if (pegged(r.priceUsd) && pegged(m.priceUsd) && sizeDistance(r, m) === null) return false;
  return sizeCorroborates(r, m);
}

const pegged = (p: number | null) => p != null && Math.abs(p - 1) <= PEG_BAND;

/**
 * Sizes so far apart that no name or id makes them one coin: a market cap 100x off, or a rank 20x
 * off (a namesake, a copycat token, a dead contract).
 */
function sizeContradicts(r: Identity, m: Identity) {
  if (r.marketCapUsd && m.marketCapUsd) return Math.max(r.marketCapUsd, m.marketCapUsd) / Math.min(r.marketCapUsd, m.marketCapUsd) > 100;
  if (r.rank && m.rank) return Math.max(r.rank, m.rank) / Math.min(r.rank, m.rank) > 20;
  return false;
}

/** How far apart two records are in size (|log| of the rank or market-cap ratio); null when unknown. */
function sizeDistance(r: Identity, m: Identity) {
  if (r.rank && m.rank) return Math.abs(Math.log(r.rank / m.rank));
  if (r.marketCapUsd && m.marketCapUsd) return Math.abs(Math.log(r.marketCapUsd / m.marketCapUsd));
  return null;
}

/** Normalised keys of a record. `own`: the keys its asset is indexed under; `lookup`: the keys it finds candidates by. */
type Keys = { sym: string; name: string; loose: string; id: string; own: string[]; lookup: string[] };
type Rec = { r: Identity; k: Keys };

/** Keys of the mapping objects a caller passes again batch after batch; checked against the fields, so an edited object is re-keyed. */
const keyCache = new WeakMap<Identity, { source: string; sourceId: string; symbol: string; name: string; keys: Keys }>();

function keysOf(r: Identity): Keys {
  const hit = keyCache.get(r);
  if (hit && hit.source === r.source && hit.sourceId === r.sourceId && hit.symbol === r.symbol && hit.name === r.name) return hit.keys;
  const keys = computeKeys(r);
  keyCache.set(r, { source: r.source, sourceId: r.sourceId, symbol: r.symbol, name: r.name, keys });
  return keys;
}

function computeKeys(r: Identity): Keys {
  const sym = symbolKey(r.symbol);
  const name = nameKey(r.name);
  const loose = looseNameKey(r.name);
  const id = idKey(r.source, r.sourceId, r.symbol);
  const keys = (list: [string, string][]) => [...new Set(list.filter(([, v]) => v !== "").map(([t, v]) => `${t}:${v}`))];
  const own = keys([
    ["s", sym],
    ["n", name],
    ["n", loose],
    ["i", id],
  ]);
  // A name may be another provider's id slug and the other way round.
  const lookup = keys([
    ["s", sym],
    ["n", name],
    ["n", loose],
    ["i", id],
    ["i", name],
    ["i", loose],
    ["n", id],
  ]);
  return { sym, name, loose, id, own, lookup };
}

const same = (a: string, b: string) => a !== "" && a === b;
const sameName = (a: Keys, b: Keys) => same(a.name, b.name) || same(a.loose, b.loose);
/** A name that is another provider's id slug ("Binance Coin" / `binancecoin`, "Toncoin" / `toncoin`). */
const nameIsId = (a: Keys, b: Keys) => same(a.name, b.id) || same(a.loose, b.id) || same(a.id, b.name) || same(a.id, b.loose);

type Evidence = (x: Rec, m: Rec) => boolean;

/**
 * The rules, strongest first. Each pass runs over the whole batch before the next one starts, so
 * a record with strong evidence for an asset always wins it over a record with weaker evidence.
 */
const PASSES: { rule: Rule; weak: boolean; matches: Evidence }[] = [
  {
    // Same provider id slug (CoinPaprika's `{symbol}-` prefix dropped) and the same symbol; or, for a
    // coin whose ticker changed (MIOTA/IOTA), the same id and name with close price and size.
    rule: "provider_id",
    weak: false,
    matches: (x, m) =>
      same(x.k.id, m.k.id) &&
      (same(x.k.sym, m.k.sym)
        ? pricesCompatible(x.r.priceUsd, m.r.priceUsd, PRICE_SANITY) && !sizeContradicts(x.r, m.r)
        : sameName(x.k, m.k) && figuresAgree(x.r, m.r)),
  },
  {
    // Same symbol and the same name, or a name that is the other's id slug.
    rule: "name_symbol",
    weak: false,
    matches: (x, m) =>
      same(x.k.sym, m.k.sym) &&
      (sameName(x.k, m.k) || nameIsId(x.k, m.k)) &&
      pricesCompatible(x.r.priceUsd, m.r.priceUsd, PRICE_SANITY) &&
      !sizeContradicts(x.r, m.r),
  },
  {
    // A renamed and re-tickered coin (UST -> USTC "TerraClassicUSD") keeps its id slug: the same id
    // with a close price and a size that does not contradict it.
    rule: "provider_id",
    weak: false,
    matches: (x, m) => same(x.k.id, m.k.id) && x.k.id.length >= MIN_ID_ONLY_LENGTH && figuresAgree(x.r, m.r),
  },
  {
    // Never the symbol alone: price and size must agree too, and the choice must be unambiguous.
    rule: "symbol_corroborated",
    weak: true,
    matches: (x, m) => same(x.k.sym, m.k.sym) && figuresAgree(x.r, m.r),
  },
];

type AssetView = { uid: string; mappings: Rec[]; sources: Set<string> };

/**
 * Decides the asset of every record in `records`, given the mappings already known (the
 * records' own ones and those of every asset that could match). Rules run in order over the
 * whole batch; within a rule, records propose their closest asset and each asset keeps its
 * closest claimant, round after round, so the result does not depend on the order of `records`
 * or `known`. An asset takes at most one id per API source (CSV files may each name the same coin
 * differently, so CSV ids may share an asset).
 */
export function decide(records: Identity[], known: KnownMapping[], pinned: Map<string, string>): Map<string, Decision> {
  const out = new Map<string, Decision>();
  // Nothing known and nothing pinned: every record is a new asset (records never match each other).
  if (!known.length && !pinned.size) {
    for (const r of records) if (!out.has(recordKey(r))) out.set(recordKey(r), { assetUid: null, rule: "new_asset" });
    return out;
  }
  const assets = new Map<string, AssetView>();
  const byRecord = new Map<string, KnownMapping>();
  for (const m of known) byRecord.set(recordKey(m), m);

  let pending: Rec[] = [];
  const pins: [string, Rec][] = [];
  const seen = new Set<string>();
  for (const r of records) {
    const key = recordKey(r);
    if (seen.has(key)) continue; // listed twice in one batch: the first counts
    seen.add(key);
    const pin = pinned.get(key);
    if (pin) {
      out.set(key, { assetUid: pin, rule: "pinned" });
      pins.push([pin, { r, k: keysOf(r) }]);
    } else if (byRecord.has(key)) out.set(key, { assetUid: byRecord.get(key)!.assetUid, rule: "known" });
    else pending.push({ r, k: keysOf(r) });
  }

  // Assets by the keys their mappings carry (only those the pending records look up), so candidates
  // are found without scanning every asset.
  const wanted = new Set(pending.flatMap((x) => x.k.lookup));
  const index = new Map<string, Set<string>>();
  const join = (uid: string, x: Rec) => {
    const a = assets.get(uid) ?? { uid, mappings: [], sources: new Set<string>() };
    a.mappings.push(x);
    a.sources.add(x.r.source);
    assets.set(uid, a);
    for (const key of x.k.own) {
      if (!wanted.has(key)) continue;
      const set = index.get(key) ?? new Set<string>();
      set.add(uid);
      index.set(key, set);
    }
  };
  for (const m of known) join(m.assetUid, { r: m, k: keysOf(m) });
  for (const [uid, x] of pins) join(uid, x); // a pin takes its source's place on that asset

  const canJoin = (x: Rec, a: AssetView) => x.r.source === "csv" || !a.sources.has(x.r.source);
  /** Mappings a record is compared with: every mapping of the asset from another source, and other CSV ids. */
  const comparable = (x: Rec, a: AssetView) => a.mappings.filter((m) => m.r.source !== x.r.source || x.r.source === "csv");
  const candidateUids = (x: Rec) => {
    const uids = new Set<string>();
    for (const key of x.k.lookup) for (const uid of index.get(key) ?? []) uids.add(uid);
    return [...uids].sort();
  };

  for (const pass of PASSES) {
    // Every record's options under this rule, closest first.
    type Option = { uid: string; gap: number; size: number };
    const options = new Map<string, Option[]>();
    for (const x of pending) {
      const opts: Option[] = [];
      for (const uid of candidateUids(x)) {
        const a = assets.get(uid)!;
        if (!canJoin(x, a)) continue;
        const hits = comparable(x, a).filter((m) => pass.matches(x, m));
        if (!hits.length) continue;
        opts.push({
          uid,
          gap: closest(hits, (m) => priceGap(x.r.priceUsd, m.r.priceUsd)),
          size: closest(hits, (m) => sizeDistance(x.r, m.r)),
        });
      }
      if (!opts.length) continue;
      opts.sort((p, q) => cmp(closeness(p), closeness(q)) || cmp(p.uid, q.uid));
      options.set(recordKey(x.r), opts);
    }

    // Rounds of proposals: every claim is either accepted or refused, so this ends.
    const refused = new Set<string>(); // record key + uid: the asset turned the record down
    const won = new Set<string>();
    for (;;) {
      // Each undecided record proposes the closest asset that has not turned it down.
      const claims = new Map<string, { x: Rec; o: Option }[]>();
      for (const x of pending) {
        const key = recordKey(x.r);
        const opts = options.get(key);
        if (!opts || won.has(key)) continue;
        // Under the weak rule, a record that fits several assets is not guessed.
        if (pass.weak && opts.length > 1) continue;
        const o = opts.find((o) => !refused.has(`${key}\u0000${o.uid}`) && canJoin(x, assets.get(o.uid)!));
        if (o) claims.set(o.uid, [...(claims.get(o.uid) ?? []), { x, o }]);
      }
      if (!claims.size) break;
      for (const uid of [...claims.keys()].sort()) {
        const bySource = new Map<string, { x: Rec; o: Option }[]>();
        for (const c of claims.get(uid)!) bySource.set(c.x.r.source, [...(bySource.get(c.x.r.source) ?? []), c]);
        for (const [source, list] of bySource) {
          // The weak rule compares size first (a bridged token is priced like its original), the others price.
          list.sort(
            (p, q) =>
              (pass.weak ? cmp(p.o.size, q.o.size) || cmp(p.o.gap, q.o.gap) : cmp(closeness(p.o), closeness(q.o))) ||
              cmp(p.x.r.sourceId, q.x.r.sourceId),
          );
          let accepted = source === "csv" && !pass.weak ? list : list.slice(0, 1);
          // Two records of one batch fit one asset about equally under the weak rule: neither is guessed.
          if (pass.weak && list.length > 1 && !(list[0].o.size + SIZE_MARGIN < list[1].o.size)) accepted = [];
          for (const c of list) {
            const key = recordKey(c.x.r);
            if (!accepted.includes(c)) {
              refused.add(`${key}\u0000${uid}`);
              continue;
            }
            const alternatives = options
              .get(key)!
              .map((o) => o.uid)
              .sort();
            out.set(key, { assetUid: uid, rule: pass.rule, ...(alternatives.length > 1 ? { ambiguous: alternatives } : {}) });
            won.add(key);
            join(uid, c.x);
          }
        }
      }
    }
    pending = pending.filter((x) => !won.has(recordKey(x.r)));
  }

  for (const x of pending) {
    const key = recordKey(x.r);
    const alternatives = lookalikes(x);
    out.set(key, { assetUid: null, rule: "new_asset", ...(alternatives.length ? { ambiguous: alternatives } : {}) });
  }
  return out;

  function lookalikes(x: Rec) {
    if (!x.k.sym) return [];
    return [...(index.get(`s:${x.k.sym}`) ?? [])]
      .filter((uid) => {
        const a = assets.get(uid)!;
        return (
          canJoin(x, a) &&
          comparable(x, a).some((m) => m.k.sym === x.k.sym && pricesCompatible(x.r.priceUsd, m.r.priceUsd, PRICE_TOLERANCE))
        );
      })
      .sort();
  }
}

/**
 * How well an option fits: the price gap, plus a little of the size distance so that between two
 * namesakes priced about the same the one of the same size wins. Unknown figures count as middling.
 */
function closeness(o: { gap: number; size: number }) {
  const gap = Number.isFinite(o.gap) ? o.gap : PRICE_TOLERANCE;
  const size = Number.isFinite(o.size) ? o.size : Math.log(3);
  return gap + 0.05 * size;
}

const cmp = <T extends number | string>(a: T, b: T) => (a < b ? -1 : a > b ? 1 : 0);

/** The smallest of a measure over some mappings; unknown counts as far. */
function closest(hits: Rec[], measure: (m: Rec) => number | null) {
  let best = Number.POSITIVE_INFINITY;
  for (const m of hits) {
    const v = measure(m);
    if (v !== null && v < best) best = v;
  }
  return best;
}

export const matchKey = recordKey;
