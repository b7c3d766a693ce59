import { z } from "@hono/zod-openapi";
import { SourceSchema } from "../config";
import { normaliseAddress } from "../sources/chains";

export const MAX_CONTRACTS = 250;

export const ContractSchema = z
  .object({
    chain: z.string().openapi({
      description: "Lowercase chain slug (`ethereum`, `bsc`, `solana`, …; `<source>/<platform>` for a platform with no known counterpart).",
      example: "ethereum",
    }),
    address: z.string().openapi({
      description: "EVM addresses lowercase; others exactly as listed.",
      example: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    }),
    sources: z.array(SourceSchema).openapi({ description: "The providers that list this contract for one of the asset's ids." }),
    active: z.boolean().openapi({ description: "false when every provider listing it marks it inactive (kept for lookups)." }),
    explorer_url: z
      .string()
      .nullable()
      .openapi({ description: "The token's page on the chain's explorer, when the chain has a known one." }),
  })
  .openapi("Contract");
export type Contract = z.infer<typeof ContractSchema>;

/** A contract as asked for: chain slug (lowercased) and address (EVM lowercased, others exact). */
export type ContractRef = { chain: string; address: string };

/** One `{chain}:{address}`, split at the last colon; null when a side is empty or there is no colon. */
export function parseContractRef(s: string): ContractRef | null {
  const at = s.lastIndexOf(":");
  if (at < 0) return null;
  const chain = s.slice(0, at).trim().toLowerCase();
  const address = s.slice(at + 1).trim();
  return chain && address ? { chain, address: normaliseAddress(address) } : null;
}

/** `contract=` of /data: up to MAX_CONTRACTS comma-separated `{chain}:{address}`. */
export const ContractQuery = z
  .string()
  .optional()
  .transform((s, ctx) => {
    if (s === undefined) return undefined;
    const parts = s.split(",").map((x) => x.trim());
    if (parts.length > MAX_CONTRACTS) {
      ctx.addIssue({ code: "custom", message: `contract takes at most ${MAX_CONTRACTS} contracts, got ${parts.length}` });
      return z.NEVER;
    }
    const refs: ContractRef[] = [];
    for (const part of parts) {
      const ref = /[\u0000-\u001f\u007f]/.test(part) ? null : parseContractRef(part);
      if (!ref) {
        ctx.addIssue({ code: "custom", message: `contract must be comma-separated {chain}:{address} pairs, got "${part.slice(0, 80)}"` });
        return z.NEVER;
      }
      refs.push(ref);
    }
    return refs;
  })
  .openapi({
    type: "string",
    description: `Up to ${MAX_CONTRACTS} comma-separated \`{chain}:{address}\` (split at the last colon; EVM addresses in any case, others exactly); the assets whose ids list any of them. Unknown ones are left out; combines with every other filter.`,
    example: "ethereum:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48,solana:EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
  });
