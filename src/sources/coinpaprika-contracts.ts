import { chainOf } from "./chains";
import { coinpaprikaRequest } from "./coinpaprika";
import {
  badSourceId,
  byPlatform,
  type ContractRow,
  type ContractSourceAdapter,
  type ContractsNormalised,
  checkAddress,
  contractRejection,
  isPlatformId,
} from "./contracts";
import { isObject } from "./fx";
import { PayloadError } from "./source";

/**
 * CoinPaprika's `/contracts` (`[<platform_id>]`) and `/contracts/{platform_id}`
 * (`[{address, id, type, active}]`): one call per platform. A contract marked `active: false` is
 * kept (it is still found by lookups) with its flag.
 */
export const coinpaprikaContracts: ContractSourceAdapter = {
  name: "coinpaprika",
  listing(config) {
    return coinpaprikaRequest(config, "/contracts");
  },
  normaliseListing(body) {
    if (!Array.isArray(body)) throw new PayloadError("coinpaprika /contracts did not return an array");
    const rejected: ContractsNormalised["rejected"] = [];
    const platforms = new Set<string>();
    body.forEach((p, i) => {
      if (typeof p === "string" && isPlatformId(p)) platforms.add(p);
      else
        rejected.push(
          contractRejection(
            "coinpaprika",
            `platform:#${i}`,
            null,
            `platform ${i}: ${JSON.stringify(p)?.slice(0, 60)} is not a platform id`,
          ),
        );
    });
    return {
      platforms: [...platforms].sort().map((platform) => ({ platform, chain: chainOf("coinpaprika", platform), rows: [] })),
      rejected,
      perPlatform: true,
    };
  },
  platformRequest(config, platform) {
    return coinpaprikaRequest(config, `/contracts/${encodeURIComponent(platform)}`);
  },
  normalisePlatform(platform, body) {
    if (!Array.isArray(body)) throw new PayloadError(`coinpaprika /contracts/${platform} did not return an array`);
    const chain = chainOf("coinpaprika", platform);
    const rejected: ContractsNormalised["rejected"] = [];
    const entries: { platform: string; row: ContractRow }[] = [];
    body.forEach((c, i) => {
      const r = isObject(c) ? c : {};
      const idProblem = badSourceId(r.id);
      const sourceId = idProblem ? null : (r.id as string);
      const key = `coinpaprika:${platform}:${sourceId ?? `#${i}`}:${typeof r.address === "string" ? r.address.slice(0, 100) : i}`;
      if (idProblem) {
        rejected.push(contractRejection("coinpaprika", key, null, `${platform} record ${i}: ${idProblem}`));
        return;
      }
      if (r.active !== undefined && r.active !== null && typeof r.active !== "boolean") {
        rejected.push(
          contractRejection(
            "coinpaprika",
            key,
            sourceId,
            `${sourceId} on ${platform}: active must be true or false, got ${JSON.stringify(r.active)?.slice(0, 20)}`,
          ),
        );
        return;
      }
      const checked = checkAddress(chain, r.address);
      if (!checked) return;
      if ("reason" in checked)
        rejected.push(contractRejection("coinpaprika", key, sourceId, `${sourceId} on ${platform}: ${checked.reason}`));
      else entries.push({ platform, row: { sourceId: sourceId!, chain, address: checked.address, active: r.active !== false } });
    });
    const [list] = byPlatform("coinpaprika", entries);
    return { platforms: [list ?? { platform, chain, rows: [] }], rejected };
  },
};
