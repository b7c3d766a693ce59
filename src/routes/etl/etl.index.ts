import { requireAdmin } from "../../lib/auth";
import { createRouter } from "../../lib/router";
import * as handlers from "./etl.handlers";
import * as routes from "./etl.routes";

export const etlRouter = createRouter();
etlRouter
  .use("/etl/run/*", requireAdmin)
  .use("/etl/run-all", requireAdmin)
  .use("/etl/replay", requireAdmin)
  .use("/etl/rebuild", requireAdmin);
etlRouter
  .openapi(routes.runOne, handlers.runOne)
  .openapi(routes.runAll, handlers.runAll)
  .openapi(routes.replay, handlers.replay)
  .openapi(routes.rebuild, handlers.rebuild)
  .openapi(routes.getRun, handlers.getRun);
