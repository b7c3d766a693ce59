import type { D1Migration } from "cloudflare:test";

// Cloudflare.Env and the main module's type come from worker-configuration.d.ts (`npm run cf-typegen`).
declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
    }
  }
}
