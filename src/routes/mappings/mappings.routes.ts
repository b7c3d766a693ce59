import { createRoute, z } from "@hono/zod-openapi";
import { errorResponses } from "../../lib/openapi";
import { SourceIdsSchema } from "../../schemas/assets";
import { ContractSchema } from "../../schemas/contracts";

export const MAPPINGS_CSV_COLUMNS = [
  "asset_uid",
  "symbol",
  "name",
  "coingecko_id",
  "coinpaprika_id",
  "csv_id",
  "contracts",
  "rules",
  "pinned",
  "other_ids",
  "aliases",
] as const;

/** One asset of the crosswalk as an NDJSON line. */
export const MappingsLineSchema = z
  .object({
    asset_uid: z.string(),
    symbol: z.string(),
    name: z.string(),
    source_ids: SourceIdsSchema.openapi({
      description: "As /data serves them: the id each source's quote comes from (every mapped id is in `mappings`).",
    }),
    contracts: z.array(ContractSchema),
    mappings: z.array(z.object({ source: z.string(), source_id: z.string(), rule: z.string(), pinned: z.boolean() })),
    aliases: z.array(z.string()),
  })
  .openapi("MappingsLine");

export const exportMappings = createRoute({
  method: "get",
  path: "/mappings/export",
  tags: ["Data"],
  summary: "The cross-provider id map, one asset a row, streamed",
  description:
    "Every asset of /data with every provider id mapped to it, the contracts its ids list, the rule that decided each mapping and the pins (export them to re-apply after a rebuild). Streamed as it is read, in /data's default order (rank).",
  request: {
    query: z.object({
      format: z
        .enum(["csv", "ndjson"])
        .default("csv")
        .openapi({
          description: `\`csv\`: a header row, then one asset a row with columns ${MAPPINGS_CSV_COLUMNS.map((c) => `\`${c}\``).join(", ")}: \`<source>_id\` the id the source's quote comes from (as /data's \`source_ids\`), \`contracts\` \`chain:address\` pairs, \`rules\` \`source:rule\` pairs (one a mapping), \`pinned\` the pinned \`source:source_id\`s, \`other_ids\` the asset's other mapped \`source:source_id\`s, \`aliases\` its former uids, each space-separated. \`ndjson\`: one \`MappingsLine\` a line.`,
        }),
    }),
  },
  responses: {
    200: {
      description: "The crosswalk, streamed",
      content: { "text/csv": { schema: z.string() }, "application/x-ndjson": { schema: MappingsLineSchema } },
    },
    ...errorResponses("validation_error"),
  },
});

export type ExportMappingsRoute = typeof exportMappings;
