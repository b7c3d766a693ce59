/** One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, quotes doubled. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return "";
  const s = typeof v === "string" ? v : Array.isArray(v) ? v.join(" ") : typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export const csvRow = (values: readonly unknown[]) => `${values.map(csvField).join(",")}\r\n`;

/**
 * A streamed download: `chunks` are written as they are produced (an async source as it reads, e.g.
 * from D1), so a large export never sits in memory whole.
 */
export function download(
  chunks: Iterable<string> | AsyncIterable<string>,
  contentType: string,
  filename: string,
  headers: Record<string, string> = {},
) {
  const encoder = new TextEncoder();
  const it = Symbol.asyncIterator in chunks ? chunks[Symbol.asyncIterator]() : chunks[Symbol.iterator]();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await it.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
  });
  return new Response(body, {
    headers: { "content-type": contentType, "content-disposition": `attachment; filename="${filename}"`, ...headers },
  });
}
