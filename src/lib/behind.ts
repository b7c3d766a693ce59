import { log } from "./log";

/**
 * How long work left behind a request waits before it starts. Started at once, a binding's first
 * call or a long inflate holds the response up (by 10–30 ms under `wrangler dev`, measured); waiting
 * lets the response go out first; in production it only delays work no response waits for.
 */
const AFTER_RESPONSE_MS = 50;

/** Work a request leaves behind it: started once the response has had time to go out; a failure is logged as `what`. */
export type Behind = (work: () => Promise<unknown>, what: string) => void;

export const behindRequest =
  (ctx: Pick<ExecutionContext, "waitUntil">): Behind =>
  (work, what) =>
    ctx.waitUntil(
      new Promise((resolve) => setTimeout(resolve, AFTER_RESPONSE_MS))
        .then(work)
        .catch((e) => log("warn", `${what}_failed`, { error: String(e) })),
    );
