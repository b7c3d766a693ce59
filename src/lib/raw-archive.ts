/** Raw upstream bodies are stored gzipped in R2 (upstream JSON shrinks about tenfold; R2 bills storage by the GB-month). */
export async function gzip(bytes: Uint8Array) {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
}

/** An archived body as it was received: gunzipped when it was stored compressed (archives of earlier builds were not). */
export async function readArchived(bucket: R2Bucket, key: string): Promise<ReadableStream<Uint8Array> | null> {
  const object = await bucket.get(key);
  return object ? unpacked(object) : null;
}

/** An R2 object's body as it was before `gzip`, when it was stored compressed. */
export const unpacked = (object: R2ObjectBody): ReadableStream<Uint8Array> =>
  object.httpMetadata?.contentEncoding === "gzip" ? object.body.pipeThrough(new DecompressionStream("gzip")) : object.body;
