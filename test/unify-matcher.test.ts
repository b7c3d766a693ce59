import { describe, expect, it } from "vitest";
import { idKey } from "../src/unify/keys";
import { type Decision, decide, type Identity, type KnownMapping, matchKey } from "../src/unify/matcher";
import { csvRecord, gecko, paprika } from "./identities";

/** Focused cases for the pure matcher: one rule or guard per test. */

const csv = csvRecord;
const on = (assetUid: string, ...rs: Identity[]): KnownMapping[] => rs.map((r) => ({ ...r, assetUid }));

function one(r: Identity, known: KnownMapping[], pinned = new Map<string, string>()): Decision {
  return decide([r], known, pinned).decisions.get(matchKey(r))!;
}
const decisionsOf = (records: Identity[], known: KnownMapping[]) => decide(records, known, new Map()).decisions;

describe("idKey", () => {
  it("drops CoinPaprika's symbol prefix, even a symbol the coin no longer uses", () => {
    expect(idKey("coinpaprika", "bnb-binance-coin", "BNB")).toBe("binancecoin");
    expect(idKey("coinpaprika", "rndr-render-token", "RENDER")).toBe("rendertoken");
    expect(idKey("coinpaprika", "ust-terrausd", "USTC")).toBe("terrausd");
    expect(idKey("coinpaprika", "btcb-bitcoin-avalanche", "BTC.B")).toBe("bitcoinavalanche");
    expect(idKey("coinpaprika", "plain", "X")).toBe("plain");
  });

  it("keeps other providers' ids whole, and reads a derived CSV id's name part", () => {
    expect(idKey("coingecko", "usd-coin", "usdc")).toBe("usdcoin");
    expect(idKey("csv", "binance-coin", "BNB")).toBe("binancecoin");
    expect(idKey("csv", "btc:bitcoin", "BTC")).toBe("bitcoin");
  });
});

describe("decide", () => {
  it("joins on the same id slug and symbol", () => {
    const known = on("bnb", gecko("binancecoin", "bnb", "BNB", 880, 4, 1.3e11));
    expect(one(csv("binance-coin", "BNB", "Binance Coin", 881, 1.3e11), known)).toMatchObject({ assetUid: "bnb", rule: "provider_id" });
  });

  it("joins a changed ticker only with the same id and name and agreeing figures", () => {
    const known = on("iota", gecko("iota", "iota", "IOTA", 0.12, 175, 4.5e8));
    expect(one(paprika("miota-iota", "MIOTA", "IOTA", 0.1202, 172, 4.5e8), known).assetUid).toBe("iota");
    // Same id and name, but another price: not the same coin.
    expect(one(paprika("miota-iota", "MIOTA", "IOTA", 0.2, 172, 7e8), known).assetUid).toBeNull();
  });

  it("joins a renamed, re-tickered coin on its id slug when price and size agree", () => {
    const known = on(
      "ustc",
      gecko("terrausd", "ustc", "TerraClassicUSD", 0.007, 505, 6e7),
      paprika("ust-terrausd", "USTC", "TerraClassicUSD", 0.007, 483, 6e7),
    );
    // The old name is the id slug: id and name.
    expect(one(csv("terrausd", "UST", "TerraUSD", 0.00701, 6e7), known)).toMatchObject({ assetUid: "ustc", rule: "id_name" });
    // Only the slug is left: id and figures.
    expect(one(csv("terrausd", "UST", "Terra Dollar", 0.00701, 6e7), known)).toMatchObject({ assetUid: "ustc", rule: "id_figures" });
    // The same slug with a size 50x off is a namesake.
    expect(one(csv("terrausd", "UST", "TerraUSD", 0.00701, 3e9), known).assetUid).toBeNull();
  });

  it("never joins on the symbol alone", () => {
    const known = on("gmt", gecko("stepn", "gmt", "GMT", 0.025, 405, 7e7));
    // Same ticker, other name, price 16x off.
    expect(one(paprika("gmt-gomining-token", "GMT", "GoMining Token", 0.4, 380, 1.6e8), known).assetUid).toBeNull();
    // Same ticker and price, but a size 20x smaller: a bridged copy.
    expect(one(paprika("gmt-bridged", "GMT", "GMT (Wormhole)", 0.025, 5200, 3e6), known).assetUid).toBeNull();
    // Same ticker, price and size: corroborated.
    expect(one(paprika("gmt-green-metaverse", "GMT", "Green Metaverse Token", 0.0251, 410, 7e7), known)).toMatchObject({
      assetUid: "gmt",
      rule: "symbol_corroborated",
    });
  });

  it("does not take a $1 price as evidence when sizes are unknown", () => {
    const known = on("usds", gecko("usds", "usds", "USDS", 0.9996, null, null));
    expect(one(csv("stableusd", "USDS", "StableUSD", 0.999), known).assetUid).toBeNull();
    // A non-pegged price that close still counts (with nothing against it).
    const other = on("abc", gecko("abc-chain", "abc", "ABC Chain", 4.2, null, null));
    expect(one(csv("alpha-beta", "ABC", "Alpha Beta", 4.21), other).assetUid).toBe("abc");
  });

  it("refuses a name match when the market caps are 100x apart (a copycat)", () => {
    const known = on("pepe", gecko("pepe", "pepe", "Pepe", 4.4e-6, 51, 1.8e9));
    expect(one(paprika("pepe-pepe-bsc", "PEPE", "Pepe", 4.5e-6, 4000, 9e5), known).assetUid).toBeNull();
    expect(one(paprika("pepe-pepe", "PEPE", "Pepe", 4.41e-6, 44, 1.8e9), known).assetUid).toBe("pepe");
  });

  it("gives an asset at most one id per API source, to the closest claimant", () => {
    const known = on("weth", csv("weth", "WETH", "Wrapped Ether", 3049, 8e9));
    const real = gecko("weth", "weth", "WETH", 3049, 25, 8e9);
    const pegged = gecko("binance-peg-weth", "weth", "Binance-Peg WETH", 3051, 59, 3e8);
    const d = decisionsOf([pegged, real], known);
    expect(d.get(matchKey(real))!.assetUid).toBe("weth");
    expect(d.get(matchKey(pegged))!.assetUid).toBeNull();
    // Once the asset has its CoinGecko id, no other CoinGecko id can join it.
    expect(one(pegged, [...known, ...on("weth", real)]).assetUid).toBeNull();
  });

  it("does not guess between two same-batch records of about the same size under the weak rule", () => {
    const known = on("xyz", paprika("xyz-xyzcoin", "XYZ", "Xyzcoin", 2, 800, 5e7));
    const a = gecko("alpha-xyz", "xyz", "Alpha XYZ", 2.01, 810, 5e7);
    const b = gecko("beta-xyz", "xyz", "Beta XYZ", 2.0, 790, 5.2e7);
    const d = decisionsOf([a, b], known);
    expect(d.get(matchKey(a))!.assetUid).toBeNull();
    expect(d.get(matchKey(b))!.assetUid).toBeNull();
  });

  it("lets CSV ids share an asset", () => {
    const known = on("bitcoin", gecko("bitcoin", "btc", "Bitcoin", 90500, 1, 1.8e12));
    const d = decisionsOf([csv("bitcoin", "BTC", "Bitcoin", 90510), csv("btc:bitcoin", "BTC", "Bitcoin", 90490)], known);
    expect([...d.values()].map((x) => x.assetUid)).toEqual(["bitcoin", "bitcoin"]);
  });

  it("answers pinned, then known, before any rule", () => {
    const r = paprika("eth-ethereum", "ETH", "Ethereum", 3050, 2, 3.7e11);
    const known = on("ethereum", gecko("ethereum", "eth", "Ethereum", 3050, 2, 3.7e11), r);
    expect(one(r, known)).toEqual({ assetUid: "ethereum", rule: "known" });
    expect(one(r, known, new Map([[matchKey(r), "my-eth"]]))).toEqual({ assetUid: "my-eth", rule: "pinned" });
  });

  it("decides the same whatever the order of records and known mappings", () => {
    const known = [
      ...on("eth", gecko("ethereum", "eth", "Ethereum", 3050, 2, 3.7e11)),
      ...on("eth-wormhole", gecko("ethereum-wormhole", "eth", "Ethereum (Wormhole)", 3049, 1620, 2e6)),
      ...on("sol", gecko("solana", "sol", "Solana", 135, 6, 7e10)),
      ...on("wsol", gecko("wrapped-solana", "sol", "Wrapped SOL", 134.9, 648, 1e8)),
      ...on("strk", gecko("starknet", "strk", "Starknet", 0.12, 152, 4e8)),
      ...on("strike", gecko("strike", "strk", "Strike", 0.5, 1190, 2e6)),
    ];
    const records = [
      paprika("eth-ethereum", "ETH", "Ethereum", 3051, 2, 3.7e11),
      paprika("sol-solana", "SOL", "Solana", 135.2, 6, 7e10),
      paprika("strk-starknet", "STRK", "Starknet", 0.1201, 141, 4e8),
      paprika("strk-strike", "STRK", "Strike", 0.5, 1084, 2e6),
      paprika("atom-atomic-coin", "ATOM", "Atomic Coin", 0.001, 6200, 1e4),
    ];
    const render = (d: Map<string, Decision>) => [...d].sort(([a], [b]) => (a < b ? -1 : 1));
    const reference = render(decisionsOf(records, known));
    expect(reference.map(([, d]) => d.assetUid)).toEqual([null, "eth", "sol", "strk", "strike"]);
    for (let i = 1; i < 6; i++) {
      const rot = <T>(xs: T[]) => [...xs.slice(i % xs.length), ...xs.slice(0, i % xs.length)].reverse();
      expect(render(decisionsOf(rot(records), rot(known)))).toEqual(reference);
    }
  });

  it("decides a record listed twice in one batch once", () => {
    const r = gecko("solana", "sol", "Solana", 135, 6, 7e10);
    const d = decisionsOf([r, { ...r }], on("sol", paprika("sol-solana", "SOL", "Solana", 135, 6, 7e10)));
    expect(d.size).toBe(1);
    expect(d.get(matchKey(r))!.assetUid).toBe("sol");
  });
});
