import { z } from "@hono/zod-openapi";
import { ApiError } from "./lib/errors";

export const SOURCES = ["coingecko", "coinpaprika", "csv"] as const;
export const SourceSchema = z.enum(SOURCES);
export type Source = z.infer<typeof SourceSchema>;
export const HTTP_SOURCES = ["coingecko", "coinpaprika"] as const satisfies readonly Source[];
export type HttpSource = (typeof HTTP_SOURCES)[number];

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const intervals = z
  .string()
  .default("coingecko=5,coinpaprika=5,csv=1")
  .transform((s, ctx) => {
    const out: Record<Source, number> = { coingecko: 5, coinpaprika: 5, csv: 1 };
    for (const part of s.split(",").filter(Boolean)) {
      const [name, minutes] = part.split("=").map((x) => x.trim());
      const parsed = SourceSchema.safeParse(name);
      const n = Number(minutes);
      if (!parsed.success || !Number.isInteger(n) || n < 1) {
        ctx.addIssue({ code: "custom", message: `expected source=minutes pairs, got "${part}"` });
        return z.NEVER;
      }
      out[parsed.data] = n;
    }
    return out;
  });

const ConfigSchema = z.object({
  COINGECKO_BASE_URL: z.url().default("https://api.coingecko.com/api/v3"),
  COINGECKO_API_KEY: z.string().min(1).optional(),
  COINGECKO_PLAN: z.enum(["demo", "pro"]).default("demo"),
  COINPAPRIKA_BASE_URL: z.url().default("https://api.coinpaprika.com/v1"),
  COINPAPRIKA_API_KEY: z.string().min(1).optional(),
  ADMIN_TOKEN: z.string().min(1).optional(),
  SOURCE_PAGE_LIMIT: positiveInt(20),
  COINGECKO_REQUESTS_PER_MINUTE: positiveInt(30),
  COINPAPRIKA_REQUESTS_PER_MINUTE: positiveInt(60),
  MAX_UPLOAD_BYTES: positiveInt(104_857_600),
  READ_RATE_LIMIT: z.enum(["on", "off"]).default("on"),
  SOURCE_INTERVAL_MINUTES: intervals,
  UPSTREAM_TIMEOUT_MS: positiveInt(15_000),
  CORS_ORIGINS: z.string().default("*"),
  DATA_ORIGIN: z.enum(["live", "recorded"]).default("live"),
  RAW_RETENTION_DAYS: positiveInt(30),
  STALE_AFTER_MINUTES: positiveInt(60),
  OUTLIER_PCT: z.coerce.number().positive().default(10),
  /** How often each provider's contract lists are fetched again (hours; 0 turns the refresh off). */
  IDENTITY_REFRESH_HOURS: z.coerce.number().nonnegative().default(24),
  /** 0 is allowed: only the freshest source's rate of each currency is used. */
  FX_STALE_AFTER_MINUTES: z.coerce.number().int().nonnegative().default(180),
  /** CoinPaprika prices BTC in at most 3 quote currencies a call (its documented limit); USD must be one of them. */
  COINPAPRIKA_FX_QUOTES: z
    .string()
    .default("USD,EUR,GBP")
    .transform((s, ctx) => {
      const codes = [...new Set(s.split(",").map((c) => c.trim().toUpperCase()))].filter(Boolean);
      if (!codes.includes("USD") || codes.some((c) => !/^[A-Z0-9]{2,10}$/.test(c))) {
        ctx.addIssue({ code: "custom", message: `expected comma-separated currency codes including USD, got "${s}"` });
        return z.NEVER;
      }
      return codes;
    }),
});
export type Config = z.infer<typeof ConfigSchema>;

/** The consensus rules the variables set. */
export const consensusRules = (c: Config) => ({ staleAfterMinutes: c.STALE_AFTER_MINUTES, outlierPct: c.OUTLIER_PCT });

const cache = new WeakMap<object, Config>();

/** Parses the vars and secrets once per env object; a bad value is an error naming the variable. */
export function getConfig(env: object): Config {
  const hit = cache.get(env);
  if (hit) return hit;
  const vars = env as Record<string, unknown>;
  const raw = Object.fromEntries(Object.keys(ConfigSchema.shape).map((k) => [k, emptyToUndefined(vars[k])]));
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ApiError("internal", `invalid configuration: ${issues.join("; ")}`, issues);
  }
  cache.set(env, parsed.data);
  return parsed.data;
}

function emptyToUndefined(v: unknown) {
  return typeof v === "string" && v.trim() === "" ? undefined : v;
}
