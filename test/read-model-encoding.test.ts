import { beforeAll, describe, expect, it } from "vitest";
import { SOURCES, type Source } from "../src/config";
import { type AssetSummary, encodeSnapshot, ReadModel, SORT_KEYS, type SortKey } from "../src/db/read-model";
import { encodeSections, packSnapshot, SnapshotSections, uintSection } from "../src/db/snapshot-format";

describe("uint sections", () => {
  it("keep every value, in the fewest bytes that hold the largest", () => {
    const cases: [number[], number][] = [
      [[], 1],
      [[0, 1, 255], 1],
      [[0, 256, 65_535, 7], 2],
      [[65_536, 0, 2 ** 24 - 1], 3],
      [[2 ** 24, 2 ** 32 - 1, 0, 123_456_789], 4],
    ];
    cases.forEach(([values, width], k) => {
      const encoded = encodeSections({ version: 1, built_at: "", size: 0, quotes: {}, fx: [] }, [uintSection(`s${k}`, values)]);
      const read = SnapshotSections.unpack(packSnapshot(encoded).buffer as ArrayBuffer).uint(`s${k}`);
      expect(read.width).toBe(width);
      expect(Array.from({ length: read.length }, (_, i) => read.get(i))).toEqual(values);
    });
  });

  it("refuse what is not an unsigned 32-bit integer", () => {
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) expect(() => uintSection("bad", [0, bad])).toThrow(/not an unsigned/);
  });
});

describe("the /data snapshot's encoding", () => {
  // Above 65,536 rows, so every row index takes 3 bytes; above 256 distinct times, so `updated` takes 2.
  const N = 70_000;
  const times = Array.from({ length: 300 }, (_, t) => new Date(Date.UTC(2026, 0, 1) + t * 60_000).toISOString());
  const awkward = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0, 1 / 3, 123456789.12345679, -99.99];
  const assets: AssetSummary[] = Array.from({ length: N }, (_, i) => {
    const sources = SOURCES.filter((_, k) => (i >> k) % 2 === 1 || (i & 7) === 0);
    const uid = `a-${(i * 7919) % N}`;
    // A source's id is the uid (stored as a marker), its own, or non-ASCII text.
    const idAt = (src: Source, k: number) => ((i + k) % 3 === 0 ? uid : (i + k) % 3 === 1 ? `${src}-${i}` : `ü-${i}-€`);
    return {
      asset_uid: uid,
      symbol: `S${i % 5000}`,
      name: i % 11 === 0 ? `Ñame ${i}` : `name ${i % 20_000}`,
      rank: i % 13 === 0 ? null : (i * 31) % 100_000,
      price_usd: i % 17 === 0 ? null : i % 5 === 0 ? awkward[i % awkward.length] : i * 1.000001,
      market_cap_usd: i % 19 === 0 ? null : i * 99.25 + 0.1,
      volume_24h_usd: i % 23 === 0 ? null : ((i * 7919) % 1000) / 7,
      change_24h_pct: i % 29 === 0 ? null : ((i * 31) % 200) - 100.5,
      spread_pct: null,
      fresh_sources: sources.length,
      sources,
      source_ids: Object.fromEntries(sources.map((src, k) => [src, idAt(src, k)])),
      updated_at: times[(i * 37) % times.length],
    };
  });
  const aliases: [string, string][] = [
    ["old-a-1", "a-1"],
    ["older-a-1", "a-1"],
    ["gone", "a-no-such"],
  ];
  const encoded = encodeSnapshot({ version: 7, built_at: "2026-01-01T00:00:00.000Z", quotes: { csv: N }, fx: [] }, assets, aliases);
  const stored = packSnapshot(encoded);
  const fetched = () => new ReadModel(SnapshotSections.unpack(stored.slice().buffer as ArrayBuffer));
  const served = (a: AssetSummary) => {
    const { spread_pct: _s, fresh_sources: _f, ...asset } = a;
    return { ...asset, source_ids: Object.fromEntries(a.sources.map((src) => [src, a.source_ids[src]])) };
  };
  const byUid = (a: AssetSummary, b: AssetSummary) => (a.asset_uid < b.asset_uid ? -1 : a.asset_uid > b.asset_uid ? 1 : 0);
  const num = (v: number | null) => v ?? Number.NEGATIVE_INFINITY;
  const text = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  const compare: Record<SortKey, (a: AssetSummary, b: AssetSummary) => number> = {
    rank: (a, b) => (a.rank ?? Number.POSITIVE_INFINITY) - (b.rank ?? Number.POSITIVE_INFINITY),
    market_cap: (a, b) => num(a.market_cap_usd) - num(b.market_cap_usd),
    price: (a, b) => num(a.price_usd) - num(b.price_usd),
    volume: (a, b) => num(a.volume_24h_usd) - num(b.volume_24h_usd),
    change_24h: (a, b) => num(a.change_24h_pct) - num(b.change_24h_pct),
    symbol: (a, b) => text(a.symbol.toLowerCase(), b.symbol.toLowerCase()),
    name: (a, b) => text(a.name.toLowerCase(), b.name.toLowerCase()),
  };
  const sorted = (sort: SortKey, of = assets) => [...of].sort((a, b) => compare[sort](a, b) || byUid(a, b)).map((a) => a.asset_uid);

  it("stores every index in 3 bytes above 65,536 rows, `updated` in 2 above 256 times, and a uid once", () => {
    const built = SnapshotSections.unpack(stored.slice().buffer as ArrayBuffer);
    const { sections } = built.header;
    // Row 0 is a-0 (assets[0]), whose coingecko id is its uid: a one-byte marker stands for it.
    expect([assets[0].asset_uid, assets[0].source_ids.coingecko]).toEqual(["a-0", "a-0"]);
    const { first, views } = built.block(0);
    expect(first).toBe(0);
    expect(views.text("rows").get(0).split("\u0001")).toEqual(["a-0", "S0", "Ñame 0", "\u0002", "coinpaprika-0", "ü-0-€"]);
    for (const name of [...SORT_KEYS.map((s) => `order:${s}`), ...SOURCES.map((s) => `ids:${s}`), "rows.offsets"])
      expect([name, sections[name][2], sections[name][3]]).toEqual([name, "uint", 3]);
    expect(sections.updated.slice(2)).toEqual(["uint", 2]);
    expect(sections.alias_rows.slice(1)).toEqual([2, "uint", 1]);
  });

  it("inflates, in a fetched copy, a page's order and its rows' blocks only, and the rest behind the requests", async () => {
    const model = fetched();
    const sections = (model as unknown as { s: SnapshotSections }).s;
    const members = sections.pending;
    expect(stored.byteLength).toBeLessThan(encoded.data.byteLength);
    const page = model.list({ page: 1000, pageSize: 50, sort: "market_cap", order: "desc" }).items;
    expect(page.map((a) => a.asset_uid)).toEqual(sorted("market_cap").reverse().slice(49_950, 50_000));
    // The order, the flags and times read on load, and at most a block for each of the 50 rows.
    expect(members - sections.pending).toBeGreaterThan(3);
    expect(members - sections.pending).toBeLessThanOrEqual(3 + 50);
    await model.complete();
    expect(sections.pending).toBe(0);
    expect(model.list({ page: 1000, pageSize: 50, sort: "market_cap", order: "desc" }).items).toEqual(page);
  });

  it("refuses a stored snapshot whose members do not add up, or in another format", () => {
    expect(() => SnapshotSections.unpack(stored.slice(0, stored.byteLength - 1).buffer as ArrayBuffer)).toThrow(/do not add up/);
    const other = stored.slice();
    other.set(new TextEncoder().encode("CFS3"), 0);
    expect(() => SnapshotSections.unpack(other.buffer as ArrayBuffer)).toThrow(/not a coinfuse snapshot/);
  });

  describe.each([
    ["inflated as read", false],
    ["inflated whole first", true],
  ])("a copy %s", (_, whole) => {
    const model = fetched();
    beforeAll(async () => {
      if (whole) await model.complete();
    });
    const all = (sort: SortKey, order: "asc" | "desc" = "asc") => model.list({ page: 1, pageSize: N, sort, order }).items;

    it("serves every field of every asset as it was encoded, bit for bit", () => {
      const got = new Map(all("name").map((a) => [a.asset_uid, a]));
      expect(got.size).toBe(N);
      for (const a of assets) expect(got.get(a.asset_uid)).toStrictEqual(served(a));
      expect(Object.is(got.get(assets[10].asset_uid)!.price_usd, -0)).toBe(true);
    });

    it("keeps every sort order, ties broken by uid, and reads it backwards for desc", () => {
      for (const sort of SORT_KEYS) {
        const want = sorted(sort);
        expect(all(sort).map((a) => a.asset_uid)).toEqual(want);
        expect(all(sort, "desc").map((a) => a.asset_uid)).toEqual(want.reverse());
      }
    });

    it("finds assets by uid, alias and every source's id, the uid's own included", () => {
      const find = (ids: string[]) => model.list({ page: 1, pageSize: 50, sort: "rank", order: "asc", ids }).items.map((a) => a.asset_uid);
      for (const i of [0, 1, 2, 3, 4, 5, 8, 69_999]) {
        const a = assets[i];
        expect(find([a.asset_uid])).toEqual([a.asset_uid]);
        for (const src of a.sources) expect([src, find([`${src}:${a.source_ids[src]}`])]).toEqual([src, [a.asset_uid]]);
      }
      expect(find(["old-a-1"])).toEqual(["a-1"]);
      expect(find(["older-a-1", "gone", "csv:nothing", "a-no-such"])).toEqual(["a-1"]);
    });

    it("filters by source, symbol and name prefix as the stored orders say", () => {
      const list = (f: { source?: Source; symbol?: string; q?: string }) =>
        model.list({ page: 1, pageSize: N, sort: "market_cap", order: "desc", ...f });
      const bySource = list({ source: "coinpaprika" });
      expect(bySource.total).toBe(assets.filter((a) => a.sources.includes("coinpaprika")).length);
      expect(bySource.items.every((a) => a.sources.includes("coinpaprika"))).toBe(true);
      expect(list({ symbol: "s42" }).items.map((a) => a.symbol)).toEqual(Array(14).fill("S42"));
      const named = assets.filter((a) => a.name.toLowerCase().startsWith("ñame 1"));
      expect(list({ q: "ñame 1" }).items.map((a) => a.asset_uid)).toEqual(sorted("market_cap", named).reverse());
    });
  });
});
