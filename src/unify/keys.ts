/** Normalised keys the matcher compares. Pure, shared by ingestion and tests. */

const ASCII = /^[\x20-\x7e]*$/;

// Unicode normalisation is the costly part of a key, and most names and tickers are plain ASCII already.
export const symbolKey = (symbol: string) => (ASCII.test(symbol) ? symbol : symbol.normalize("NFKC")).trim().toLowerCase();

function fold(s: string) {
  const plain = ASCII.test(s) ? s : s.normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
  return plain.toLowerCase().replace(/&/g, " and ");
}

/** Exact name key: case, accents, spacing and punctuation do not count ("Act I : The AI Prophecy" = "Act I The AI Prophecy"). */
export const nameKey = (name: string) => fold(name).replace(/[^a-z0-9]/g, "");

/** Words that providers add or drop around the same name ("FTX" / "FTX Token", "Mina" / "Mina Protocol"). */
const FILLER_WORDS = new Set(["token", "coin", "network", "protocol", "project", "the", "official", "finance", "chain"]);

/** A name's words without filler words (all of them when nothing else is left). */
function wordsOf(folded: string) {
  const words = folded.split(/[^a-z0-9]+/).filter(Boolean);
  const kept = words.filter((w) => !FILLER_WORDS.has(w));
  return kept.length ? kept : words;
}

/** A name's exact key, loose key and words, folding it once. */
export function nameKeysOf(name: string) {
  const folded = fold(name);
  const words = wordsOf(folded);
  return { name: folded.replace(/[^a-z0-9]/g, ""), loose: words.join(""), words };
}

const OLD_MARKER = /\s*[[(]\s*old\s*[\])]\s*/gi;
const OLD_TEST = /[[(]\s*old\s*[\])]/i;
/** A migration marker: the provider's new contract of the coin, not a copy of it ("X (NEW)"). */
const NEW_MARKER = /\s*[[(]\s*new\s*[\])]\s*/gi;
/** A token-standard suffix ("(ERC-20)", "(BEP20)", "(SPL)", "(TRC20)"): the standard the coin is issued under, not a bridge. */
const STANDARD_SUFFIX = /\s*[[(]\s*(?:(?:erc|bep|trc|hrc|kip|brc|src|zrc)[\s-]?\d{1,4}|spl)\s*[\])]\s*$/i;
/** Every marker below needs one of these: most names have none, and skip the rest. */
const MAYBE_MARKED = /[[(]|bridged|wormhole|-peg/i;
/** A trailing qualifier in brackets: the chain or bridge of a copy ("(Wormhole)", "(PulseChain)", "(BSC)"). */
const QUALIFIER = /[[(]([^\])]+)[\])]\s*$/;
/**
 * Chains as providers name them in a trailing bracket ("X (BSC)", "X (Arbitrum)"), as name keys. A
 * bridge ("(Wormhole)") or a fork's copy ("(PulseChain)") is not one: those name a copy wherever they stand.
 */
const CHAIN_NAMES = new Set(
  `ethereum eth bsc bnb bnbchain bnbsmartchain binancesmartchain polygon polygonpos matic arbitrum arbitrumone optimism
   base avalanche avax avalanchecchain solana sol tron fantom cronos gnosis celo moonbeam harmony heco kcc okc klaytn
   zksync zksyncera linea scroll mantle blast near cardano algorand tezos sui aptos ton`.split(/\s+/),
);
/** Words that mark a copy of a coin on another chain. */
const COPY_WORDS = /\b(bridged|wormhole|[a-z]+-peg(?:ged)?)\b/gi;

/**
 * What a name says beside the coin: `old`, CoinGecko's "[OLD]"/"(OLD)" for a migrated contract
 * (`base` is the name without it, and without a "(NEW)" migration marker); `standard`, a trailing
 * token-standard suffix ("(ERC-20)"), also left out of `base`; `marks`, the markers of a bridged or wrapped copy, among them
 * the trailing bracketed `qualifier`, which may also be a former name ("MultiversX (Elrond)").
 */
export function markersOf(name: string): {
  base: string;
  old: boolean;
  standard: boolean;
  qualifier: string;
  marks: string[];
  /** The name without a trailing chain bracket when that bracket is its only marker ("X (BSC)" -> "X"); "" otherwise. */
  plain: string;
} {
  if (!MAYBE_MARKED.test(name)) return { base: name, old: false, standard: false, qualifier: "", marks: [], plain: "" };
  const old = OLD_TEST.test(name);
  let base = (old ? name.replace(OLD_MARKER, " ") : name).replace(NEW_MARKER, " ").trim() || name;
  const standard = STANDARD_SUFFIX.test(base) && base.replace(STANDARD_SUFFIX, "").trim() !== "";
  if (standard) base = base.replace(STANDARD_SUFFIX, "").trim();
  const marks = new Set<string>();
  const qualifier = nameKey(base.match(QUALIFIER)?.[1] ?? "");
  if (qualifier) marks.add(qualifier);
  for (const m of base.matchAll(COPY_WORDS)) {
    const word = m[1].toLowerCase();
    marks.add(/-peg(ged)?$/.test(word) ? "peg" : word);
  }
  marks.delete("");
  const chainOnly = marks.size === 1 && CHAIN_NAMES.has(qualifier) && marks.has(qualifier);
  const plain = chainOnly ? base.replace(QUALIFIER, "").trim() : "";
  return { base, old, standard, qualifier, marks: [...marks].sort(), plain };
}

/**
 * Provider ids reduced to their name part. CoinPaprika ids are `{symbol}-{name-slug}`, with the
 * symbol of the day the coin was listed ("bnb-binance-coin", but also "miota-iota",
 * "rndr-render-token", "ust-terrausd"), so the first segment goes whatever it is; CoinGecko and
 * CoinCap ids are name slugs ("binancecoin"); CSV rows without an id get `{symbol}:{name-slug}`.
 */
export function idKey(source: string, sourceId: string, symbol: string) {
  let id = sourceId.toLowerCase();
  if (source === "coinpaprika") {
    const prefix = `${symbolKey(symbol)}-`;
    if (id.startsWith(prefix) && id.length > prefix.length) id = id.slice(prefix.length);
    else if (/^[^-]+-./.test(id)) id = id.slice(id.indexOf("-") + 1);
  } else if (source === "csv" && /^[^:]*:./.test(id)) id = id.slice(id.indexOf(":") + 1);
  return id.replace(/[^a-z0-9]/g, "");
}

/** Readable asset_uid candidates: the name's slug, then qualified by symbol. */
export function slugify(s: string) {
  return fold(s)
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
}
