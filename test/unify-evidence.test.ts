import { describe, expect, it } from "vitest";
import { compare, figuresVeto, type Identity, keysOf, SCORES, STRONG_MIN } from "../src/unify/evidence";
import { candidatePairs, groupRecords, joinGroups, matchKey as recordKey, scoredEdges } from "../src/unify/grouping";
import { markersOf } from "../src/unify/keys";
import { assignUids, decide, type KnownMapping, placeGroups } from "../src/unify/matcher";
import { gecko, identityOf, paprika } from "./identities";

/** Each signal, rule and step of unification on its own. */

const rec = identityOf;
const cg = gecko;
const cp = paprika;

describe("markers in names", () => {
  it("reads CoinGecko's migrated-contract marker and strips it from the name", () => {
    expect(markersOf("Kestrel [OLD]")).toMatchObject({ base: "Kestrel", old: true, marks: [] });
    expect(markersOf("Ambergris (OLD)")).toMatchObject({ base: "Ambergris", old: true });
    expect(markersOf("Oldenburg")).toMatchObject({ old: false });
    // "XOLD" is the migrated contract's ticker for "X".
    expect(keysOf(cg("kestrel-old", "kstold", "Kestrel [OLD]", 1)).baseSym).toBe("kst");
  });

  it("reads bridge and wrap markers, trailing qualifiers among them", () => {
    expect(markersOf("Ethereum (Wormhole)").marks).toEqual(["wormhole"]);
    expect(markersOf("Halcyon (PulseChain)").marks).toEqual(["pulsechain"]);
    expect(markersOf("Bridged USDC").marks).toEqual(["bridged"]);
    expect(markersOf("Binance-Peg WETH").marks).toEqual(["peg"]);
    expect(markersOf("Wrapped Pyxis (BSC)").marks).toEqual(["bsc"]);
    expect(markersOf("Wrapped Bitcoin").marks).toEqual([]);
  });
});

describe("scored evidence", () => {
  it("scores each signal that fires and names the rule by the identity signals", () => {
    const e = compare(
      cg("zephyr-protocol", "zeph", "Zephyr Protocol", 2.41, 400),
      cp("zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol", 2.412, 398),
    )!;
    expect(e.rule).toBe("provider_id");
    expect(e.signals).toEqual({
      id: SCORES.id,
      name: SCORES.name,
      symbol: SCORES.symbol,
      price: SCORES.price[0][1],
      size: SCORES.rankClose,
    });
    expect(e.score).toBe(SCORES.id + SCORES.name + SCORES.symbol + SCORES.price[0][1] + SCORES.rankClose);
  });

  it("names every rule for its own signals", () => {
    const rule = (a: Identity, b: Identity) => compare(a, b)?.rule ?? null;
    expect(rule(cg("iota", "iota", "IOTA", 0.12, 175), cp("miota-iota", "MIOTA", "IOTA", 0.1202, 172))).toBe("id_name");
    expect(rule(cg("zeta-x", "zx", "Zeta X", 3, 50), cp("zx-zeta-x-coin", "ZX", "Zeta X", 3.01, 52))).toBe("name_symbol");
    expect(rule(cg("kestrel-old", "kstold", "Kestrel [OLD]", 0.61, 5300), cp("kst-kestrel", "KST", "Kestrel", 0.611, 5320))).toBe(
      "migrated",
    );
    expect(rule(cg("terrausd", "ustc", "TerraClassicUSD", 0.007, 505), cp("ust-terrausd", "UST", "Terra Dollar", 0.00701, 483))).toBe(
      "id_figures",
    );
    // A renamed original: "X Classic"/"XC" and "X"/"X" with figures agreeing.
    expect(rule(cg("terrane-luna", "trnc", "Terrane Classic", 0.06, 6000), cp("trn-terrane", "TRN", "Terrane", 0.0601, 6015))).toBe(
      "renamed",
    );
    expect(rule(cg("stepn", "gmt", "GMT", 0.025, 405), cp("gmt-green-metaverse", "GMT", "Green Metaverse Token", 0.0251, 410))).toBe(
      "symbol_corroborated",
    );
  });

  it("counts a copy marker on one side against the pair, and a qualifier that names the coin not at all", () => {
    const copy = compare(cg("ethereum-wormhole", "eth", "Ethereum (Wormhole)", 3049, 1620), cp("eth-ethereum", "ETH", "Ethereum", 3050, 2));
    expect(copy).toBeNull();
    const renamed = compare(
      cg("elrond-erd-2", "egld", "MultiversX", 7.5, 232),
      cp("egld-elrond", "EGLD", "MultiversX (Elrond)", 7.51, 217),
    )!;
    expect(renamed.signals.bridge).toBeUndefined();
    expect(renamed.rule).toBe("name_figures");
  });

  it("prefers the unmarked coin to a migrated contract when both fit", () => {
    const paprika = cp("kst-kestrel", "KST", "Kestrel", 0.61, 5320);
    const old = compare(cg("kestrel-old", "kstold", "Kestrel [OLD]", 0.61, 5300), paprika)!;
    const current = compare(cg("kestrel", "kst", "Kestrel", 0.61, 5310), paprika)!;
    expect(old.signals.old).toBe(SCORES.oldMarker);
    expect(current.score).toBeGreaterThan(old.score);
  });

  it("scores a successor 10%+ off in price below the renamed original that agrees", () => {
    const paprika = cp("trn-terrane", "TRN", "Terrane", 0.06, 6015);
    const successor = compare(cg("terrane-2", "trn", "Terrane", 0.072, 6030), paprika)!;
    const original = compare(cg("terrane-classic", "trnc", "Terrane Classic", 0.0601, 6000), paprika)!;
    expect(successor.signals.price).toBeLessThan(0);
    expect(original.score).toBeGreaterThan(successor.score);
  });

  it("vetoes prices more than 50% apart and sizes 20x apart whatever the names", () => {
    expect(figuresVeto(cg("a", "a", "A", 1, null), cp("a-a", "A", "A", 1.6, null))).toBe(true);
    expect(figuresVeto(cg("a", "a", "A", 1, 10), cp("a-a", "A", "A", 1, 250))).toBe(true);
    expect(compare(cg("pepe", "pepe", "Pepe", 4.4e-6, 51), cp("pepe-pepe-bsc", "PEPE", "Pepe", 4.5e-6, 4000))).toBeNull();
  });

  it("still joins a name and symbol priced loosely when nothing better fits, as the weakest strong pair", () => {
    const loose = compare(cg("zeta-x", "zx", "Zeta X", 1, 3000), cp("zx-zeta-x-coin", "ZX", "Zeta X", 1.4, 5000))!;
    expect(loose.rule).toBe("name_symbol");
    expect(loose.score).toBe(SCORES.name + SCORES.symbol + SCORES.price[4][1] + SCORES.rankApart);
    expect(loose.score).toBeGreaterThanOrEqual(STRONG_MIN);
    // Below the pair whose figures agree.
    const agreeing = compare(cg("zeta-x", "zx", "Zeta X", 1.39, 4900), cp("zx-zeta-x-coin", "ZX", "Zeta X", 1.4, 5000))!;
    expect(agreeing.score).toBeGreaterThan(loose.score);
  });

  it("trusts agreeing ranks over market caps 100x apart (one provider's supply figure is off)", () => {
    const a = { ...cg("sample-token", "st", "Sample Token", 17.9, 297), marketCapUsd: 4.2e8 };
    const b = { ...cp("st-sample-token", "ST", "Sample Token", 18.0, 297), marketCapUsd: 7e10 };
    expect(figuresVeto(a, b)).toBe(false);
    expect(compare(a, b)?.rule).toBe("provider_id");
    // Without both ranks the market caps decide.
    expect(figuresVeto({ ...a, rank: null }, b)).toBe(true);
  });
});

describe("grouping steps", () => {
  it("pairs records of different sources that share a key, and CSV ids with each other", () => {
    const records = [
      cg("x", "x", "Xcoin", 1),
      cg("x-2", "x", "Xcoin Two", 1),
      cp("x-xcoin", "X", "Xcoin", 1),
      rec("csv", "x", "X", "Xcoin", 1),
      rec("csv", "x:xcoin", "X", "Xcoin", 1),
    ];
    const pairs = candidatePairs(records.map((r) => ({ r }))).map(([a, b]) => `${recordKey(a)}~${recordKey(b)}`.replaceAll("\u0000", ":"));
    expect(pairs).not.toContain("coingecko:x~coingecko:x-2");
    expect(pairs).toContain("csv:x~csv:x:xcoin");
    expect(pairs).toContain("coingecko:x~coinpaprika:x-xcoin");
  });

  it("tries the strongest pair first", () => {
    const paprika = cp("zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol", 2.41, 400);
    const edges = scoredEdges([
      [cg("zeta-phoenix", "zeph", "Zeta Phoenix", 2.446, 388), paprika],
      [cg("zephyr-protocol", "zeph", "Zephyr Protocol", 2.412, 400), paprika],
    ]);
    expect(edges.map((e) => e.evidence.rule)).toEqual(["provider_id", "symbol_corroborated"]);
  });

  it("gives an asset one id per API source and leaves the weaker claimant on its own", () => {
    const g = groupRecords(
      [
        cg("zeta-phoenix", "zeph", "Zeta Phoenix", 2.446, 388),
        cg("zephyr-protocol", "zeph", "Zephyr Protocol", 2.412, 400),
        cp("zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol", 2.41, 400),
      ].map((r) => ({ r })),
    );
    expect(g.groups.map((k) => k.map((x) => x.split("\u0000")[1]))).toEqual([
      ["zeta-phoenix"],
      ["zephyr-protocol", "zeph-zephyr-protocol"],
    ]);
    // The look-alike is reported: it resembled an asset that already had its source's id.
    expect(g.ambiguous.get("coingecko\u0000zeta-phoenix")).toEqual(["coinpaprika\u0000zeph-zephyr-protocol"]);
  });

  it("does not guess between two weak candidates within the margin", () => {
    const a = cg("alpha-xyz", "xyz", "Alpha XYZ", 2.01, 810);
    const b = cg("beta-xyz", "xyz", "Beta XYZ", 2.0, 790);
    const p = cp("xyz-xyzcoin", "XYZ", "Xyzcoin", 2, 800);
    const g = groupRecords([a, b, p].map((r) => ({ r })));
    expect(g.groups).toHaveLength(3);
    expect(g.ambiguous.get(recordKey(p))).toEqual([recordKey(a), recordKey(b)]);
  });

  it("never joins two pins, and keeps pinned records together", () => {
    const x = cg("x", "x", "Xcoin", 1, 10);
    const y = cp("x-xcoin", "X", "Xcoin", 1, 10);
    const byKey = new Map([
      [recordKey(x), { r: x, pinned: "one" }],
      [recordKey(y), { r: y, pinned: "two" }],
    ]);
    expect(joinGroups(byKey, scoredEdges([[x, y]])).groups).toHaveLength(2);
    byKey.set(recordKey(y), { r: y, pinned: "one" });
    expect(joinGroups(byKey, []).groups).toHaveLength(1);
  });

  it("keeps each uid with the group holding most of its mappings, then its first mapping", () => {
    const look = { ...cg("zeta-phoenix", "zeph", "Zeta Phoenix", 2.446, 388), assetUid: "zeta-phoenix", createdAt: "1" };
    const paprika = { ...cp("zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol", 2.41, 400), assetUid: "zeta-phoenix", createdAt: "2" };
    const known = new Map<string, KnownMapping>([
      [recordKey(look), look],
      [recordKey(paprika), paprika],
    ]);
    const g = groupRecords([look, paprika, cg("zephyr-protocol", "zeph", "Zephyr Protocol", 2.412, 400)].map((r) => ({ r })));
    const uids = assignUids(g, known, new Map());
    expect(uids[g.groupOf.get(recordKey(look))!]).toBe("zeta-phoenix");
    expect(uids[g.groupOf.get(recordKey(paprika))!]).toBeNull();
  });

  it("never moves a pinned mapping, whatever evidence comes later; the asset's other ids stay decided on evidence", () => {
    // An admin pinned the look-alike to CoinPaprika's asset; the true coin then arrives.
    const look = { ...cg("zeta-phoenix", "zeph", "Zeta Phoenix", 2.446, 388), assetUid: "zeph", pinned: true, createdAt: "2" };
    const paprika = { ...cp("zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol", 2.41, 400), assetUid: "zeph", createdAt: "1" };
    const out = decide([cg("zephyr-protocol", "zeph", "Zephyr Protocol", 2.412, 400)], [look, paprika], new Map());
    expect(out.moves.map((m) => m.sourceId)).not.toContain("zeta-phoenix");
    // A pin fixes that id only: CoinPaprika's id is still decided on evidence, and goes with the true coin.
    expect(out.moves).toMatchObject([{ sourceId: "zeph-zephyr-protocol", from: "zeph", to: { fresh: 0 }, rule: "provider_id" }]);
    expect(out.decisions.get("coingecko\u0000zephyr-protocol")).toMatchObject({ assetUid: null, fresh: 0, rule: "provider_id" });
  });

  it("places each group at the uid it keeps or at a new asset named after its best-ranked record", () => {
    const a = cg("zephyr-protocol", "zeph", "Zephyr Protocol", 2.412, 400);
    const b = cp("zeph-zephyr-protocol", "ZEPH", "Zephyr Protocol v1", 2.41, 380);
    const c = cg("zeta-phoenix", "zeph", "Zeta Phoenix", 5, 9000);
    const g = { groups: [[recordKey(a), recordKey(b)], [recordKey(c)]], groupOf: new Map(), joinedBy: new Map(), ambiguous: new Map() };
    const byKey = new Map([a, b, c].map((r) => [recordKey(r), r]));
    const { placements, fresh } = placeGroups(g, [null, "zeta"], (k) => byKey.get(k)!);
    expect(placements).toEqual([{ fresh: 0 }, { assetUid: "zeta" }]);
    expect(fresh).toEqual([b]);
  });

  it("retires a uid whose every mapping moved, into the asset most of them went to", () => {
    // Two CSV ids of one coin made an asset before the API records came; both then join Bitcoin.
    const known: KnownMapping[] = [
      { ...rec("csv", "btc:bitcoin", "BTC", "Bitcoin", 90500), assetUid: "bitcoin-btc", createdAt: "2" },
      { ...cg("bitcoin", "btc", "Bitcoin", 90510, 1), assetUid: "bitcoin", createdAt: "1" },
    ];
    const out = decide([cp("btc-bitcoin", "BTC", "Bitcoin", 90490, 1)], known, new Map());
    expect(out.moves).toMatchObject([{ sourceId: "btc:bitcoin", from: "bitcoin-btc", to: { assetUid: "bitcoin" } }]);
    expect(out.retired).toEqual([{ uid: "bitcoin-btc", into: { assetUid: "bitcoin" } }]);
  });
});
