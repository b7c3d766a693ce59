import { createRouter } from "../../lib/router";
import * as handlers from "./currencies.handlers";
import * as routes from "./currencies.routes";

export const currenciesRouter = createRouter().openapi(routes.list, handlers.list);
