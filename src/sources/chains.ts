import type { HttpSource } from "../config";

/**
 * The chains both providers list contracts on, under one lowercase slug each. Each provider names
 * a platform its own way: CoinGecko by asset platform id, CoinPaprika by the id of the chain's
 * native coin. A platform named here takes the chain's slug; any other keeps `<source>/<platform>`
 * (a chain of its own, so two providers' unknown platforms never meet by accident). At most one
 * platform per provider per chain: a refresh replaces one platform's list at a time, and a chain
 * fed by two platforms of one provider would have each refresh delete the other's rows.
 */
type ChainInfo = {
  chain: string;
  /** Its tokens are EVM contracts: a listed address of any other form than 0x + 40 hex is rejected. */
  evm: boolean;
  /** A token page of the chain's main explorer; `{address}` is replaced. */
  explorer: string;
  platforms: Partial<Record<HttpSource, string>>;
};

const CHAINS: ChainInfo[] = [
  {
    chain: "ethereum",
    evm: true,
    explorer: "https://etherscan.io/token/{address}",
    platforms: { coingecko: "ethereum", coinpaprika: "eth-ethereum" },
  },
  {
    chain: "bsc",
    evm: true,
    explorer: "https://bscscan.com/token/{address}",
    platforms: { coingecko: "binance-smart-chain", coinpaprika: "bnb-binance-coin" },
  },
  {
    chain: "polygon",
    evm: true,
    explorer: "https://polygonscan.com/token/{address}",
    platforms: { coingecko: "polygon-pos", coinpaprika: "matic-polygon" },
  },
  {
    chain: "solana",
    evm: false,
    explorer: "https://solscan.io/token/{address}",
    platforms: { coingecko: "solana", coinpaprika: "sol-solana" },
  },
  {
    chain: "arbitrum",
    evm: true,
    explorer: "https://arbiscan.io/token/{address}",
    platforms: { coingecko: "arbitrum-one", coinpaprika: "arb-arbitrum" },
  },
  { chain: "base", evm: true, explorer: "https://basescan.org/token/{address}", platforms: { coingecko: "base" } },
  {
    chain: "avalanche",
    evm: true,
    explorer: "https://snowtrace.io/token/{address}",
    platforms: { coingecko: "avalanche", coinpaprika: "avax-avalanche" },
  },
  {
    chain: "tron",
    evm: false,
    explorer: "https://tronscan.org/#/token20/{address}",
    platforms: { coingecko: "tron", coinpaprika: "trx-tron" },
  },
  {
    chain: "optimism",
    evm: true,
    explorer: "https://optimistic.etherscan.io/token/{address}",
    platforms: { coingecko: "optimistic-ethereum", coinpaprika: "op-optimism" },
  },
  {
    chain: "fantom",
    evm: true,
    explorer: "https://ftmscan.com/token/{address}",
    platforms: { coingecko: "fantom", coinpaprika: "ftm-fantom" },
  },
  {
    chain: "cronos",
    evm: true,
    explorer: "https://cronoscan.com/token/{address}",
    platforms: { coingecko: "cronos", coinpaprika: "cro-cryptocom-chain" },
  },
  {
    chain: "gnosis",
    evm: true,
    explorer: "https://gnosisscan.io/token/{address}",
    platforms: { coingecko: "xdai", coinpaprika: "gno-gnosis" },
  },
  { chain: "celo", evm: true, explorer: "https://celoscan.io/token/{address}", platforms: { coingecko: "celo", coinpaprika: "celo-celo" } },
  {
    chain: "moonbeam",
    evm: true,
    explorer: "https://moonscan.io/token/{address}",
    platforms: { coingecko: "moonbeam", coinpaprika: "glmr-moonbeam" },
  },
  {
    chain: "harmony",
    // EVM, but its addresses are also written in bech32 (one1…): not checked for the 0x form.
    evm: false,
    explorer: "https://explorer.harmony.one/address/{address}",
    platforms: { coingecko: "harmony-shard-0", coinpaprika: "one-harmony" },
  },
  {
    chain: "heco",
    evm: true,
    explorer: "https://hecoinfo.com/token/{address}",
    platforms: { coingecko: "huobi-token", coinpaprika: "ht-huobi-token" },
  },
  {
    chain: "kcc",
    evm: true,
    explorer: "https://explorer.kcc.io/token/{address}",
    platforms: { coingecko: "kucoin-community-chain", coinpaprika: "kcs-kucoin-token" },
  },
  {
    chain: "okc",
    evm: true,
    explorer: "https://www.oklink.com/okc/token/{address}",
    platforms: { coingecko: "okex-chain", coinpaprika: "okt-okexchain" },
  },
  {
    chain: "klaytn",
    evm: true,
    explorer: "https://kaiascan.io/token/{address}",
    platforms: { coingecko: "klay-token", coinpaprika: "klay-klaytn" },
  },
  { chain: "zksync", evm: true, explorer: "https://explorer.zksync.io/address/{address}", platforms: { coingecko: "zksync" } },
  { chain: "linea", evm: true, explorer: "https://lineascan.build/token/{address}", platforms: { coingecko: "linea" } },
  { chain: "scroll", evm: true, explorer: "https://scrollscan.com/token/{address}", platforms: { coingecko: "scroll" } },
  { chain: "mantle", evm: true, explorer: "https://mantlescan.xyz/token/{address}", platforms: { coingecko: "mantle" } },
  { chain: "blast", evm: true, explorer: "https://blastscan.io/token/{address}", platforms: { coingecko: "blast" } },
  {
    chain: "polygon-zkevm",
    evm: true,
    explorer: "https://zkevm.polygonscan.com/token/{address}",
    platforms: { coingecko: "polygon-zkevm" },
  },
  {
    chain: "ethereum-classic",
    evm: true,
    explorer: "https://etcblockexplorer.com/address/{address}",
    platforms: { coingecko: "ethereum-classic", coinpaprika: "etc-ethereum-classic" },
  },
  {
    chain: "near",
    evm: false,
    explorer: "https://nearblocks.io/address/{address}",
    platforms: { coingecko: "near-protocol", coinpaprika: "near-near-protocol" },
  },
  {
    chain: "cardano",
    evm: false,
    explorer: "https://cardanoscan.io/token/{address}",
    platforms: { coingecko: "cardano", coinpaprika: "ada-cardano" },
  },
  {
    chain: "stellar",
    evm: false,
    explorer: "https://stellar.expert/explorer/public/asset/{address}",
    platforms: { coingecko: "stellar", coinpaprika: "xlm-stellar" },
  },
  {
    chain: "algorand",
    evm: false,
    explorer: "https://allo.info/asset/{address}",
    platforms: { coingecko: "algorand", coinpaprika: "algo-algorand" },
  },
  { chain: "tezos", evm: false, explorer: "https://tzkt.io/{address}", platforms: { coingecko: "tezos", coinpaprika: "xtz-tezos" } },
  {
    chain: "hedera",
    evm: false,
    explorer: "https://hashscan.io/mainnet/token/{address}",
    platforms: { coingecko: "hedera-hashgraph", coinpaprika: "hbar-hedera-hashgraph" },
  },
  {
    chain: "sui",
    evm: false,
    explorer: "https://suiscan.xyz/mainnet/coin/{address}",
    platforms: { coingecko: "sui", coinpaprika: "sui-sui" },
  },
  {
    chain: "aptos",
    evm: false,
    explorer: "https://explorer.aptoslabs.com/coin/{address}",
    platforms: { coingecko: "aptos", coinpaprika: "apt-aptos" },
  },
  {
    chain: "ton",
    evm: false,
    explorer: "https://tonviewer.com/{address}",
    platforms: { coingecko: "the-open-network", coinpaprika: "ton-toncoin" },
  },
  { chain: "xrp", evm: false, explorer: "https://xrpscan.com/account/{address}", platforms: { coingecko: "xrp", coinpaprika: "xrp-xrp" } },
  {
    chain: "waves",
    evm: false,
    explorer: "https://wavesexplorer.com/assets/{address}",
    platforms: { coingecko: "waves", coinpaprika: "waves-waves" },
  },
  { chain: "neo", evm: false, explorer: "https://neotube.io/nep17/{address}", platforms: { coingecko: "neo", coinpaprika: "neo-neo" } },
  { chain: "eos", evm: false, explorer: "https://bloks.io/account/{address}", platforms: { coingecko: "eos", coinpaprika: "eos-eos" } },
  {
    chain: "vechain",
    evm: false,
    explorer: "https://vechainstats.com/token/{address}",
    platforms: { coingecko: "vechain", coinpaprika: "vet-vechain" },
  },
  {
    chain: "cosmos",
    evm: false,
    explorer: "https://www.mintscan.io/cosmos/assets/{address}",
    platforms: { coingecko: "cosmos", coinpaprika: "atom-cosmos" },
  },
  {
    chain: "osmosis",
    evm: false,
    explorer: "https://www.mintscan.io/osmosis/assets/{address}",
    platforms: { coingecko: "osmosis", coinpaprika: "osmo-osmosis" },
  },
];

const bySlug = new Map(CHAINS.map((c) => [c.chain, c]));
const byPlatform = new Map(CHAINS.flatMap((c) => Object.entries(c.platforms).map(([source, p]) => [`${source}:${p}`, c] as const)));

/** The chain a provider's platform stands for: a known slug, or `<source>/<platform>` (lowercase). */
export function chainOf(source: HttpSource, platform: string) {
  const p = platform.trim().toLowerCase();
  return byPlatform.get(`${source}:${p}`)?.chain ?? `${source}/${p}`;
}

/** Whether a known chain holds only EVM addresses (its listings must be 0x + 40 hex). */
export const isEvmChain = (chain: string) => bySlug.get(chain)?.evm ?? false;

const EVM_ADDRESS = /^0x[0-9a-f]{40}$/i;
export const isEvmAddress = (address: string) => EVM_ADDRESS.test(address);

/**
 * An address as stored and served: any 0x + 40 hex address lowercase, whatever its chain (EVM
 * addresses compare case-insensitively; a checksum's capitals are no part of the address), others
 * exactly as listed (base58 and the like are case-sensitive).
 */
export const normaliseAddress = (address: string) => (isEvmAddress(address) ? address.toLowerCase() : address);

/** The token's page on the chain's explorer, for the chains that have one here. */
export function explorerUrl(chain: string, address: string): string | null {
  const c = bySlug.get(chain);
  return c ? c.explorer.replace("{address}", encodeURIComponent(address)) : null;
}

/** Every known chain with the platform ids each provider gives it (for tests and documentation). */
export const knownChains = () => CHAINS.map((c) => ({ chain: c.chain, evm: c.evm, platforms: { ...c.platforms } }));
