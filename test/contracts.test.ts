import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { activeContractsQuery } from "../src/db/contract-store";
import type { Env } from "../src/env";
import { PLATFORMS_PER_MESSAGE } from "../src/ingest/fetch-contracts";
import { payloadsToReplay, startReplays } from "../src/ingest/replay";
import { startSourceRun } from "../src/ingest/start-run";
import { runMeteredJob } from "../src/jobs/queue";
import { chainOf, explorerUrl, knownChains, normaliseAddress } from "../src/sources/chains";
import { coingeckoContracts } from "../src/sources/coingecko-contracts";
import { coinpaprikaContracts } from "../src/sources/coinpaprika-contracts";
import { drain, json, metaCountingD1, rows, stubUpstream, testServices } from "./helpers";
import { signal } from "./interleave";

const EVM = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01";
const SOL = "So1anaMintAddreSS1111111111111111111111112";

/** A CoinGecko market record of an invented coin. */
const market = (id: string, i: number) => ({
  id,
  symbol: `k${i}`,
  name: `Kestrel Coin ${i}`,
  current_price: 1 + i,
  market_cap: 1e6 * (i + 1),
  market_cap_rank: i + 1,
  total_volume: 1e4,
  price_change_percentage_24h: 0.5,
  circulating_supply: 1e6,
  total_supply: null,
  max_supply: null,
  last_updated: "2026-11-22T12:00:00.000Z",
});

/** A CoinGecko universe: `n` coins with markets, their coins/list entries, and an upstream serving both. */
function geckoUpstream(list: () => unknown[], markets: unknown[]) {
  return stubUpstream((url) => {
    if (url.pathname.endsWith("/coins/list")) return url.searchParams.get("include_platform") === "true" ? json(list()) : undefined;
    if (url.pathname.endsWith("/coins/markets")) {
      const page = Number(url.searchParams.get("page"));
      return json(markets.slice((page - 1) * 250, page * 250));
    }
    return undefined;
  });
}

const vars = (hours: string) =>
  ({ COINGECKO_REQUESTS_PER_MINUTE: "60000", COINPAPRIKA_REQUESTS_PER_MINUTE: "60000", IDENTITY_REFRESH_HOURS: hours }) as Partial<Env>;

/**
 * The D1 and R2 bindings of `base`, counting what reaches them (the binding's own meta) while `on`:
 * the refresh's cost, independently of the worker's meter (which hands part of it on to the next message).
 */
function countingEnv(base: Env) {
  const counted = { on: false, d1_rows_written: 0, d1_rows_read: 0, r2_writes: 0 };
  const charge = (meta?: D1Meta) => {
    if (!counted.on) return;
    counted.d1_rows_written += meta?.rows_written ?? 0;
    counted.d1_rows_read += meta?.rows_read ?? 0;
  };
  const DB = metaCountingD1(base.DB, charge);
  const BUCKET = new Proxy(base.BUCKET, {
    get(t, prop) {
      const v = Reflect.get(t, prop);
      if (typeof v !== "function") return v;
      return (...a: unknown[]) => {
        if (prop === "put" && counted.on) counted.r2_writes++;
        return v.apply(t, a);
      };
    },
  });
  return { env: { ...base, DB, BUCKET } as Env, counted };
}

type Cost = { d1_rows_written: number; d1_rows_read: number; r2_writes: number };

/** Services over counting bindings with a recording queue and the given upstream. */
function services(fetch: typeof globalThis.fetch, hours: string) {
  const c = countingEnv(env as unknown as Env);
  const { s, sent } = testServices({ fetch, vars: { ...c.env, ...vars(hours) } });
  return { s, sent, counted: c.counted };
}

/** Runs a source: its contract messages first, counted on their own (what the refresh cost), then the rest. */
async function run(svc: ReturnType<typeof services>, source: "coingecko" | "coinpaprika") {
  const { s, sent, counted } = svc;
  const start = await startSourceRun(s, source, "manual");
  if (!start.started) throw new Error("not started");
  Object.assign(counted, { on: true, d1_rows_written: 0, d1_rows_read: 0, r2_writes: 0 });
  let messages = 0;
  try {
    while (sent[0]?.type === "fetch_contracts") {
      const error = await runMeteredJob(s, sent.shift()!);
      if (error) throw error;
      messages++;
    }
  } finally {
    counted.on = false;
  }
  const refresh: Cost = { d1_rows_written: counted.d1_rows_written, d1_rows_read: counted.d1_rows_read, r2_writes: counted.r2_writes };
  await drain(s, sent);
  const [r] = await rows<{ status: string; fetched: number; accepted: number; rejected: number; usage_d1_rows_written: number }>(
    "SELECT status, fetched, accepted, rejected, usage_d1_rows_written FROM ingestion_runs WHERE run_id = ?",
    start.run.runId,
  );
  return { runId: start.run.runId, run: r, refresh, messages };
}

const stored = (source: string, like: string) =>
  rows<{ source_id: string; chain: string; address: string; platform: string; active: number }>(
    "SELECT source_id, chain, address, platform, active FROM source_contracts WHERE source = ? AND source_id LIKE ? ORDER BY source_id, chain, address",
    source,
    like,
  );

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
  await env.DB.prepare("DELETE FROM request_budgets").run();
  await env.DB.prepare("DELETE FROM contract_refreshes").run();
});

describe("chains", () => {
  it("maps each provider's platform to one lowercase chain slug, and an unknown one to <source>/<platform>", () => {
    expect(chainOf("coingecko", "ethereum")).toBe("ethereum");
    expect(chainOf("coinpaprika", "eth-ethereum")).toBe("ethereum");
    expect(chainOf("coingecko", "binance-smart-chain")).toBe("bsc");
    expect(chainOf("coinpaprika", "bnb-binance-coin")).toBe("bsc");
    expect(chainOf("coingecko", "polygon-pos")).toBe("polygon");
    expect(chainOf("coinpaprika", "matic-polygon")).toBe("polygon");
    expect(chainOf("coinpaprika", "sol-solana")).toBe("solana");
    expect(chainOf("coingecko", "arbitrum-one")).toBe("arbitrum");
    expect(chainOf("coingecko", "optimistic-ethereum")).toBe("optimism");
    expect(chainOf("coingecko", "avalanche")).toBe("avalanche");
    expect(chainOf("coingecko", "tron")).toBe("tron");
    expect(chainOf("coingecko", "base")).toBe("base");
    expect(chainOf("coingecko", "Some-New-Chain")).toBe("coingecko/some-new-chain");
    // The same unknown name at two providers stays two chains.
    expect(chainOf("coinpaprika", "some-new-chain")).toBe("coinpaprika/some-new-chain");
  });

  it("gives each chain at most one platform per provider, and each platform one chain", () => {
    const chains = knownChains();
    expect(new Set(chains.map((c) => c.chain)).size).toBe(chains.length);
    for (const source of ["coingecko", "coinpaprika"] as const) {
      const platforms = chains.flatMap((c) => (c.platforms[source] ? [c.platforms[source]] : []));
      expect(new Set(platforms).size).toBe(platforms.length);
    }
  });

  it("folds EVM addresses to lowercase and keeps every other address exactly", () => {
    expect(normaliseAddress(EVM)).toBe(EVM.toLowerCase());
    expect(normaliseAddress(SOL)).toBe(SOL);
    expect(normaliseAddress("0xABC")).toBe("0xABC");
    expect(explorerUrl("ethereum", EVM.toLowerCase())).toBe(`https://etherscan.io/token/${EVM.toLowerCase()}`);
    expect(explorerUrl("coingecko/unknown", "x")).toBeNull();
  });
});

describe("contract lists", () => {
  it("CoinGecko's list: EVM lowercased, empty and null addresses are no contract, bad entries rejected with a reason", () => {
    const out = coingeckoContracts.normaliseListing([
      { id: "kestrel", symbol: "kst", name: "Kestrel", platforms: { ethereum: EVM, solana: SOL, "binance-smart-chain": "", tron: null } },
      { id: "native-coin", symbol: "nat", name: "Native", platforms: { "": "" } },
      { id: "no-platforms", symbol: "np", name: "None" },
      { id: "short-evm", symbol: "se", name: "Short", platforms: { ethereum: "0x1234" } },
      { id: "spaced", symbol: "sp", name: "Spaced", platforms: { solana: "abc def" } },
      { id: "odd-key", symbol: "ok", name: "Odd", platforms: { "no such/platform": "0x1" } },
      { symbol: "noid", name: "No id", platforms: { ethereum: EVM } },
      { id: "new-chain", symbol: "nc", name: "New", platforms: { "brand-new-chain": "Token.Addr" } },
      { id: "twice", symbol: "tw", name: "Twice", platforms: { ethereum: `  ${EVM.toUpperCase().replace("0X", "0x")}  ` } },
    ]);
    const rowsOf = Object.fromEntries(out.platforms.map((p) => [p.platform, p]));
    expect(rowsOf.ethereum.chain).toBe("ethereum");
    expect(rowsOf.ethereum.rows).toEqual([
      { sourceId: "kestrel", chain: "ethereum", address: EVM.toLowerCase(), active: true },
      { sourceId: "twice", chain: "ethereum", address: EVM.toLowerCase(), active: true },
    ]);
    expect(rowsOf.solana.rows).toEqual([{ sourceId: "kestrel", chain: "solana", address: SOL, active: true }]);
    expect(rowsOf["brand-new-chain"].rows).toEqual([
      { sourceId: "new-chain", chain: "coingecko/brand-new-chain", address: "Token.Addr", active: true },
    ]);
    expect(Object.keys(rowsOf).sort()).toEqual(["brand-new-chain", "ethereum", "solana"]);
    const reasons = out.rejected.map((r) => r.reason).join("\n");
    expect(out.rejected).toHaveLength(4);
    expect(reasons).toContain("short-evm on ethereum: ethereum takes EVM addresses");
    expect(reasons).toContain("spaced on solana: address must not contain spaces");
    expect(reasons).toContain("is not a platform id");
    expect(reasons).toContain("id must be a non-empty string");
    expect(() => coingeckoContracts.normaliseListing({ coins: [] })).toThrow(/did not return an array/);
  });

  it("CoinPaprika's platform list: inactive contracts kept with their flag, one record a contract", () => {
    const listing = coinpaprikaContracts.normaliseListing(["eth-ethereum", "sol-solana", "", 42, "eth-ethereum"]);
    expect(listing.platforms.map((p) => [p.platform, p.chain])).toEqual([
      ["eth-ethereum", "ethereum"],
      ["sol-solana", "solana"],
    ]);
    expect(listing.rejected).toHaveLength(2);
    const out = coinpaprikaContracts.normalisePlatform!("eth-ethereum", [
      { address: EVM, id: "kst-kestrel", type: "ERC20", active: true },
      { address: "0x00000000000000000000000000000000000000aa", id: "old-kestrel", type: "ERC20", active: false },
      { address: "", id: "empty-one", type: "ERC20", active: true },
      { address: EVM, id: "bad-flag", type: "ERC20", active: "yes" },
      { address: EVM, type: "ERC20", active: true },
    ]);
    expect(out.platforms[0].rows).toEqual([
      { sourceId: "kst-kestrel", chain: "ethereum", address: EVM.toLowerCase(), active: true },
      { sourceId: "old-kestrel", chain: "ethereum", address: "0x00000000000000000000000000000000000000aa", active: false },
    ]);
    expect(out.rejected.map((r) => r.reason)).toEqual([
      expect.stringContaining("active must be true or false"),
      expect.stringContaining("id must be a non-empty string"),
    ]);
  });
});

describe("contract refresh", () => {
  it("a CoinGecko run fetches its contract list first (archived, not counted in records), then its pages; a later run within IDENTITY_REFRESH_HOURS does not", async () => {
    const markets = Array.from({ length: 3 }, (_, i) => market(`first-${i}`, i));
    const list = () => [
      { id: "first-0", symbol: "k0", name: "Kestrel Coin 0", platforms: { ethereum: EVM, solana: SOL } },
      { id: "first-1", symbol: "k1", name: "Kestrel Coin 1", platforms: { "": "" } },
      { id: "first-2", symbol: "k2", name: "Kestrel Coin 2", platforms: { ethereum: "not-an-address" } },
      { id: "first-dormant", symbol: "fd", name: "Dormant", platforms: { "polygon-pos": "0x00000000000000000000000000000000000000F1" } },
    ];
    const up = geckoUpstream(list, markets);
    const svc = services(up.fetch, "24");
    const first = await run(svc, "coingecko");
    expect(first.run).toMatchObject({ status: "succeeded", fetched: 3, accepted: 3, rejected: 0 });
    expect(up.calls.map((c) => c.url.pathname.split("/").pop()).filter((p) => p !== "exchange_rates")).toEqual(["list", "markets"]);
    expect(up.calls[0].headers.get("x-cg-demo-api-key")).toBe("test-gecko-key");
    expect(await stored("coingecko", "first-%")).toEqual([
      { source_id: "first-0", chain: "ethereum", address: EVM.toLowerCase(), platform: "ethereum", active: 1 },
      { source_id: "first-0", chain: "solana", address: SOL, platform: "solana", active: 1 },
      {
        source_id: "first-dormant",
        chain: "polygon",
        address: "0x00000000000000000000000000000000000000f1",
        platform: "polygon-pos",
        active: 1,
      },
    ]);
    // The list is archived like every payload; its bad entry is quarantined with the reason.
    const [raw] = await rows<{ id: string; records: number }>(
      "SELECT id, records FROM raw_payloads WHERE run_id = ? AND id LIKE '%contracts%'",
      first.runId,
    );
    expect(raw).toEqual({ id: `${first.runId}-contracts-list`, records: 4 });
    const rejected = await rows<{ reason: string }>("SELECT reason FROM rejected_records WHERE run_id = ?", first.runId);
    expect(rejected.map((r) => r.reason)).toEqual([expect.stringContaining("first-2 on ethereum: ethereum takes EVM addresses")]);
    // What the refresh cost is in the run's usage: three rows written per contract stored (row, key, (chain, address)).
    expect(first.refresh.d1_rows_written).toBeGreaterThanOrEqual(9);
    expect(first.run.usage_d1_rows_written).toBeGreaterThan(first.refresh.d1_rows_written);
    expect(await rows("SELECT source, error FROM contract_refreshes")).toEqual([{ source: "coingecko", error: null }]);

    const second = await run(svc, "coingecko");
    expect(second.messages).toBe(0);
    expect(up.calls.filter((c) => c.url.pathname.endsWith("/coins/list"))).toHaveLength(1);
  });

  it("a refresh with no change writes almost nothing; a change writes only the rows that changed", async () => {
    const markets = Array.from({ length: 2 }, (_, i) => market(`same-${i}`, i));
    const coins = Array.from({ length: 400 }, (_, i) => ({
      id: `same-${i}`,
      symbol: `s${i}`,
      name: `Same ${i}`,
      platforms: { ethereum: `0x${i.toString(16).padStart(40, "0")}`, "arbitrum-one": `0x${(i + 1000).toString(16).padStart(40, "0")}` },
    }));
    let list: { id: string; symbol: string; name: string; platforms: Record<string, string> }[] = coins;
    const up = geckoUpstream(() => list, markets);
    const svc = services(up.fetch, "0.00001");
    const first = await run(svc, "coingecko");
    expect(await stored("coingecko", "same-%")).toHaveLength(800);
    expect(first.refresh.d1_rows_written).toBeGreaterThanOrEqual(800 * 3);

    const again = await run(svc, "coingecko");
    expect(again.messages).toBe(1);
    // Its part, the refresh's row and its step's page lease: the list is the one archived already, every platform's digest the stored one.
    expect(again.refresh.d1_rows_written).toBeLessThanOrEqual(5 + 1);
    expect(again.refresh.r2_writes).toBe(0);
    console.log(`[contracts] first refresh ${JSON.stringify(first.refresh)}, unchanged ${JSON.stringify(again.refresh)}`);

    // One address changed, one coin gone, one new: only Ethereum's list differs.
    list = [
      ...coins.slice(1, 399),
      { ...coins[399], platforms: { ...coins[399].platforms, ethereum: EVM } },
      { id: "same-new", symbol: "sn", name: "Same New", platforms: { ethereum: `0x${"f".repeat(40)}` } },
    ];
    const changed = await run(svc, "coingecko");
    const eth = await stored("coingecko", "same-%");
    expect(eth.find((r) => r.source_id === "same-0")).toBeUndefined();
    expect(eth.filter((r) => r.source_id === "same-399").map((r) => r.address)).toContain(EVM.toLowerCase());
    expect(eth.find((r) => r.source_id === "same-new")?.address).toBe(`0x${"f".repeat(40)}`);
    expect(eth).toHaveLength(800 - 2 + 1);
    // Deletes and inserts of five rows (3 each), the platforms' digests, its part, the refresh, the new archive's index,
    // and the ids to decide again, recorded with the change and cleared once decided (a row and its key each time).
    expect(changed.refresh.d1_rows_written).toBeLessThanOrEqual(5 * 3 + 2 + 2 + 1 + 4 + 2 + 2 + 2);
    console.log(`[contracts] changed refresh ${JSON.stringify(changed.refresh)}`);
  });

  it("CoinPaprika: the platform list, then its platforms a message at a time; inactive kept; a failed platform keeps its rows; a platform gone takes its rows", async () => {
    const platforms = Array.from({ length: PLATFORMS_PER_MESSAGE + 2 }, (_, i) =>
      i === 0 ? "eth-ethereum" : `zz-chain-${String(i).padStart(2, "0")}`,
    );
    let listed = platforms;
    let failing = "";
    const up = stubUpstream((url) => {
      if (url.pathname.endsWith("/v1/tickers")) return json([]);
      if (url.pathname.endsWith("/v1/contracts")) return json(listed);
      const platform = url.pathname.split("/contracts/")[1];
      if (!platform) return undefined;
      if (platform === failing) return new Response("down", { status: 404 });
      if (platform === "eth-ethereum")
        return json([
          { address: EVM, id: "pp-kestrel", type: "ERC20", active: true },
          { address: "0x00000000000000000000000000000000000000aa", id: "pp-dead", type: "ERC20", active: false },
        ]);
      return json([{ address: `Addr.${platform}`, id: `pp-${platform}`, type: "TOKEN", active: true }]);
    });
    const svc = services(up.fetch, "0.00001");
    const first = await run(svc, "coinpaprika");
    // The listing, two messages of platforms, then the tickers.
    expect(first.messages).toBe(3);
    expect(up.calls.map((c) => c.url.pathname.replace("/v1/", "")).filter((p) => p.startsWith("tickers"))[0]).toBe("tickers");
    expect(up.calls.findIndex((c) => c.url.pathname.endsWith("/v1/tickers"))).toBe(platforms.length + 1);
    const all = await stored("coinpaprika", "pp-%");
    expect(all).toHaveLength(platforms.length + 1);
    expect(all.filter((r) => r.chain === "ethereum")).toEqual([
      {
        source_id: "pp-dead",
        chain: "ethereum",
        address: "0x00000000000000000000000000000000000000aa",
        platform: "eth-ethereum",
        active: 0,
      },
      { source_id: "pp-kestrel", chain: "ethereum", address: EVM.toLowerCase(), platform: "eth-ethereum", active: 1 },
    ]);
    expect(all.find((r) => r.source_id === "pp-zz-chain-03")?.chain).toBe("coinpaprika/zz-chain-03");

    const unchanged = await run(svc, "coinpaprika");
    // Three parts (two rows each, and each step's page lease) and the refresh's row; nothing archived again.
    expect(unchanged.refresh.d1_rows_written).toBeLessThanOrEqual(3 * (2 + 1) + 2);
    expect(unchanged.refresh.r2_writes).toBe(0);

    // One platform down: its rows stay, the refresh says so (and is tried again sooner); one platform no longer listed.
    failing = "zz-chain-05";
    listed = platforms.filter((p) => p !== "zz-chain-07");
    const partial = await run(svc, "coinpaprika");
    expect(partial.run.status).toBe("succeeded");
    const after = await stored("coinpaprika", "pp-%");
    expect(after.find((r) => r.source_id === "pp-zz-chain-05")).toBeDefined();
    expect(after.find((r) => r.source_id === "pp-zz-chain-07")).toBeUndefined();
    const [refresh] = await rows<{ error: string }>("SELECT error FROM contract_refreshes WHERE source = 'coinpaprika'");
    expect(refresh.error).toContain("1 coinpaprika platform contract lists could not be fetched");
    const rejected = await rows<{ reason: string }>("SELECT reason FROM rejected_records WHERE run_id = ?", partial.runId);
    expect(rejected.map((r) => r.reason)).toEqual([expect.stringContaining("contracts on zz-chain-05: HTTP 404")]);
  });

  it("a step delivered again while its first delivery still runs is left to it: the list is fetched once, page 1 sent once", async () => {
    const firstCallWaiting = signal();
    const firstCallGoesOn = signal();
    let listCalls = 0;
    const up = stubUpstream((url) => {
      if (url.pathname.endsWith("/coins/markets")) return json([market("redo-1", 1)]);
      if (!url.pathname.endsWith("/coins/list")) return undefined;
      return async () => {
        if (++listCalls === 1) {
          firstCallWaiting.resolve();
          await firstCallGoesOn.promise;
        }
        return json([{ id: "redo-1", symbol: "k1", name: "Kestrel Coin 1", platforms: { ethereum: EVM } }]);
      };
    });
    const { s, sent } = services(up.fetch, "24");
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("not started");
    const step0 = sent.shift()!;
    expect(step0.type).toBe("fetch_contracts");
    const first = runMeteredJob(s, step0);
    await firstCallWaiting.promise;
    // The queue delivers step 0 again: the page lease is held by the first delivery, which is alive.
    expect(await runMeteredJob(s, step0)).toBeNull();
    expect(sent).toEqual([step0]);
    firstCallGoesOn.resolve();
    expect(await first).toBeNull();
    // The first delivery sent page 1; the held copy comes back after page 1 ran and closed the run: it does nothing.
    expect(sent.map((m) => m.type)).toEqual(["fetch_contracts", "fetch_page"]);
    const [copy, page1] = [sent.shift()!, sent.shift()!];
    expect(await runMeteredJob(s, page1)).toBeNull();
    expect(await runMeteredJob(s, copy)).toBeNull();
    expect(sent).toEqual([]);
    await drain(s, sent);
    expect(listCalls).toBe(1);
    expect(await rows("SELECT part FROM run_parts WHERE run_id = ? AND part LIKE 'contracts-%'", start.run.runId)).toEqual([
      { part: "contracts-0" },
    ]);
    expect(await stored("coingecko", "redo-%")).toHaveLength(1);
  });

  /**
   * A CoinPaprika platforms step whose first delivery archives its first platform's list and stalls on
   * the second; another delivery takes the step over and does it all; then the staller wakes up, and
   * its writes are fenced out. `again`: a refresh after one that stored every list, whose first list
   * comes in other bytes with the same contracts (so its archive is new and stores nothing).
   */
  async function stalledPlatformsStep(again: boolean) {
    const platforms = ["zz-stall-01", "zz-stall-02", "zz-stall-03"];
    const stalling = signal();
    const goesOn = signal();
    let stall = !again;
    let second = false;
    const up = stubUpstream((url) => {
      if (url.pathname.endsWith("/v1/tickers")) return json([]);
      if (url.pathname.endsWith("/v1/contracts")) return json(platforms);
      const platform = url.pathname.split("/contracts/")[1];
      if (!platform) return undefined;
      const row = { address: `Addr.${platform}`, id: `pp-${platform}`, type: "TOKEN", active: true };
      if (platform === "zz-stall-02" && stall) {
        stall = false;
        return async () => {
          stalling.resolve();
          await goesOn.promise;
          return json([{ ...row, address: "Addr.late" }]);
        };
      }
      return json([platform === "zz-stall-01" && second ? { ...row, note: "the same list in other bytes" } : row]);
    });
    const svc = services(up.fetch, "0.00001");
    if (again) {
      await run(svc, "coinpaprika");
      stall = true;
      second = true;
    }
    const { s, sent } = svc;
    const start = await startSourceRun(s, "coinpaprika", "manual");
    if (!start.started) throw new Error("not started");
    const runId = start.run.runId;
    expect(await runMeteredJob(s, sent.shift()!)).toBeNull();
    const step1 = sent.shift()!;
    expect(step1).toMatchObject({ type: "fetch_contracts", step: 1 });
    const archived = async () =>
      (await env.BUCKET.list({ prefix: "raw/coinpaprika/" })).objects.map((o) => o.key).filter((k) => k.includes(runId));
    const indexed = async () =>
      (await rows<{ key: string }>("SELECT key FROM raw_payloads WHERE run_id = ? ORDER BY key", runId)).map((r) => r.key);
    const listing = await archived();

    const first = runMeteredJob(s, step1);
    await stalling.promise;
    const staller = (await archived()).filter((k) => !listing.includes(k));
    expect(staller).toHaveLength(1);
    const stallerIndexed = (await indexed()).includes(staller[0]);
    await env.DB.prepare("UPDATE leases SET expires_at = 0 WHERE name = 'pages:coinpaprika'").run();
    expect(await runMeteredJob(s, step1)).toBeNull();
    const afterTaker = await archived();
    goesOn.resolve();
    await first;
    await drain(s, sent);

    expect((await rows<{ status: string }>("SELECT status FROM ingestion_runs WHERE run_id = ?", runId))[0].status).toBe("succeeded");
    expect((await stored("coinpaprika", "pp-zz-stall-%")).map((r) => r.address)).toEqual(platforms.map((p) => `Addr.${p}`));
    // What is left in R2 is exactly what D1 indexes: the staller's late body went with its fenced-out writes.
    expect((await archived()).sort()).toEqual(await indexed());
    return { staller: staller[0], stallerIndexed, keptByTaker: afterTaker.includes(staller[0]), left: await archived() };
  }

  it("a step taken over from a delivery that stalled after storing a list: that list's body was indexed with it and stays", async () => {
    const { stallerIndexed, keptByTaker, left, staller } = await stalledPlatformsStep(false);
    expect(stallerIndexed).toBe(true);
    expect(keptByTaker).toBe(true);
    expect(left).toContain(staller);
  });

  it("a step taken over from a delivery that stalled before storing anything: the taker deletes the body it archived", async () => {
    const { stallerIndexed, keptByTaker } = await stalledPlatformsStep(true);
    expect(stallerIndexed).toBe(false);
    expect(keptByTaker).toBe(false);
  });

  it("an unreachable list leaves the stored contracts and the quotes go on", async () => {
    let down = false;
    const up = geckoUpstream(
      () => [{ id: "down-0", symbol: "k0", name: "Kestrel Coin 0", platforms: { ethereum: EVM } }],
      [market("down-0", 0)],
    );
    const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
      down && String(input).includes("/coins/list")
        ? Promise.resolve(new Response("gone", { status: 404 }))
        : up.fetch(input, init)) as typeof globalThis.fetch;
    const svc = services(fetch, "24");
    await run(svc, "coingecko");
    down = true;
    await env.DB.prepare("DELETE FROM contract_refreshes").run();
    const r = await run(svc, "coingecko");
    expect(r.messages).toBe(1);
    expect(r.run).toMatchObject({ status: "succeeded", fetched: 1 });
    expect(await stored("coingecko", "down-%")).toHaveLength(1);
    const [refresh] = await rows<{ error: string }>("SELECT error FROM contract_refreshes WHERE source = 'coingecko'");
    expect(refresh.error).toContain("HTTP 404");
  });

  it("replays an archived list into the contracts without calling the provider", async () => {
    const up = geckoUpstream(
      () => [{ id: "rp-1", symbol: "r1", name: "Rp 1", platforms: { ethereum: EVM, solana: SOL } }],
      [market("rp-1", 1)],
    );
    const svc = services(up.fetch, "24");
    const first = await run(svc, "coingecko");
    await env.DB.prepare("DELETE FROM source_contracts WHERE source_id = 'rp-1'").run();
    await env.DB.prepare("UPDATE contract_platforms SET digest = 'lost' WHERE source = 'coingecko'").run();
    const calls = up.calls.length;
    const payloads = await payloadsToReplay(svc.s, undefined, `${first.runId}-contracts-list`);
    const [replayRun] = await startReplays(svc.s, payloads);
    await drain(svc.s, svc.sent);
    expect(up.calls).toHaveLength(calls);
    const [done] = await rows<{ status: string; rejected: number }>(
      "SELECT status, rejected FROM ingestion_runs WHERE run_id = ?",
      replayRun.runId,
    );
    expect(done).toEqual({ status: "succeeded", rejected: 0 });
    expect((await stored("coingecko", "rp-%")).map((r) => r.chain)).toEqual(["ethereum", "solana"]);
  });

  it("reads the contracts of a set of ids by key: what contract evidence weighs", async () => {
    const up = geckoUpstream(
      () => [{ id: "ev-1", symbol: "e1", name: "Ev 1", platforms: { ethereum: EVM, base: EVM } }],
      [market("ev-1", 1)],
    );
    const svc = services(up.fetch, "24");
    await run(svc, "coingecko");
    const got = await svc.s.db.all(
      activeContractsQuery([
        { source: "coingecko", sourceId: "ev-1" },
        { source: "coingecko", sourceId: "ev-none" },
      ]),
    );
    expect(got).toEqual([
      { source: "coingecko", source_id: "ev-1", chain: "base", address: EVM.toLowerCase() },
      { source: "coingecko", source_id: "ev-1", chain: "ethereum", address: EVM.toLowerCase() },
    ]);
  });
});
