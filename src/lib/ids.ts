/** Sortable ids: a millisecond timestamp in base 36 (fixed width) and random tail. */
export function newId(prefix: string, at = Date.now()): string {
  const time = at.toString(36).padStart(9, "0");
  const rand = crypto.getRandomValues(new Uint8Array(6));
  return `${prefix}_${time}${Array.from(rand, (b) => b.toString(36).padStart(2, "0")).join("")}`;
}
