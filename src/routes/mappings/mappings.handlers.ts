import type { RouteHandler, z } from "@hono/zod-openapi";
import type { SOURCES } from "../../config";
import { aliasesByAsset, mappingsOfAssets } from "../../db/queries/mappings";
import { csvRow, download } from "../../lib/csv-out";
import { readCacheHeaders } from "../../lib/http-cache";
import type { AppEnv } from "../../lib/router";
import type { Asset } from "../../schemas/assets";
import { type ExportMappingsRoute, MAPPINGS_CSV_COLUMNS, type MappingsLineSchema } from "./mappings.routes";

/**
 * Assets per D1 round trip: a chunk's uids travel as one JSON parameter and its mappings and contracts
 * come back in one batch, so 130,000 assets take some 65 round trips (well inside an invocation's
 * subrequests) and memory holds one chunk at a time.
 */
const CHUNK = 2000;

type Line = z.infer<typeof MappingsLineSchema>;

export const exportMappings: RouteHandler<ExportMappingsRoute, AppEnv> = async (c) => {
  const { format } = c.req.valid("query");
  const s = c.get("services");
  const db = s.readDb;
  const model = await s.readModel();
  const aliases = model ? await aliasesByAsset(db) : new Map<string, string[]>();

  /** The /data universe in its default order, a chunk at a time, each asset with its mappings and contracts. */
  async function* lines(): AsyncGenerator<Line[]> {
    if (!model) return;
    for (const chunk of model.each({ sort: "rank", order: "asc" }, CHUNK)) {
      const found = await mappingsOfAssets(
        db,
        chunk.map((a) => a.asset_uid),
      );
      yield chunk.map((a) => lineOf(a, found.get(a.asset_uid), aliases.get(a.asset_uid) ?? []));
    }
  }

  const headers = readCacheHeaders();
  if (format === "ndjson") {
    const body = (async function* () {
      for await (const chunk of lines()) yield chunk.map((l) => `${JSON.stringify(l)}\n`).join("");
    })();
    return download(body, "application/x-ndjson; charset=utf-8", "coinfuse-mappings.ndjson", headers);
  }
  const body = (async function* () {
    yield csvRow(MAPPINGS_CSV_COLUMNS);
    for await (const chunk of lines()) yield chunk.map(csvLine).join("");
  })();
  return download(body, "text/csv; charset=utf-8", "coinfuse-mappings.csv", headers);
};

function lineOf(a: Asset, found: { mappings: Line["mappings"]; contracts: Line["contracts"] } | undefined, aliases: string[]): Line {
  // source_ids as /data serves them (the id each source's quote comes from); every mapped id is in mappings.
  return {
    asset_uid: a.asset_uid,
    symbol: a.symbol,
    name: a.name,
    source_ids: a.source_ids,
    contracts: found?.contracts ?? [],
    mappings: found?.mappings ?? [],
    aliases,
  };
}

const csvLine = (l: Line) =>
  csvRow([
    l.asset_uid,
    l.symbol,
    l.name,
    l.source_ids.coingecko,
    l.source_ids.coinpaprika,
    l.source_ids.csv,
    l.contracts.map((x) => `${x.chain}:${x.address}`),
    l.mappings.map((m) => `${m.source}:${m.rule}`),
    l.mappings.filter((m) => m.pinned).map((m) => `${m.source}:${m.source_id}`),
    l.mappings.filter((m) => l.source_ids[m.source as (typeof SOURCES)[number]] !== m.source_id).map((m) => `${m.source}:${m.source_id}`),
    l.aliases,
  ]);
