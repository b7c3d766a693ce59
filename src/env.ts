import type { JobMessage } from "./jobs/messages";

/** Bindings declared in wrangler.toml; vars arrive as strings and are parsed by config.ts. */
export interface Env {
  DB: D1Database;
  KV: KVNamespace;
  BUCKET: R2Bucket;
  JOBS: Queue<JobMessage>;
  ASSETS?: Fetcher;
  READ_LIMITER?: RateLimit;
  COINGECKO_BASE_URL?: string;
  COINGECKO_API_KEY?: string;
  COINGECKO_PLAN?: string;
  COINPAPRIKA_BASE_URL?: string;
  COINPAPRIKA_API_KEY?: string;
  ADMIN_TOKEN?: string;
  SOURCE_PAGE_LIMIT?: string;
  COINGECKO_REQUESTS_PER_MINUTE?: string;
  COINPAPRIKA_REQUESTS_PER_MINUTE?: string;
  MAX_UPLOAD_BYTES?: string;
  READ_RATE_LIMIT?: string;
  SOURCE_INTERVAL_MINUTES?: string;
  UPSTREAM_TIMEOUT_MS?: string;
  CORS_ORIGINS?: string;
  DATA_ORIGIN?: string;
  RAW_RETENTION_DAYS?: string;
  STALE_AFTER_MINUTES?: string;
  OUTLIER_PCT?: string;
}
