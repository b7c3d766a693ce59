import { describe, expect, it } from "vitest";
import { parseHeader } from "../src/sources/csv";
import { toNumberish } from "../src/sources/source-quote";

describe("CSV number formats", () => {
  it.each([
    ["91234.5000000000000000", 91234.5],
    ["1.5e-7", 1.5e-7],
    ["$1,234.50", 1234.5],
    ["1,234,567", 1234567],
    ["1.234.567,89", 1234567.89],
    ["90500,12", 90500.12],
    ["2.5%", 2.5],
    ["-3.1 %", -3.1],
    ["1 234.5", 1234.5],
    ["USD 12", 12],
    ["N/A", null],
    ["", null],
    ["-", null],
  ])("%s -> %s", (input, expected) => {
    expect(toNumberish(input)).toBe(expected);
  });

  it.each(["abc", "Infinity", "1,2,3", "12abc", "0x10"])("%s stays text (and is rejected by validation)", (input) => {
    expect(typeof toNumberish(input)).toBe("string");
  });
});

describe("CSV headers", () => {
  it("match aliases whatever the case, spacing, punctuation or unit suffix", () => {
    const h = parseHeader('"Coin ID";"Ticker";"Name";"Price (USD)";"Market Cap (USD)";"Volume (24h)";"% Change 24h";"Last-Updated"');
    expect(h.delimiter).toBe(";");
    expect(h.columns).toEqual(["id", "symbol", "name", "price", "market_cap", "volume_24h", "change_24h", "timestamp"]);
  });

  it("refuse files without a price or identity column, or too wide", () => {
    expect(() => parseHeader("symbol,name")).toThrow(/no price column/);
    expect(() => parseHeader("name,price")).toThrow(/neither a symbol nor an id/);
    expect(() => parseHeader(Array.from({ length: 600 }, (_, i) => `c${i}`).join(","))).toThrow(/600 columns/);
  });
});
