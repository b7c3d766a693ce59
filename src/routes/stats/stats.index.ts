import { createRouter } from "../../lib/router";
import * as handlers from "./stats.handlers";
import * as routes from "./stats.routes";

export const statsRouter = createRouter()
  .openapi(routes.stats, handlers.stats)
  .openapi(routes.runs, handlers.runs)
  .openapi(routes.checkpoints, handlers.checkpoints)
  .openapi(routes.ambiguities, handlers.ambiguities)
  .openapi(routes.moves, handlers.moves);
