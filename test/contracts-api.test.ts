import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import geckoPage2 from "../data/coingecko/markets-page-2.json";
import paprika from "../data/coinpaprika/tickers.json";
import type { Env } from "../src/env";
import { startSourceRun } from "../src/ingest/start-run";
import { parseContractRef } from "../src/schemas/contracts";
import { api, drain, json, rows, stubUpstream, testServices } from "./helpers";

// Contracts as the providers list them (mixed-case EVM addresses at CoinGecko, lowercase at CoinPaprika).
const USDT_ETH = "0xdAC17F958D2ee523a2206206994597C13D831ec7";
const USDT_TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
const USDC_ETH = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const USDC_SOL = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const LINK_ETH = "0x514910771AF9Ca656af840dff83E8264EcF986CA";

const coinsList = [
  ...[...geckoPage1, ...geckoPage2].map((c) => ({
    id: c.id,
    symbol: c.symbol,
    name: c.name,
    platforms: {} as Record<string, string | null>,
  })),
];
const platformsOf: Record<string, Record<string, string | null>> = {
  tether: { ethereum: USDT_ETH, tron: USDT_TRON, "binance-smart-chain": "" },
  "usd-coin": { ethereum: USDC_ETH, solana: USDC_SOL },
  chainlink: { ethereum: LINK_ETH, "polygon-pos": null },
  bitcoin: { "": "" },
};
for (const c of coinsList) c.platforms = platformsOf[c.id] ?? {};

const paprikaContracts: Record<string, unknown[]> = {
  "eth-ethereum": [
    { address: USDT_ETH.toLowerCase(), id: "usdt-tether", type: "ERC20", active: true },
    { address: USDC_ETH.toLowerCase(), id: "usdc-usd-coin", type: "ERC20", active: true },
    { address: "0x1111111111111111111111111111111111111111", id: "usdt-tether", type: "ERC20", active: false },
  ],
  "trx-tron": [{ address: USDT_TRON, id: "usdt-tether", type: "TRC20", active: true }],
};

const upstream = stubUpstream((url) => {
  const p = url.pathname;
  if (p.endsWith("/coins/list")) return json(coinsList);
  if (p.endsWith("/coins/markets")) return json([geckoPage1, geckoPage2][Number(url.searchParams.get("page")) - 1] ?? []);
  if (p.endsWith("/v1/tickers")) return json(paprika);
  if (p.endsWith("/v1/contracts")) return json(Object.keys(paprikaContracts));
  const platform = p.split("/v1/contracts/")[1];
  return platform && paprikaContracts[platform] ? json(paprikaContracts[platform]) : undefined;
});

type Listed = { data: { asset_uid: string; source_ids: Record<string, string> }[]; metadata: { total: number } };
const lookup = async (q: string) => (await api(`/data?page_size=250&contract=${encodeURIComponent(q)}`)).json<Listed>();
const uids = (r: Listed) => r.data.map((a) => a.asset_uid).sort();

let tether = "";
let usdc = "";
let link = "";

beforeAll(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
  const { s, sent } = testServices({
    fetch: upstream.fetch,
    vars: {
      COINGECKO_REQUESTS_PER_MINUTE: "60000",
      COINPAPRIKA_REQUESTS_PER_MINUTE: "60000",
      IDENTITY_REFRESH_HOURS: "24",
    } as Partial<Env>,
  });
  for (const source of ["coingecko", "coinpaprika"] as const) {
    const start = await startSourceRun(s, source, "manual");
    if (!start.started) throw new Error(`${source} not started`);
    await drain(s, sent);
  }
  const uidOf = async (id: string) =>
    (await rows<{ asset_uid: string }>("SELECT asset_uid FROM asset_mappings WHERE source = 'coingecko' AND source_id = ?", id))[0]
      .asset_uid;
  [tether, usdc, link] = [await uidOf("tether"), await uidOf("usd-coin"), await uidOf("chainlink")];
});

describe("GET /data?contract=", () => {
  it("finds the asset of a contract: EVM addresses in any case, others exactly", async () => {
    expect(uids(await lookup(`ethereum:${USDT_ETH.toUpperCase().replace("0X", "0x")}`))).toEqual([tether]);
    expect(uids(await lookup(`Ethereum:${USDT_ETH.toLowerCase()}`))).toEqual([tether]);
    expect(uids(await lookup(`ETHEREUM:0X${USDT_ETH.slice(2)}`))).toEqual([tether]);
    expect(uids(await lookup(`solana:${USDC_SOL}`))).toEqual([usdc]);
    expect(uids(await lookup(`solana:${USDC_SOL.toLowerCase()}`))).toEqual([]);
    expect(uids(await lookup(`tron:${USDT_TRON}`))).toEqual([tether]);
  });

  it("takes many at once, leaves unknown ones out, and counts only what it found", async () => {
    const r = await lookup(`ethereum:${USDT_ETH},ethereum:${LINK_ETH},bsc:0x000000000000000000000000000000000000dead,nochain:x`);
    expect(uids(r)).toEqual([link, tether].sort());
    expect(r.metadata.total).toBe(2);
    // An inactive contract is still found.
    expect(uids(await lookup("ethereum:0x1111111111111111111111111111111111111111"))).toEqual([tether]);
  });

  it("splits each pair at its last colon", async () => {
    expect(parseContractRef("sui:0x2::sui::SUI")).toEqual({ chain: "sui:0x2::sui:", address: "SUI" });
    expect(parseContractRef(" Ethereum : 0xABCDEFabcdef0123456789012345678901234567 ")).toEqual({
      chain: "ethereum",
      address: "0xabcdefabcdef0123456789012345678901234567",
    });
    expect((await api(`/data?contract=${encodeURIComponent("a:b:c")}`)).status).toBe(200);
  });

  it("answers 400 naming the parameter for a pair without a colon or with an empty side, and for more than 250", async () => {
    for (const bad of ["not-a-contract", `:${USDT_ETH}`, "ethereum:", `ethereum:${USDT_ETH},`]) {
      const res = await api(`/data?contract=${encodeURIComponent(bad)}`);
      expect(res.status).toBe(400);
      const body = await res.json<{ error: { code: string; message: string } }>();
      expect(body.error.code).toBe("validation_error");
      expect(body.error.message).toContain("contract");
    }
    const many = (n: number) => Array.from({ length: n }, (_, i) => `ethereum:0x${i.toString(16).padStart(40, "0")}`);
    const ok = await api(`/data?contract=${[...many(249), `ethereum:${USDC_ETH}`].join(",")}`);
    expect(ok.status).toBe(200);
    expect(uids(await ok.json<Listed>())).toEqual([usdc]);
    expect((await api(`/data?contract=${many(251).join(",")}`)).status).toBe(400);
  });

  it("combines with ids and the other filters, and with the export", async () => {
    const both = `ethereum:${USDT_ETH},ethereum:${USDC_ETH}`;
    expect(uids(await (await api(`/data?contract=${both}&ids=${usdc},bitcoin`)).json<Listed>())).toEqual([usdc]);
    expect(uids(await (await api(`/data?contract=${both}&symbol=USDT`)).json<Listed>())).toEqual([tether]);
    const csv = await (await api(`/data/export?format=csv&contract=${both}`)).text();
    expect(csv.trim().split("\r\n")).toHaveLength(3);
  });
});

describe("AssetDetail.contracts", () => {
  it("lists each contract of the asset's ids once, with every source that lists it and an explorer link", async () => {
    const body = await (await api(`/data/${tether}`)).json<{
      data: { contracts: { chain: string; address: string; sources: string[]; active: boolean; explorer_url: string | null }[] };
    }>();
    expect(body.data.contracts).toEqual([
      {
        chain: "ethereum",
        address: "0x1111111111111111111111111111111111111111",
        sources: ["coinpaprika"],
        active: false,
        explorer_url: "https://etherscan.io/token/0x1111111111111111111111111111111111111111",
      },
      {
        chain: "ethereum",
        address: USDT_ETH.toLowerCase(),
        sources: ["coingecko", "coinpaprika"],
        active: true,
        explorer_url: `https://etherscan.io/token/${USDT_ETH.toLowerCase()}`,
      },
      {
        chain: "tron",
        address: USDT_TRON,
        sources: ["coingecko", "coinpaprika"],
        active: true,
        explorer_url: `https://tronscan.org/#/token20/${USDT_TRON}`,
      },
    ]);
    const btc = await (await api("/data/bitcoin")).json<{ data: { contracts: unknown[] } }>();
    expect(btc.data.contracts).toEqual([]);
  });
});

describe("GET /mappings/export", () => {
  const parseCsv = (text: string) =>
    text
      .trim()
      .split("\r\n")
      .map((line) => line.split(","));

  it("streams the crosswalk as CSV, one asset a row, every /data asset once", async () => {
    const total = (await (await api("/data?page_size=1")).json<Listed>()).metadata.total;
    const res = await api("/mappings/export?format=csv");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/csv");
    const [head, ...body] = parseCsv(await res.text());
    expect(head).toEqual([
      "asset_uid",
      "symbol",
      "name",
      "coingecko_id",
      "coinpaprika_id",
      "csv_id",
      "contracts",
      "rules",
      "pinned",
      "other_ids",
      "aliases",
    ]);
    expect(body).toHaveLength(total);
    expect(new Set(body.map((r) => r[0])).size).toBe(total);
    const col = (row: string[], name: string) => row[head.indexOf(name)];
    const btc = body.find((r) => r[0] === "bitcoin")!;
    expect([col(btc, "coingecko_id"), col(btc, "coinpaprika_id"), col(btc, "contracts")]).toEqual(["bitcoin", "btc-bitcoin", ""]);
    expect(col(btc, "rules")).toMatch(/^coingecko:\S+ coinpaprika:\S+$/);
    const usdt = body.find((r) => r[0] === tether)!;
    expect(col(usdt, "contracts").split(" ")).toEqual([
      "ethereum:0x1111111111111111111111111111111111111111",
      `ethereum:${USDT_ETH.toLowerCase()}`,
      `tron:${USDT_TRON}`,
    ]);
  });

  it("streams the crosswalk as NDJSON: ids, contracts, mappings and aliases a line", async () => {
    const total = (await (await api("/data?page_size=1")).json<Listed>()).metadata.total;
    const res = await api("/mappings/export?format=ndjson");
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(total);
    const usdc_ = lines.find((l) => l.asset_uid === usdc);
    expect(usdc_).toMatchObject({
      source_ids: { coingecko: "usd-coin", coinpaprika: "usdc-usd-coin" },
      contracts: [
        { chain: "ethereum", address: USDC_ETH.toLowerCase(), sources: ["coingecko", "coinpaprika"], active: true },
        { chain: "solana", address: USDC_SOL, sources: ["coingecko"], active: true },
      ],
      aliases: [],
    });
    expect(usdc_.mappings.map((m: { source: string }) => m.source)).toEqual(["coingecko", "coinpaprika"]);
    expect(lines.every((l) => Array.isArray(l.contracts) && Array.isArray(l.mappings) && typeof l.source_ids === "object")).toBe(true);
    expect((await api("/mappings/export?format=xml")).status).toBe(400);
  });

  it("is in the OpenAPI document, with the contract lookup and the detail's contracts", async () => {
    const doc = await (await api("/openapi.json")).json<{
      paths: Record<string, { get: { parameters?: { name: string }[] } }>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    }>();
    expect(doc.paths["/mappings/export"]).toBeDefined();
    expect(doc.paths["/data"].get.parameters?.map((p) => p.name)).toContain("contract");
    expect(JSON.stringify(doc.components.schemas.AssetDetail)).toContain('"contracts"');
    expect(doc.components.schemas.Contract).toBeDefined();
  });
});
