import { createRouter } from "../../lib/router";
import * as handlers from "./data.handlers";
import * as routes from "./data.routes";

export const dataRouter = createRouter()
  .openapi(routes.list, handlers.list)
  // Before /data/{asset_uid}, which would take "export" for a uid.
  .openapi(routes.exportAssets, handlers.exportAssets)
  .openapi(routes.history, handlers.history)
  .openapi(routes.ohlc, handlers.ohlc)
  .openapi(routes.detail, handlers.detail);
