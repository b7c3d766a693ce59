import { z } from "zod";
import { SourceSchema } from "../config";

/** Cell values that mean "unknown" in every source. */
const NULL_TOKENS = new Set(["", "n/a", "na", "null", "none", "-", "--"]);
const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** 1,234,567.89 (thousands with commas) */
const US_GROUPED = /^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$/;
/** 1.234.567,89 (thousands with dots, decimal comma) */
const EU_GROUPED = /^[+-]?\d{1,3}(\.\d{3})+,\d+$/;
/** 90500,12 (decimal comma) */
const DECIMAL_COMMA = /^[+-]?\d+,\d+$/;

/**
 * Numbers arrive as numbers, decimal strings ("91234.5000000000000000"), spreadsheet-formatted
 * strings ("$1,234.50", "2.5%", "1 234,5") or null-ish tokens. Anything else stays a string, so
 * validation rejects it with the value in the reason.
 */
export function toNumberish(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") return v;
  const t = v.trim();
  if (NULL_TOKENS.has(t.toLowerCase())) return null;
  if (NUMERIC.test(t)) return Number(t);
  const bare = t.replace(/^\$|^usd\s*|\s*usd$|%$/gi, "").replace(/[\s\u00a0\u202f']/g, "");
  if (NUMERIC.test(bare)) return Number(bare);
  if (US_GROUPED.test(bare)) return Number(bare.replaceAll(",", ""));
  if (EU_GROUPED.test(bare)) return Number(bare.replaceAll(".", "").replace(",", "."));
  if (DECIMAL_COMMA.test(bare)) return Number(bare.replace(",", "."));
  return t;
}

const describe = (v: unknown) => JSON.stringify(v)?.slice(0, 40) ?? String(v);
const number = (what: string) => z.number({ error: (i) => `${what} must be a finite number, got ${describe(i.input)}` }).finite();

const price = z.preprocess(
  toNumberish,
  z
    .number({ error: (i) => (i.input === null ? "price is missing" : `price must be a finite number > 0, got ${describe(i.input)}`) })
    .finite()
    .positive({ error: (i) => `price must be > 0, got ${describe(i.input)}` }),
);
const nonNegative = (what: string) =>
  z.preprocess(
    toNumberish,
    number(what)
      .nonnegative({ error: (i) => `${what} must be >= 0, got ${describe(i.input)}` })
      .nullable(),
  );
const signed = (what: string) => z.preprocess(toNumberish, number(what).nullable());
const rank = z.preprocess(
  toNumberish,
  z.number().int().positive().nullable().catch(null), // a nonsense rank is dropped, not a reason to lose the quote
);
const text = (max: number) =>
  z.preprocess(
    (v) =>
      v === undefined || v === null
        ? ""
        : String(v)
            .replace(/[\u0001-\u001f\u007f]/g, " ")
            .trim(),
    z.string().max(max),
  );

/** The one normalised shape every source produces; SPEC §3 decides what is accepted. */
export const SourceQuoteSchema = z
  .object({
    source: SourceSchema,
    sourceId: text(200),
    symbol: text(50),
    name: text(200),
    rank,
    priceUsd: price,
    marketCapUsd: nonNegative("market_cap"),
    volume24hUsd: nonNegative("volume_24h"),
    change24hPct: signed("change_24h"),
    circulatingSupply: nonNegative("circulating_supply"),
    totalSupply: nonNegative("total_supply"),
    maxSupply: nonNegative("max_supply"),
    sourceUpdatedAt: z.string(),
  })
  .superRefine((q, ctx) => {
    if (!q.symbol && !q.sourceId) ctx.addIssue({ code: "custom", message: "record has neither a symbol nor an id" });
    const text = q.symbol + q.name + q.sourceId;
    if (text.includes("\uFFFD")) ctx.addIssue({ code: "custom", message: "text is not valid UTF-8" });
    if (text.includes("\u0000")) ctx.addIssue({ code: "custom", message: "text contains NUL bytes" });
  });
export type SourceQuote = z.infer<typeof SourceQuoteSchema>;

export type Rejection = { recordKey: string; row: number | null; sourceId: string | null; reason: string };
export type Normalised = { quotes: SourceQuote[]; rejected: Rejection[] };

/** Validates one record; a failure becomes a Rejection carrying the first reason. */
export function validateQuote(
  input: Record<string, unknown>,
  where: { recordKey: string; row: number | null; sourceId: string | null },
): { quote: SourceQuote } | { rejection: Rejection } {
  const parsed = SourceQuoteSchema.safeParse(input);
  if (parsed.success) return { quote: parsed.data };
  const reason = parsed.error.issues.map((i) => i.message).join("; ");
  return { rejection: { ...where, reason } };
}

/** Source timestamps become ISO-8601 UTC; unknown or unparseable ones fall back to the fetch time. */
export function toIsoTime(v: unknown, fallback: string): string {
  if (v === undefined || v === null || v === "") return fallback;
  let ms: number;
  if (typeof v === "number" || (typeof v === "string" && /^\d+(\.\d+)?$/.test(v.trim()))) {
    const n = Number(v);
    ms = n > 1e12 ? n : n * 1000;
  } else ms = Date.parse(String(v));
  return Number.isFinite(ms) ? new Date(ms).toISOString() : fallback;
}

/** Identity of a record without an id (CSV rows): symbol and name. */
export function derivedSourceId(symbol: unknown, name: unknown) {
  const sym = String(symbol ?? "")
    .trim()
    .toLowerCase();
  const slug = String(name ?? "")
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return sym ? `${sym}:${slug}` : "";
}
