/** The one clock. Tests replace it with setClock to control time. */
let current: () => number = () => Date.now();

export const now = () => current();
export const nowIso = () => new Date(current()).toISOString();
export function setClock(fn: () => number) {
  current = fn;
}
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
