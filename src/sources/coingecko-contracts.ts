import { chainOf } from "./chains";
import { coingeckoRequest } from "./coingecko";
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
 * CoinGecko's `/coins/list?include_platform=true`: every coin (some 17,000) in one payload, each
 * with `platforms: {<platform>: <address> | "" | null}`; an empty or null address (native coins
 * list `{"": ""}`) is no contract.
 */
export const coingeckoContracts: ContractSourceAdapter = {
  name: "coingecko",
  listing(config) {
    return coingeckoRequest(config, "/coins/list?include_platform=true");
  },
  normaliseListing(body) {
    if (!Array.isArray(body)) throw new PayloadError("coingecko /coins/list did not return an array");
    const rejected: ContractsNormalised["rejected"] = [];
    const entries: { platform: string; row: ContractRow }[] = [];
    body.forEach((coin, i) => {
      const id = isObject(coin) ? coin.id : undefined;
      const idProblem = badSourceId(id);
      if (idProblem) {
        rejected.push(contractRejection("coingecko", `coingecko:#${i}`, null, `record ${i}: ${idProblem}`));
        return;
      }
      const sourceId = id as string;
      const platforms = (coin as Record<string, unknown>).platforms;
      if (platforms === undefined || platforms === null) return;
      if (!isObject(platforms)) {
        rejected.push(contractRejection("coingecko", `coingecko:${sourceId}`, sourceId, `${sourceId}: platforms must be an object`));
        return;
      }
      for (const [platform, value] of Object.entries(platforms)) {
        // A platform key with no address says nothing, whatever the key (native coins list {"": ""}).
        if (value === null || value === undefined || (typeof value === "string" && !value.trim())) continue;
        const key = `coingecko:${sourceId}:${platform}`;
        if (!isPlatformId(platform)) {
          rejected.push(
            contractRejection(
              "coingecko",
              key,
              sourceId,
              `${sourceId}: platform ${JSON.stringify(platform.slice(0, 40))} is not a platform id`,
            ),
          );
          continue;
        }
        const chain = chainOf("coingecko", platform);
        const checked = checkAddress(chain, value);
        if (!checked) continue;
        if ("reason" in checked)
          rejected.push(contractRejection("coingecko", key, sourceId, `${sourceId} on ${platform}: ${checked.reason}`));
        else entries.push({ platform, row: { sourceId, chain, address: checked.address, active: true } });
      }
    });
    return { platforms: byPlatform("coingecko", entries), rejected, perPlatform: false };
  },
};
