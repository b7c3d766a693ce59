import type { RouteHandler } from "@hono/zod-openapi";
import { consensusRules } from "../../config";
import { resolveUid } from "../../db/queries/assets";
import { ApiError } from "../../lib/errors";
import { type AppEnv, envelope } from "../../lib/router";
import { pinMapping } from "../../unify/pin";
import type { PinRoute } from "./assets.routes";

export const pin: RouteHandler<PinRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const { source, source_id } = c.req.valid("json");
  const uid = await resolveUid(c.get("services").db, asset_uid);
  if (!uid) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  const s = c.get("services");
  return c.json(
    envelope(c, await pinMapping(s.db, s.env.BUCKET, consensusRules(s.config), { assetUid: uid, source, sourceId: source_id })),
    200,
  );
};
