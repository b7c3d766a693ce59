import { describe, expect, it } from "vitest";
import { compare, type Identity } from "../src/unify/evidence";
import { groupRecords, matchKey } from "../src/unify/grouping";
import { markersOf } from "../src/unify/keys";
import { decide } from "../src/unify/matcher";
import { csvRecord, gecko, identityOf, paprika } from "./identities";

/** The classes right without contracts (native coins and CSV rows have none), with invented coins. */

const together = (records: Identity[]) => {
  const g = groupRecords(records.map((r) => ({ r })));
  return (a: Identity, b: Identity) => g.groupOf.get(matchKey(a)) === g.groupOf.get(matchKey(b));
};

describe("a migration marker on one side", () => {
  it('reads "(NEW)" as the coin itself, not a copy', () => {
    expect(markersOf("Brackwater (NEW)")).toMatchObject({ base: "Brackwater", marks: [] });
    const a = gecko("brackwater-new", "brk", "Brackwater (NEW)", 0.73, 610);
    const b = paprika("brk-brackwater", "BRK", "Brackwater", 0.74, 600);
    expect(compare(a, b)?.rule).toBe("name_symbol");
  });
});

describe("a token-standard suffix on one side", () => {
  it("joins the plain name when it has no rival", () => {
    for (const suffix of ["(ERC-20)", "(BEP20)", "(SPL)", "(TRC20)"]) {
      const a = paprika("dnr-dunmore", "DNR", `Dunmore ${suffix}`, 0.12, 880);
      const b = gecko("dunmore", "dnr", "Dunmore", 0.121, 870);
      expect(compare(a, b)?.signals.standard, suffix).toBe(-1);
      expect(together([a, b])(a, b), suffix).toBe(true);
    }
  });

  it("leaves the plain name to a plain rival", () => {
    const suffixed = paprika("dnr-dunmore-erc20", "DNR", "Dunmore (ERC-20)", 0.12, 880);
    const plain = paprika("dnr-dunmore", "DNR", "Dunmore", 0.12, 875);
    const cg = gecko("dunmore", "dnr", "Dunmore", 0.121, 870);
    const same = together([suffixed, plain, cg]);
    expect(same(plain, cg)).toBe(true);
    expect(same(suffixed, cg)).toBe(false);
  });

  it("is not read into a name that is only the suffix", () => {
    expect(markersOf("(ERC20)").base).toBe("(ERC20)");
  });
});

describe("a stablecoin named differently across sources", () => {
  const api = gecko("harbor-dollar", "hbd", "Harbor Dollar", 1.0004, 42);
  it("joins a descriptive name around the ticker on equal symbol and equal small rank", () => {
    const row = identityOf("csv", "hbd-harbor-stable-dollar", "HBD", "HBD Harbor Stable Dollar", 0.9991, 42);
    expect(compare(row, api)?.rule).toBe("symbol_corroborated");
  });
  it("needs both ranks equal and small, and the name words", () => {
    expect(compare(identityOf("csv", "x", "HBD", "HBD Harbor Stable Dollar", 0.9991, 43), api)).toBeNull();
    expect(compare(identityOf("csv", "x", "HBD", "Hollow Bay Dollar", 0.9991, 42), api)).toBeNull();
    const deep = gecko("harbor-dollar", "hbd", "Harbor Dollar", 1.0004, 4200);
    expect(compare(identityOf("csv", "x", "HBD", "HBD Harbor Stable Dollar", 0.9991, 4200), deep)).toBeNull();
    expect(compare(csvRecord("x", "HBD", "HBD Harbor Stable Dollar", 0.9991), api)).toBeNull();
  });
});

describe("a renamed original", () => {
  it('joins "X Classic"/"XC" to "X"/"X" when the figures agree', () => {
    const classic = gecko("quarrystone-classic", "qsc", "Quarrystone Classic", 0.0183, 1400);
    const plain = paprika("qs-quarrystone", "QS", "Quarrystone", 0.0184, 1395);
    expect(compare(classic, plain)?.rule).toBe("renamed");
    expect(compare({ ...classic, symbol: "qs" }, plain)?.rule).toBe("renamed");
  });
  it("keeps them apart when the figures disagree or the ticker is another", () => {
    const plain = paprika("qs-quarrystone", "QS", "Quarrystone", 0.0184, 1395);
    expect(compare(gecko("quarrystone-classic", "qsc", "Quarrystone Classic", 0.011, 1400), plain)).toBeNull();
    expect(compare(gecko("quarrystone-classic", "qtc", "Quarrystone Classic", 0.0183, 1400), plain)?.rule).not.toBe("renamed");
  });
});

describe("a chain suffix on one side", () => {
  it("reads a trailing chain bracket as the plain name, and a bridge bracket not", () => {
    expect(markersOf("Ferrowind (BSC)").plain).toBe("Ferrowind");
    expect(markersOf("Ferrowind (Wormhole)").plain).toBe("");
    expect(markersOf("Bridged Ferrowind (Arbitrum)").plain).toBe("");
  });

  it("joins the plain name when no id of either source goes by it", () => {
    for (const chain of ["(BSC)", "(Arbitrum)", "(Polygon)"]) {
      const a = gecko("ferrowind-onchain", "fwd", `Ferrowind ${chain}`, 0.0412, 2210);
      const b = paprika("fwd-ferrowind", "FWD", "Ferrowind", 0.0415, 2204);
      const evidence = compare(a, b);
      expect(evidence?.rule, chain).toBe("chain_named");
      expect(evidence?.signals.chain, chain).toBe(-1);
      expect(evidence?.signals.bridge, chain).toBeUndefined();
      expect(together([a, b])(a, b), chain).toBe(true);
    }
  });

  it("leaves a suffixed copy apart when its source also lists the plain name", () => {
    const copy = gecko("ferrowind-bsc", "fwd", "Ferrowind (BSC)", 0.0412, 2210);
    const origin = gecko("ferrowind", "fwd", "Ferrowind", 0.0413, 2190);
    const cp = paprika("fwd-ferrowind", "FWD", "Ferrowind", 0.0415, 2204);
    const same = together([copy, origin, cp]);
    expect(same(origin, cp)).toBe(true);
    expect(same(copy, cp)).toBe(false);
    // Even when the copy's figures fit better than its origin's.
    const far = gecko("ferrowind", "fwd", "Ferrowind", 0.052, 2600);
    expect(together([copy, far, cp])(copy, cp)).toBe(false);
  });

  it("decides the same against known mappings, in either order", () => {
    const copy = gecko("ferrowind-bsc", "fwd", "Ferrowind (BSC)", 0.0412, 2210);
    const origin = gecko("ferrowind", "fwd", "Ferrowind", 0.0413, 2190);
    const cp = paprika("fwd-ferrowind", "FWD", "Ferrowind", 0.0415, 2204);
    const known = (r: Identity, assetUid: string) => ({ ...r, assetUid });
    expect(decide([copy], [known(cp, "ferrowind")]).decisions.get(matchKey(copy))?.assetUid).toBe("ferrowind");
    const withRival = [known(cp, "ferrowind"), known(origin, "ferrowind")];
    expect(decide([copy], withRival).decisions.get(matchKey(copy))?.assetUid).not.toBe("ferrowind");
    const first = decide([copy, cp], []);
    expect(first.decisions.get(matchKey(copy))?.fresh).toBe(first.decisions.get(matchKey(cp))?.fresh);
    const later = decide([origin], [known(copy, "ferrowind"), known(cp, "ferrowind")]);
    // The origin arriving splits the pair: it and the plain name are one asset, the copy another.
    expect(later.moves).toHaveLength(1);
    const [moved] = later.moves;
    expect(moved.sourceId).toBe("fwd-ferrowind");
    expect(later.decisions.get(matchKey(origin))?.fresh).toBe((moved.to as { fresh: number }).fresh);
  });

  it("leaves it apart when the plain side's source lists another chain copy", () => {
    const a = gecko("ferrowind-bsc", "fwd", "Ferrowind (BSC)", 0.0412, 2210);
    const b = paprika("fwd-ferrowind", "FWD", "Ferrowind", 0.0415, 2204);
    const other = paprika("fwd-ferrowind-polygon", "FWD", "Ferrowind (Polygon)", 0.0414, 2230);
    expect(together([a, b, other])(a, b)).toBe(false);
  });

  it("keeps them apart when the figures disagree or the ticker is another", () => {
    const b = paprika("fwd-ferrowind", "FWD", "Ferrowind", 0.0415, 2204);
    expect(compare(gecko("ferrowind-bsc", "fwd", "Ferrowind (BSC)", 0.036, 2210), b)).toBeNull();
    expect(compare(gecko("ferrowind-bsc", "fwd", "Ferrowind (BSC)", 0.0412, 3900), b)).toBeNull();
    expect(compare(gecko("ferrowind-bsc", "fwb", "Ferrowind (BSC)", 0.0412, 2210), b)).toBeNull();
    const apart = gecko("ferrowind-bsc", "fwd", "Ferrowind (BSC)", 0.036, 2210);
    expect(together([apart, b])(apart, b)).toBe(false);
  });
});
