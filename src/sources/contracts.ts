import type { Config, HttpSource } from "../config";
import { chainOf, isEvmAddress, isEvmChain, normaliseAddress } from "./chains";
import type { Rejection } from "./source-quote";

/** One contract a provider lists for one of its ids. */
export type ContractRow = { sourceId: string; chain: string; address: string; active: boolean };
/** The contracts one platform of a provider lists: a refresh stores (and replaces) one platform's list at a time. */
export type PlatformContracts = { platform: string; chain: string; rows: ContractRow[] };
export type ContractsNormalised = { platforms: PlatformContracts[]; rejected: Rejection[] };

/**
 * The contract endpoints of an HTTP source: reference data fetched with its runs every
 * IDENTITY_REFRESH_HOURS, never counted in their records. A provider either lists every platform's
 * contracts in one payload (`listing` yields contracts), or lists its platforms and serves each
 * platform's contracts at its own URL (`platformRequest`).
 */
export interface ContractSourceAdapter {
  name: HttpSource;
  listing(config: Config): { url: string; headers: Record<string, string> };
  /** The listing's contracts by platform, or (per-platform providers) the platforms to fetch, each with its contracts still unknown. */
  normaliseListing(body: unknown): ContractsNormalised & { perPlatform: boolean };
  platformRequest?(config: Config, platform: string): { url: string; headers: Record<string, string> };
  normalisePlatform?(platform: string, body: unknown): ContractsNormalised;
}

/** A platform id as the providers write them; anything else (empty, spaces, slashes) is rejected. */
const PLATFORM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
export const isPlatformId = (p: string) => PLATFORM_ID.test(p);

const MAX_ID = 200;
/** Long enough for every chain's token ids (Stellar CODE-ISSUER, Sui/Aptos type paths, IBC denoms). */
const MAX_ADDRESS = 256;

const describe = (v: unknown) => JSON.stringify(v)?.slice(0, 60) ?? String(v);

export const contractRejection = (source: HttpSource, key: string, sourceId: string | null, reason: string): Rejection => ({
  recordKey: `contracts:${key}`.slice(0, 300),
  row: null,
  sourceId,
  reason: `${source} contracts: ${reason}`,
});

/** Why a source id cannot carry contracts (null when it can). */
export function badSourceId(id: unknown): string | null {
  if (typeof id !== "string" || !id.trim()) return `id must be a non-empty string, got ${describe(id)}`;
  if (id.length > MAX_ID || /[\u0000-\u001f\u007f]/.test(id)) return `id must be at most ${MAX_ID} printable characters`;
  return null;
}

/**
 * One listed address, validated: null when there is no contract (an empty or null address, which
 * the providers use for a coin native to that platform), otherwise the normalised address or why
 * it was rejected.
 */
export function checkAddress(chain: string, value: unknown): { address: string } | { reason: string } | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== "string") return { reason: `address must be a string, got ${describe(value)}` };
  const address = value.trim();
  if (!address) return null;
  if (address.length > MAX_ADDRESS) return { reason: `address is longer than ${MAX_ADDRESS} characters` };
  if (/[\s\u0000-\u001f\u007f]/.test(address))
    return { reason: `address must not contain spaces or control characters, got ${describe(address)}` };
  if (isEvmChain(chain) && !isEvmAddress(address))
    return { reason: `${chain} takes EVM addresses (0x and 40 hex digits), got ${describe(address)}` };
  return { address: normaliseAddress(address) };
}

/**
 * Groups validated rows by platform, one row per (id, chain, address): a contract listed twice is
 * kept once, active when any listing says so.
 */
export function byPlatform(source: HttpSource, entries: { platform: string; row: ContractRow }[]): PlatformContracts[] {
  const out = new Map<string, { chain: string; rows: Map<string, ContractRow> }>();
  for (const { platform, row } of entries) {
    let p = out.get(platform);
    if (!p) {
      p = { chain: chainOf(source, platform), rows: new Map() };
      out.set(platform, p);
    }
    const key = `${row.sourceId}\u0000${row.address}`;
    const seen = p.rows.get(key);
    if (!seen) p.rows.set(key, row);
    else if (row.active && !seen.active) p.rows.set(key, row);
  }
  return [...out].map(([platform, p]) => ({ platform, chain: p.chain, rows: [...p.rows.values()] }));
}
