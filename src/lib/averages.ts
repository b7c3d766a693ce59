export function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return null;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * The mean of the items' known values, each weighed by how many observations it stands for (a
 * rolled-up point's weight); null when no item has a value.
 */
export function weightedAverage<T>(
  items: readonly T[],
  value: (item: T, i: number) => number | null | undefined,
  weight: (item: T, i: number) => number,
) {
  let sum = 0;
  let total = 0;
  items.forEach((item, i) => {
    const v = value(item, i);
    if (v === null || v === undefined) return;
    const w = weight(item, i);
    sum += v * w;
    total += w;
  });
  return total ? sum / total : null;
}
