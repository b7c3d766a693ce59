import { idKey, markersOf, nameKeysOf, symbolKey } from "./keys";

/** What the matcher knows of a record: its identity and its latest figures. */
export type Identity = {
  source: string;
  sourceId: string;
  symbol: string;
  name: string;
  priceUsd: number | null;
  rank: number | null;
  marketCapUsd: number | null;
  /** The active contracts its provider lists for it (SPEC §3 "Chains"); absent or empty when none are known (native coins, CSV rows). */
  contracts?: readonly Contract[];
};

/** A token's deployment: a chain slug and the address as stored (EVM addresses lowercase). */
export type Contract = { chain: string; address: string };

/**
 * One score per signal. A pair of records from different sources is scored by adding the
 * signals that fire; the pairs are then tried highest score first (see grouping.ts), so the
 * strongest evidence for an asset always wins it, whatever arrived first.
 */
export const SCORES = {
  /** An equal (chain, address): the token itself, whatever either provider calls it. The strongest signal. */
  contract: 10,
  /** Equal provider id slugs: providers derive them from the coin's name, so this is the strongest single signal. */
  id: 4,
  /** An id shorter than MIN_ID_LENGTH ("eth", "op") is a ticker more than a name. */
  shortId: 2,
  /** Equal names (case, accents, spacing and punctuation aside). */
  name: 3,
  /** Equal once filler words go ("Mina" / "Mina Protocol"), or a name that is the other's id slug ("Binance Coin" / `binancecoin`). */
  looseName: 2.5,
  /** One name starts with the other's words ("Terra" / "Terra Luna Classic"): a hint, never enough alone. */
  namePart: 1.5,
  /** Equal tickers: thousands of tokens share a few hundred popular ones, so a ticker alone is weak. */
  symbol: 2,
  /** Exactly one side carries "[OLD]"/"(OLD)" (and maybe an "OLD" ticker): a migrated contract, a little against the unmarked coin. */
  oldMarker: -1,
  /** Exactly one side carries a token-standard suffix ("(ERC-20)"): the same coin unless the plain name has a rival, which then wins. */
  standardMarker: -1,
  /**
   * Exactly one side carries a trailing chain bracket ("X (BSC)") and is otherwise the other's name: the coin
   * itself, named by the one chain it lives on, unless a rival lists the plain name (grouping.ts): then a copy.
   */
  chainMarker: -1,
  /** Equal tickers, equal small ranks, one name holding the other's name or ticker as whole words: a descriptive name of one coin. */
  nameWords: 1,
  /** A bridge or wrap marker on one side only ("(Wormhole)", "Bridged", "Binance-Peg"): a copy of the coin, not the coin. */
  bridgeMarker: -4,
  /** Prices within 1%, 3%, 10% of the lower one; 10-25% and 25-50% apart count against; beyond PRICE_VETO no pair is made. */
  price: [
    [0.01, 2.5],
    [0.03, 1.5],
    [0.1, 0.5],
    [0.25, -2],
    [0.5, -3.5],
  ] as const,
  /** Market caps (when a rank is missing) within 5%, 25%, 3x of each other; up to SIZE_VETO apart counts against. */
  marketCap: [
    [1.05, 2],
    [1.25, 1.5],
    [3, 0.5],
  ] as const,
  marketCapApart: -1,
  /** Ranks within 15% or 10 places, within 50% or 25 places; farther counts against. */
  rankClose: 1,
  rankNear: 0.5,
  rankApart: -0.5,
} as const;

/** Provider ids shorter than this are too generic to count as a name. */
const MIN_ID_LENGTH = 4;
/** Prices further apart than this (of the lower one) are never one coin: an old/new contract, a namesake. */
export const PRICE_VETO = 0.5;
/** Ranks 20x apart (or, without both ranks, market caps 100x apart) are never one coin: a copycat, a dead contract. */
const SIZE_VETO = { marketCap: 100, rank: 20 };
/** Prices this close to $1 are a peg, not a fingerprint: every dollar stablecoin and its bridged copies cost $1. */
const PEG_BAND = 0.03;
/** Figures "agree" when prices are this close and the sizes do not count against: what the id-only and weak rules ask. */
const FIGURES_AGREE = 0.1;
/**
 * A pair must score this much to join two assets. A strong pair (an id or a name) passes with the
 * worst figures short of a veto (name and symbol, prices 25-50% apart, ranks apart: 1), since
 * illiquid coins are priced loosely; it is then tried after every pair whose figures agree, which is
 * what tells a successor from its original. Only a copy marker takes it below.
 */
export const STRONG_MIN = 1;
/** A weak pair (no id, no whole name) needs agreeing figures on top: symbol or leading words, close price, close size. */
export const WEAK_MIN = 3.5;

/** The rules, named by the identity signals that fired; `weak` ones never decide between look-alikes. */
export const RULES = {
  contract: { weak: false },
  provider_id: { weak: false },
  id_name: { weak: false },
  name_symbol: { weak: false },
  migrated: { weak: false },
  renamed: { weak: false },
  chain_named: { weak: false },
  id_figures: { weak: false },
  name_figures: { weak: true },
  symbol_corroborated: { weak: true },
} as const;
export type MatchRule = keyof typeof RULES;

/** Ranks up to this are few and stable enough that two providers ranking a coin equally is a fingerprint. */
const TWIN_RANK = 100;
/** The word a provider appends to an original chain's name when its successor took the name ("X Classic"). */
const CLASSIC = "classic";

/** How many leading words of a name are tried as a shorter name of the same coin. */
const MAX_PREFIX_WORDS = 3;

/** Normalised keys of a record; `lookup` are the keys it finds candidates by, `own` those it is found by. */
export type Keys = {
  sym: string;
  baseSym: string;
  name: string;
  loose: string;
  words: string[];
  id: string;
  old: boolean;
  standard: boolean;
  qualifier: string;
  marks: string[];
  /** Name keys without a trailing chain bracket that is the only marker ("X (BSC)" -> "x"); "" otherwise. */
  plainName: string;
  plainLoose: string;
  /** "chain:address" of each active contract. */
  contracts: string[];
  own: string[];
  lookup: string[];
};

/** Keys of records passed again batch after batch; checked against the fields, so an edited object is re-keyed. */
type Keyed = Pick<Identity, "source" | "sourceId" | "symbol" | "name" | "contracts">;
const keyCache = new WeakMap<Identity, Keyed & { keys: Keys }>();

export function keysOf(r: Identity): Keys {
  const hit = keyCache.get(r);
  if (
    hit &&
    hit.source === r.source &&
    hit.sourceId === r.sourceId &&
    hit.symbol === r.symbol &&
    hit.name === r.name &&
    hit.contracts === r.contracts
  )
    return hit.keys;
  const keys = computeKeys(r);
  keyCache.set(r, { source: r.source, sourceId: r.sourceId, symbol: r.symbol, name: r.name, contracts: r.contracts, keys });
  return keys;
}

const NO_KEYS: string[] = [];

function computeKeys(r: Identity): Keys {
  const { base, old, standard, qualifier, marks, plain } = markersOf(r.name);
  const sym = symbolKey(r.symbol);
  // "XOLD" is the ticker of "X [OLD]": the migrated contract's base ticker is X.
  const baseSym = old && sym.length > 3 && sym.endsWith("old") ? sym.slice(0, -3) : sym;
  const { name, loose, words } = nameKeysOf(base);
  const { name: plainName, loose: plainLoose } = plain ? nameKeysOf(plain) : { name: "", loose: "" };
  const id = idKey(r.source, r.sourceId, r.symbol);
  const contracts = r.contracts?.length ? [...new Set(r.contracts.map((c) => `${c.chain}:${c.address}`))].sort() : NO_KEYS;
  // "terra" finds "terra luna classic" and the other way round: "p:" keys are a name's leading words.
  const prefixes = words[0]?.length >= 3 ? words.slice(1, MAX_PREFIX_WORDS + 1).map((_, i) => words.slice(0, i + 1).join("")) : NO_KEYS;
  // Keys are built for every record and every mapping read, so without intermediate arrays: each `kind:value` once, in order.
  const own: string[] = [];
  const lookup: string[] = [];
  const add = (list: string[], kind: string, value: string) => {
    if (value === "") return;
    const key = `${kind}:${value}`;
    if (!list.includes(key)) list.push(key);
  };
  const both = (kind: string, value: string) => {
    add(own, kind, value);
    add(lookup, kind, value);
  };
  // A record is found by its keys and finds others by the same ones, and by a few more (lookup only).
  both("s", sym);
  both("s", baseSym);
  // The ticker CoinGecko gives a migrated contract ("KST" -> "KSTOLD").
  add(lookup, "s", sym && `${sym}old`);
  both("n", name);
  both("n", loose);
  // "X (BSC)" is found by "X", and finds it: the same coin or a copy, which its rivals decide.
  both("n", plainName);
  both("n", plainLoose);
  both("i", id);
  // A name may be another provider's id slug and the other way round.
  add(lookup, "i", name);
  add(lookup, "i", loose);
  add(lookup, "n", id);
  add(lookup, "p", loose);
  for (const p of prefixes) {
    add(own, "p", p);
    add(lookup, "n", p);
  }
  // An equal contract pairs two ids whatever their names and tickers.
  for (const c of contracts) both("c", c);
  return { sym, baseSym, name, loose, words, id, old, standard, qualifier, marks, plainName, plainLoose, contracts, own, lookup };
}

function priceGap(a: number | null, b: number | null) {
  if (a == null || b == null || a <= 0 || b <= 0) return null;
  return Math.abs(a - b) / Math.min(a, b);
}

const pegged = (p: number | null) => p != null && Math.abs(p - 1) <= PEG_BAND;
const ratio = (a: number, b: number) => Math.max(a, b) / Math.min(a, b);

/** How far apart two records are in size (|log| of the market-cap or rank ratio); null when unknown. */
function sizeDistance(r: Identity, m: Identity) {
  if (r.rank && m.rank) return Math.abs(Math.log(r.rank / m.rank));
  if (r.marketCapUsd && m.marketCapUsd) return Math.abs(Math.log(r.marketCapUsd / m.marketCapUsd));
  return null;
}

/** Price and size contradict each other so much that no name or id makes the two one coin. */
export function figuresVeto(r: Identity, m: Identity) {
  const gap = priceGap(r.priceUsd, m.priceUsd);
  if (gap !== null && gap > PRICE_VETO) return true;
  // Ranks first, as in sizeScore: a provider's supply figure can be off by orders of magnitude while its rank agrees.
  if (r.rank && m.rank) return ratio(r.rank, m.rank) > SIZE_VETO.rank;
  if (r.marketCapUsd && m.marketCapUsd) return ratio(r.marketCapUsd, m.marketCapUsd) > SIZE_VETO.marketCap;
  return false;
}

function priceScore(r: Identity, m: Identity) {
  const gap = priceGap(r.priceUsd, m.priceUsd);
  if (gap === null || (pegged(r.priceUsd) && pegged(m.priceUsd))) return 0;
  for (const [bound, score] of SCORES.price) if (gap <= bound) return score;
  return Number.NEGATIVE_INFINITY;
}

/** Ranks first: providers rank alike, while their market caps differ with how each counts the supply. */
function sizeScore(r: Identity, m: Identity): number | null {
  if (r.rank && m.rank) {
    const d = Math.abs(r.rank - m.rank);
    const x = ratio(r.rank, m.rank);
    if (d <= 10 || x <= 1.15) return SCORES.rankClose;
    if (d <= 25 || x <= 1.5) return SCORES.rankNear;
    return SCORES.rankApart;
  }
  if (r.marketCapUsd && m.marketCapUsd) {
    const x = ratio(r.marketCapUsd, m.marketCapUsd);
    for (const [bound, score] of SCORES.marketCap) if (x <= bound) return score;
    return SCORES.marketCapApart;
  }
  return null;
}

export type Signals = {
  contract?: number;
  id?: number;
  name?: number;
  symbol?: number;
  old?: number;
  standard?: number;
  chain?: number;
  bridge?: number;
  price?: number;
  size?: number;
};
export type Evidence = {
  rule: MatchRule;
  score: number;
  signals: Signals;
  priceGap: number | null;
  sizeDistance: number | null;
  /** The (chain, address) both ids list, as "chain:address", when that is what joined them. */
  contract?: string;
};

/** A (chain, address) both records list, as "chain:address"; null when they share none. */
function sharedContract(x: Identity, m: Identity): string | null {
  if (!x.contracts?.length || !m.contracts?.length) return null;
  const theirs = new Set(keysOf(m).contracts);
  return keysOf(x).contracts.find((c) => theirs.has(c)) ?? null;
}

/**
 * Of two records that share no address (sharedContract is null: the callers have asked), both list
 * active contracts on one chain: two tokens (a bridged or wrapped copy has its own address),
 * whatever the names and figures say.
 */
function contractsApart(x: Identity, m: Identity): boolean {
  if (!x.contracts?.length || !m.contracts?.length) return false;
  const chains = new Set(x.contracts.map((c) => c.chain));
  return m.contracts.some((c) => chains.has(c.chain));
}

/** No pair may be made: contracts on one chain that differ, or (without a shared contract) figures that veto. */
export function pairVeto(x: Identity, m: Identity): boolean {
  if (sharedContract(x, m)) return false;
  return contractsApart(x, m) || figuresVeto(x, m);
}

const same = (a: string, b: string) => a !== "" && a === b;
/** One name's words start the other's ("terra" / "terra luna classic"), with a first word long enough to mean something. */
const namePrefix = (a: string[], b: string[]) => {
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  return short.length > 0 && short.length < long.length && short[0].length >= 3 && short.every((w, i) => long[i] === w);
};

/**
 * The evidence that two records of different sources are one coin, or null when there is none
 * (no identity signal, figures that veto, or a score under the rule's minimum).
 */
export function compare(x: Identity, m: Identity): Evidence | null {
  const contract = sharedContract(x, m);
  if (!contract && (contractsApart(x, m) || figuresVeto(x, m))) return null;
  const a = keysOf(x);
  const b = keysOf(m);
  const signals: Signals = {};
  if (contract) signals.contract = SCORES.contract;
  const idSame = same(a.id, b.id);
  if (idSame) signals.id = a.id.length >= MIN_ID_LENGTH ? SCORES.id : SCORES.shortId;
  const nameSame = same(a.name, b.name);
  const nameLoose =
    !nameSame && (same(a.loose, b.loose) || same(a.name, b.id) || same(a.loose, b.id) || same(a.id, b.name) || same(a.id, b.loose));
  const namePart = !nameSame && !nameLoose && namePrefix(a.words, b.words);
  const symSame = same(a.sym, b.sym);
  const renamed = !nameSame && !nameLoose && renamedOriginal(a, b);
  const described = !nameSame && !nameLoose && !namePart && !renamed && symSame && rankTwins(x, m) && describes(a, b);
  const chainNamed = !nameSame && !nameLoose && symSame && chainOf(a, b) !== null;
  if (nameSame) signals.name = SCORES.name;
  else if (nameLoose || renamed) signals.name = SCORES.looseName;
  else if (namePart) signals.name = SCORES.namePart;
  else if (described) signals.name = SCORES.nameWords;
  const symMigrated = !symSame && a.old !== b.old && same(a.baseSym, b.baseSym);
  const symRenamed = renamed && renamedTicker(a, b);
  if (symSame || symMigrated || symRenamed) signals.symbol = SCORES.symbol;
  if (a.old !== b.old) signals.old = SCORES.oldMarker;
  if (a.standard !== b.standard) signals.standard = SCORES.standardMarker;
  const copyMarked = !sameMarks(a, b);
  if (copyMarked) signals.bridge = SCORES.bridgeMarker;
  const price = priceScore(x, m);
  // Only a shared contract outlives prices beyond the veto: they then say nothing.
  if (price !== 0 && Number.isFinite(price)) signals.price = price;
  const size = sizeScore(x, m);
  if (size !== null && size !== 0) signals.size = size;

  const agree = figuresAgree(x, m, size);
  const nameOk = nameSame || nameLoose;
  let rule: MatchRule | null = null;
  if (contract) rule = "contract";
  else if (idSame && symSame) rule = "provider_id";
  else if (idSame && nameOk && agree) rule = "id_name";
  else if (nameOk && symSame) rule = "name_symbol";
  else if (nameOk && symMigrated && agree) rule = "migrated";
  else if (symRenamed && agree && !copyMarked) rule = "renamed";
  else if (idSame && a.id.length >= MIN_ID_LENGTH && agree) rule = "id_figures";
  else if (namePart && agree && !copyMarked) rule = "name_figures";
  else if ((symSame || described) && agree && !copyMarked) rule = "symbol_corroborated";
  else if (chainNamed && agree) {
    // "X (BSC)" / "X": the plain names are equal and the bracket is a chain, not a copy, unless a rival says so (grouping.ts).
    rule = "chain_named";
    signals.name = SCORES.name;
    delete signals.bridge;
    signals.chain = SCORES.chainMarker;
  }
  if (!rule) return null;
  const score = Object.values(signals).reduce((s, v) => s + v, 0);
  if (contract)
    return {
      rule,
      score: Math.max(score, STRONG_MIN),
      signals,
      priceGap: priceGap(x.priceUsd, m.priceUsd),
      sizeDistance: sizeDistance(x, m),
      contract,
    };
  if (score < (RULES[rule].weak ? WEAK_MIN : STRONG_MIN)) return null;
  return { rule, score, signals, priceGap: priceGap(x.priceUsd, m.priceUsd), sizeDistance: sizeDistance(x, m) };
}

/** Of two records, the one named "X (Chain)" while the other is plainly "X" and carries no marker; null when not so. */
function chainOf(a: Keys, b: Keys): Keys | null {
  const named = (k: Keys, other: Keys) =>
    k.plainName !== "" && other.marks.length === 0 && !other.standard && (same(k.plainName, other.name) || same(k.plainLoose, other.loose));
  if (named(a, b)) return a;
  if (named(b, a)) return b;
  return null;
}

/**
 * The plain name a record goes by under a chain bracket, or its own name. Another id of either
 * source of a chain-named pair ("X (BSC)" / "X") going by the same plain name ("X", "X (Polygon)")
 * is a rival: a provider listing only "X (BSC)" names the coin by its chain; one listing "X" beside
 * it lists a copy next to its origin (see grouping.ts).
 */
export const plainKeyOf = (r: Identity) => {
  const k = keysOf(r);
  return k.plainName || k.name;
};

/** Two records one of which is the other's plain name under a chain bracket: whatever reaches one must see the other's rivals. */
export function chainLinked(x: Identity, m: Identity): boolean {
  const a = keysOf(x);
  const b = keysOf(m);
  return (a.plainName !== "" || b.plainName !== "") && plainKeyOf(x) !== "" && plainKeyOf(x) === plainKeyOf(m);
}

/** Both ranks known, equal and small: providers rank the top coins alike, and only one coin holds a rank. */
const rankTwins = (x: Identity, m: Identity) => x.rank != null && x.rank === m.rank && x.rank <= TWIN_RANK;

/** A run of `part` appears in `words` as whole words. */
const hasRun = (words: string[], part: string[]) => part.length > 0 && words.some((_, i) => part.every((w, j) => words[i + j] === w));

/** One name holds the other's words, or the shared ticker, as whole words ("Quanta Dollar QUSD" / "Quanta Dollar"). */
function describes(a: Keys, b: Keys) {
  const [short, long] = a.words.length <= b.words.length ? [a, b] : [b, a];
  return (short.words.length < long.words.length && hasRun(long.words, short.words)) || hasRun(long.words, [long.sym]);
}

/** One name is the other's with "Classic" after it ("X Classic" / "X"): the original chain, renamed when its successor took the name. */
function renamedOriginal(a: Keys, b: Keys) {
  const [short, long] = a.words.length <= b.words.length ? [a, b] : [b, a];
  return (
    long.words.at(-1) === CLASSIC &&
    long.words.length === short.words.length + 1 &&
    hasRun(long.words, short.words) &&
    long.words[0] === short.words[0]
  );
}

/** The classic side's ticker is the other's, or the other's with a "C" ("XC" / "X"). */
function renamedTicker(a: Keys, b: Keys) {
  const [plain, classic] = a.words.length <= b.words.length ? [a, b] : [b, a];
  return plain.sym !== "" && (classic.sym === plain.sym || classic.sym === `${plain.sym}c`);
}

/**
 * Both records carry the same copy markers. A bracketed qualifier that names either coin itself
 * (its id slug or name: "MultiversX (Elrond)" / `egld-elrond`, "AVA (Travala)" / `ava-travala`)
 * is a former or fuller name, not a chain.
 */
function sameMarks(a: Keys, b: Keys) {
  const own = (k: Keys, other: Keys) =>
    k.marks.filter((m) => !(m === k.qualifier && [k.id, other.id, other.name, other.loose].includes(m)));
  const x = own(a, b);
  const y = own(b, a);
  return x.length === y.length && x.every((m, i) => m === y[i]);
}

/** Close prices (both known, and a peg only with a size to back it) and sizes that do not count against. */
function figuresAgree(x: Identity, m: Identity, size: number | null) {
  const gap = priceGap(x.priceUsd, m.priceUsd);
  if (gap === null || gap > FIGURES_AGREE) return false;
  if (pegged(x.priceUsd) && pegged(m.priceUsd) && size === null) return false;
  return size === null || size > 0;
}
