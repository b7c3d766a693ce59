import { createRouter } from "../../lib/router";
import * as handlers from "./data.handlers";
import * as routes from "./data.routes";

export const dataRouter = createRouter()
  .openapi(routes.list, handlers.list)
  .openapi(routes.history, handlers.history)
  .openapi(routes.detail, handlers.detail);
