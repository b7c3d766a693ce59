import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeEach, describe, expect, it } from "vitest";
import { runBatch } from "../src/db/batch";
import { dbFor } from "../src/db/client";
import { clearRedecisionsStatement, pendingRedecisions, removePlatforms, replacePlatformStatements } from "../src/db/contract-store";
import { fenceStatement, LeaseLost, sourceLeaseName } from "../src/db/lease";
import { replayContracts } from "../src/ingest/fetch-contracts";
import { type Contract, compare, type Identity, SCORES } from "../src/unify/evidence";
import { groupRecords, matchKey } from "../src/unify/grouping";
import { forgetMapCopies } from "../src/unify/map-cache";
import { decide, type KnownMapping } from "../src/unify/matcher";
import { redecideContracts } from "../src/unify/resolve";
import { clearTables, marketQuote, rows, storeQuotes, testServices } from "./helpers";
import { csvRecord, gecko, paprika } from "./identities";
import { hookedD1 } from "./interleave";

/** Contracts as evidence (SPEC §5): an equal (chain, address) joins, different addresses on one chain keep apart. */

const ADDR = (n: number) => `0x${n.toString(16).padStart(40, "0")}`;
const on = (r: Identity, ...contracts: [string, string][]): Identity => ({
  ...r,
  contracts: contracts.map(([chain, address]): Contract => ({ chain, address })),
});
const together = (records: Identity[]) => {
  const g = groupRecords(records.map((r) => ({ r })));
  return (a: Identity, b: Identity) => g.groupOf.get(matchKey(a)) === g.groupOf.get(matchKey(b));
};

describe("the contract rule", () => {
  it("joins a rebrand with another name, ticker and id by its address, as the strongest rule", () => {
    const before = on(gecko("quillfeather-network", "qfn", "Quillfeather Network", 0.84, 310), ["ethereum", ADDR(1)]);
    const after = on(paprika("mrl-marrowlight", "MRL", "Marrowlight", 0.85, 305), ["ethereum", ADDR(1)]);
    const e = compare(before, after)!;
    expect(e.rule).toBe("contract");
    expect(e.contract).toBe(`ethereum:${ADDR(1)}`);
    expect(e.signals.contract).toBe(SCORES.contract);
    expect(together([before, after])(before, after)).toBe(true);
  });

  it("joins on any shared address, even when one provider lists more chains, and outlives figures that would veto", () => {
    const a = on(gecko("tidewell", "tdw", "Tidewell", 3, 90), ["ethereum", ADDR(2)], ["polygon-pos", ADDR(3)]);
    // A stale price 10x off: the address still says it is the same token.
    const b = on(paprika("tdw-tidewell-token", "TDW", "Tidewell Token", 30, 95), ["polygon-pos", ADDR(3)]);
    expect(compare(a, b)?.rule).toBe("contract");
  });

  it("wins the asset over a look-alike with the same name and ticker", () => {
    const origin = on(gecko("orbitane", "orb", "Orbitane", 1.2, 200), ["ethereum", ADDR(4)]);
    const renamed = on(paprika("orbx-orbitane-x", "ORBX", "Orbitane X", 1.21, 201), ["ethereum", ADDR(4)]);
    const namesake = on(paprika("orb-orbitane", "ORB", "Orbitane", 1.2, 200), ["solana", "Orb1tane1111111111111111111111111111111111"]);
    const same = together([origin, renamed, namesake]);
    expect(same(origin, renamed)).toBe(true);
    expect(same(origin, namesake)).toBe(false);
  });
});

describe("the contract veto", () => {
  it("keeps two tokens with one name, ticker and price but different addresses on one chain apart", () => {
    const a = on(gecko("velmora", "vlm", "Velmora", 0.42, 500), ["ethereum", ADDR(5)]);
    const b = on(paprika("vlm-velmora", "VLM", "Velmora", 0.42, 500), ["ethereum", ADDR(6)]);
    expect(compare(a, b)).toBeNull();
    expect(together([a, b])(a, b)).toBe(false);
  });

  it("says nothing when the contracts are on different chains, or one side lists none", () => {
    const a = on(gecko("velmora", "vlm", "Velmora", 0.42, 500), ["ethereum", ADDR(5)]);
    const b = on(paprika("vlm-velmora", "VLM", "Velmora", 0.42, 500), ["binance-smart-chain", ADDR(7)]);
    expect(compare(a, b)?.rule).toBe("provider_id");
    expect(compare(a, paprika("vlm-velmora", "VLM", "Velmora", 0.42, 500))?.rule).toBe("provider_id");
  });

  it("keeps a CSV row that matches both out of one asset with two addresses", () => {
    const a = on(gecko("velmora", "vlm", "Velmora", 0.42, 500), ["ethereum", ADDR(5)]);
    const b = on(paprika("vlm-velmora", "VLM", "Velmora", 0.42, 500), ["ethereum", ADDR(6)]);
    const row = csvRecord("csv-velmora", "VLM", "Velmora", 0.42);
    const same = together([a, b, row]);
    expect(same(a, b)).toBe(false);
  });

  it("moves a mapping decided by name when the contracts arrive and disagree, with the contract as evidence", () => {
    const known = (r: Identity, assetUid: string, createdAt: string): KnownMapping => ({ ...r, assetUid, createdAt });
    const cgOld = on(gecko("pellucid", "pel", "Pellucid", 2, 80), ["ethereum", ADDR(8)]);
    const cpWrong = on(paprika("pel-pellucid", "PEL", "Pellucid", 2, 80), ["ethereum", ADDR(9)]);
    const cpRight = on(paprika("pcd-pellucid-dao", "PCD", "Pellucid DAO", 2.01, 82), ["ethereum", ADDR(8)]);
    const out = decide([cpRight], [known(cgOld, "pellucid", "1"), known(cpWrong, "pellucid", "2")]);
    expect(out.decisions.get(matchKey(cpRight))).toMatchObject({ assetUid: "pellucid", rule: "contract" });
    expect(out.moves).toEqual([expect.objectContaining({ sourceId: "pel-pellucid", from: "pellucid", to: { fresh: 0 } })]);
  });
});

const T = "2026-11-22T12:00:00.000Z";
const quote = marketQuote;

const store = storeQuotes;
async function list(source: string, sourceId: string, chain: string, address: string, active = 1) {
  await env.DB.prepare("INSERT INTO source_contracts (source, source_id, chain, address, platform, active) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(source, sourceId, chain, address, chain, active)
    .run();
}
const assetOf = async (source: string, sourceId: string) =>
  (await rows<{ asset_uid: string }>("SELECT asset_uid FROM asset_mappings WHERE source = ? AND source_id = ?", source, sourceId))[0]
    ?.asset_uid;

describe("contracts stored before the pages", () => {
  beforeEach(async () => {
    await clearTables(
      "asset_mappings",
      "assets",
      "quote_buckets",
      "history_buckets",
      "asset_aliases",
      "leases",
      "mapping_moves",
      "source_contracts",
      "contract_platforms",
      "contract_redecisions",
    );
    forgetMapCopies();
  });

  it("join a rebrand listed under another name and ticker", async () => {
    await list("coingecko", "brisant-labs", "ethereum", ADDR(11));
    await list("coinpaprika", "nvq-novaquill", "ethereum", ADDR(11));
    await store("coingecko", "g", [quote("coingecko", "brisant-labs", "brs", "Brisant Labs", 0.31, 700)]);
    await store("coinpaprika", "p", [quote("coinpaprika", "nvq-novaquill", "NVQ", "Novaquill", 0.31, 702)]);
    expect(await assetOf("coinpaprika", "nvq-novaquill")).toBe(await assetOf("coingecko", "brisant-labs"));
    expect(await rows("SELECT rule FROM asset_mappings WHERE source = 'coinpaprika'")).toEqual([{ rule: "contract" }]);
  });

  it("keep namesakes with different addresses on one chain apart; an inactive listing is no evidence", async () => {
    await list("coingecko", "kelvane", "ethereum", ADDR(12));
    await list("coinpaprika", "klv-kelvane", "ethereum", ADDR(13));
    await list("coinpaprika", "hlx-helixor", "ethereum", ADDR(14));
    await list("coingecko", "helixor", "ethereum", ADDR(15), 0);
    await store("coingecko", "g", [
      quote("coingecko", "kelvane", "klv", "Kelvane", 5, 150),
      quote("coingecko", "helixor", "hlx", "Helixor", 9, 160),
    ]);
    await store("coinpaprika", "p", [
      quote("coinpaprika", "klv-kelvane", "KLV", "Kelvane", 5, 150),
      quote("coinpaprika", "hlx-helixor", "HLX", "Helixor", 9, 160),
    ]);
    expect(await assetOf("coinpaprika", "klv-kelvane")).not.toBe(await assetOf("coingecko", "kelvane"));
    expect(await assetOf("coinpaprika", "hlx-helixor")).toBe(await assetOf("coingecko", "helixor"));
  });
});

describe("contracts stored after names decided", () => {
  beforeEach(async () => {
    await clearTables(
      "asset_mappings",
      "assets",
      "quote_buckets",
      "history_buckets",
      "asset_aliases",
      "leases",
      "mapping_moves",
      "source_contracts",
      "contract_platforms",
      "contract_redecisions",
    );
    forgetMapCopies();
  });

  it("decide the mappings they concern again: namesakes split, a rebrand joins, each move recorded with the contract", async () => {
    const { s } = testServices();
    await store("coingecko", "g", [
      quote("coingecko", "ferrovane", "frv", "Ferrovane", 1.7, 210),
      quote("coingecko", "saltmarsh-protocol", "smp", "Saltmarsh Protocol", 0.05, 900),
    ]);
    await store("coinpaprika", "p", [
      quote("coinpaprika", "frv-ferrovane", "FRV", "Ferrovane", 1.7, 210),
      quote("coinpaprika", "tdl-tidal-ledger", "TDL", "Tidal Ledger", 0.05, 905),
    ]);
    // By names: the two Ferrovanes are one coin, Saltmarsh and Tidal Ledger two.
    expect(await assetOf("coinpaprika", "frv-ferrovane")).toBe(await assetOf("coingecko", "ferrovane"));
    expect(await assetOf("coinpaprika", "tdl-tidal-ledger")).not.toBe(await assetOf("coingecko", "saltmarsh-protocol"));

    await list("coingecko", "ferrovane", "ethereum", ADDR(21));
    await list("coinpaprika", "frv-ferrovane", "ethereum", ADDR(22));
    await list("coingecko", "saltmarsh-protocol", "ethereum", ADDR(23));
    await list("coinpaprika", "tdl-tidal-ledger", "ethereum", ADDR(23));
    expect(await redecideContracts(s.db, "coinpaprika", ["frv-ferrovane", "tdl-tidal-ledger", "never-mapped"])).toBe(2);

    expect(await assetOf("coinpaprika", "frv-ferrovane")).not.toBe(await assetOf("coingecko", "ferrovane"));
    expect(await assetOf("coinpaprika", "tdl-tidal-ledger")).toBe(await assetOf("coingecko", "saltmarsh-protocol"));
    const moves = await rows<{ source_id: string; rule: string; evidence: string | null }>(
      "SELECT source_id, rule, evidence FROM mapping_moves ORDER BY id",
    );
    const joined = moves.find((m) => m.rule === "contract")!;
    expect(JSON.parse(joined.evidence!)).toMatchObject({ rule: "contract", contract: `ethereum:${ADDR(23)}` });
    expect(moves.map((m) => m.source_id).sort()).toEqual(expect.arrayContaining(["tdl-tidal-ledger"]));
    // Decided again with nothing new: no move.
    expect(await redecideContracts(s.db, "coinpaprika", ["frv-ferrovane", "tdl-tidal-ledger"])).toBe(0);
  });

  it("are decided again after a worker died between storing them and deciding: the ids are recorded with the change", async () => {
    const { s } = testServices();
    await store("coingecko", "g", [quote("coingecko", "vellumar", "vlm", "Vellumar", 3.3, 420)]);
    await store("coinpaprika", "p", [quote("coinpaprika", "vlm-vellumar", "VLM", "Vellumar", 3.3, 420)]);
    const joined = await assetOf("coingecko", "vellumar");
    expect(await assetOf("coinpaprika", "vlm-vellumar")).toBe(joined);
    await list("coingecko", "vellumar", "ethereum", ADDR(61));
    // CoinPaprika's Ethereum list, replayed: Vellumar at another address.
    const body = [{ address: ADDR(62), id: "vlm-vellumar", type: "ERC20", active: true }];
    const rawId = "run_x-contracts-on-eth-ethereum";
    let dies = true;
    const dying = {
      ...s,
      db: dbFor(
        hookedD1(env.DB, {
          before: ({ sql }) => {
            if (dies && sql.some((q) => q.includes("mapping_moves"))) throw new Error("the worker died");
          },
        }),
      ),
    };
    await expect(replayContracts(dying, "coinpaprika", rawId, body)).rejects.toThrow(/the worker died/);
    dies = false;
    // The list is stored, the decision is not: the ids wait in the same transaction's record.
    expect(await rows("SELECT address FROM source_contracts WHERE source = 'coinpaprika'")).toEqual([{ address: ADDR(62) }]);
    expect(await assetOf("coinpaprika", "vlm-vellumar")).toBe(joined);
    expect(await rows("SELECT source, ids FROM contract_redecisions")).toEqual([{ source: "coinpaprika", ids: '["vlm-vellumar"]' }]);
    // The list again (the message retried): nothing differs from what is stored, and the recorded ids are decided.
    expect(await replayContracts(s, "coinpaprika", rawId, body)).toEqual({ ok: true });
    expect(await assetOf("coinpaprika", "vlm-vellumar")).not.toBe(joined);
    expect(await rows("SELECT source FROM contract_redecisions")).toEqual([]);
  });

  it("are cleared by the rows read only: a clear from a stale read never deletes a row recorded after it", async () => {
    const { s } = testServices();
    const record = (sourceId: string) =>
      s.db.run(sql`INSERT INTO contract_redecisions (source, ids) VALUES ('coinpaprika', ${JSON.stringify([sourceId])})`);
    await record("a-1");
    const first = (await pendingRedecisions(s.db, "coinpaprika"))!;
    // Two deliveries read the same rows; one clears them, then a new change is recorded.
    await s.db.run(clearRedecisionsStatement(first.rows));
    await record("b-2");
    await s.db.run(clearRedecisionsStatement(first.rows));
    expect((await pendingRedecisions(s.db, "coinpaprika"))?.ids).toEqual(["b-2"]);
  });

  it("commit nothing when the refreshing run's lease is gone, and leave the unify lease free", async () => {
    const { s } = testServices();
    await store("coingecko", "g", [quote("coingecko", "orrimet", "orm", "Orrimet", 2.2, 330)]);
    await store("coinpaprika", "p", [quote("coinpaprika", "orm-orrimet", "ORM", "Orrimet", 2.2, 330)]);
    const joined = await assetOf("coingecko", "orrimet");
    expect(await assetOf("coinpaprika", "orm-orrimet")).toBe(joined);
    await list("coingecko", "orrimet", "ethereum", ADDR(41));
    await list("coinpaprika", "orm-orrimet", "ethereum", ADDR(42));
    // A redelivery whose run no longer holds the source lease: its fence fails the write batch.
    const stale = fenceStatement(sourceLeaseName("coinpaprika"), "run-gone");
    await expect(redecideContracts(s.db, "coinpaprika", ["orm-orrimet"], [stale])).rejects.toBeInstanceOf(LeaseLost);
    expect(await assetOf("coinpaprika", "orm-orrimet")).toBe(joined);
    expect(await rows("SELECT source_id FROM mapping_moves")).toEqual([]);
    expect(await rows("SELECT name FROM leases")).toEqual([]);
    // The holder's own run decides them apart.
    expect(await redecideContracts(s.db, "coinpaprika", ["orm-orrimet"])).toBe(1);
    expect(await assetOf("coinpaprika", "orm-orrimet")).not.toBe(joined);
  });

  it("leave with a platform the provider no longer lists: its ids are decided again, and a join only its address made splits", async () => {
    const { s } = testServices();
    await env.DB.prepare(
      "INSERT INTO contract_platforms (source, platform, chain, digest, contracts, updated_at) VALUES ('coinpaprika', 'gone-chain', 'gone-chain', 'd', 1, ?)",
    )
      .bind(T)
      .run();
    await env.DB.prepare(
      "INSERT INTO source_contracts (source, source_id, chain, address, platform, active) VALUES ('coinpaprika', 'qrv-quarrivane', 'gone-chain', ?, 'gone-chain', 1)",
    )
      .bind(ADDR(51))
      .run();
    await list("coingecko", "ostrelle", "gone-chain", ADDR(51));
    await store("coingecko", "g", [quote("coingecko", "ostrelle", "ost", "Ostrelle", 0.7, 640)]);
    await store("coinpaprika", "p", [quote("coinpaprika", "qrv-quarrivane", "QRV", "Quarrivane", 0.7, 641)]);
    expect(await assetOf("coinpaprika", "qrv-quarrivane")).toBe(await assetOf("coingecko", "ostrelle"));

    const ids = await removePlatforms(s.db, "coinpaprika", [["gone-chain", { chain: "gone-chain", digest: "d" }]], []);
    expect(ids).toEqual(["qrv-quarrivane"]);
    // Recorded, in the transaction that removed them, to be decided again.
    expect(await rows("SELECT ids FROM contract_redecisions WHERE source = 'coinpaprika'")).toEqual([{ ids: '["qrv-quarrivane"]' }]);
    expect(await rows("SELECT source_id FROM source_contracts WHERE source = 'coinpaprika'")).toEqual([]);
    expect(await rows("SELECT platform FROM contract_platforms WHERE source = 'coinpaprika'")).toEqual([]);
    expect(await redecideContracts(s.db, "coinpaprika", ids)).toBe(1);
    expect(await assetOf("coinpaprika", "qrv-quarrivane")).not.toBe(await assetOf("coingecko", "ostrelle"));
  });

  it("are the ids a stored refresh reports as changed", async () => {
    const { s } = testServices();
    const list1 = {
      platform: "ethereum",
      chain: "ethereum",
      rows: [{ sourceId: "a-1", chain: "ethereum", address: ADDR(31), active: true }],
    };
    const first = await replacePlatformStatements(s.db, "coinpaprika", list1, "d1", undefined, T);
    expect(first.ids).toEqual(["a-1"]);
    await runBatch(s.db, first.statements);
    const list2 = { ...list1, rows: [{ sourceId: "b-2", chain: "ethereum", address: ADDR(32), active: true }] };
    const second = await replacePlatformStatements(s.db, "coinpaprika", list2, "d2", { chain: "ethereum", digest: "d1" }, T);
    expect(second.ids).toEqual(["a-1", "b-2"]);
  });
});
