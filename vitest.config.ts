import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => ({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          TEST_MIGRATIONS: await readD1Migrations("./migrations"),
          ADMIN_TOKEN: "test-admin-token",
          READ_RATE_LIMIT: "off",
          COINGECKO_BASE_URL: "https://gecko.test/api/v3",
          COINPAPRIKA_BASE_URL: "https://paprika.test/v1",
          COINGECKO_API_KEY: "test-gecko-key",
          // Contract lists are fetched only by the tests that serve them (test/contracts-*.test.ts).
          IDENTITY_REFRESH_HOURS: "0",
        },
      },
    }),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    testTimeout: 30_000,
    // Structured logs are shown for failing tests only.
    silent: "passed-only" as const,
    hookTimeout: 60_000,
  },
}));
