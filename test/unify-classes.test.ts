import { describe, expect, it } from "vitest";
import { compare, type Identity } from "../src/unify/evidence";
import { groupRecords, matchKey } from "../src/unify/grouping";
import { markersOf } from "../src/unify/keys";
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
