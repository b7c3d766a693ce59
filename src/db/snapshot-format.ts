/**
 * The /data snapshot as stored in R2: built for loading, not parsing. One ArrayBuffer holds a small
 * JSON header and 8-byte-aligned sections (typed-array columns, UTF-8 text with offsets, one index
 * array per sort order); an isolate that fetched it makes typed-array views over it and decodes
 * only the rows a request serves. Every sort order and every lookup index is computed once, here,
 * at publish.
 *
 *   "CFS2" | header length (u32) | header JSON | sections…
 */
const MAGIC = 0x32534643; // "CFS2", little-endian
const ALIGN = 8;

type Kind = "f64" | "i32" | "u32" | "u8";
type Section = { name: string; kind: Kind; data: Float64Array | Int32Array | Uint32Array | Uint8Array };
export type SnapshotHeader = {
  version: number;
  built_at: string;
  size: number;
  quotes: Record<string, number>;
  sections: Record<string, [offset: number, length: number, kind: Kind]>;
};

const encoder = new TextEncoder();

/** Strings as one UTF-8 text and the offset of each (length + 1 offsets). */
export function textSections(name: string, strings: string[]): Section[] {
  const parts = strings.map((s) => encoder.encode(s));
  const offsets = new Uint32Array(strings.length + 1);
  let total = 0;
  parts.forEach((p, i) => {
    offsets[i] = total;
    total += p.byteLength;
  });
  offsets[strings.length] = total;
  const text = new Uint8Array(total);
  parts.forEach((p, i) => {
    text.set(p, offsets[i]);
  });
  return [
    { name: `${name}.offsets`, kind: "u32", data: offsets },
    { name: `${name}.text`, kind: "u8", data: text },
  ];
}

/** Section offsets count from the first 8-byte boundary after the header, so the header need not know its own size. */
const dataStart = (headerBytes: number) => Math.ceil((8 + headerBytes) / ALIGN) * ALIGN;

export function encodeSections(meta: Omit<SnapshotHeader, "sections">, sections: Section[]): Uint8Array {
  const placed: SnapshotHeader["sections"] = {};
  let end = 0;
  for (const s of sections) {
    placed[s.name] = [end, s.data.length, s.kind];
    end = Math.ceil((end + s.data.byteLength) / ALIGN) * ALIGN;
  }
  const header = encoder.encode(JSON.stringify({ ...meta, sections: placed }));
  const start = dataStart(header.byteLength);
  const bytes = new Uint8Array(start + end);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, header.byteLength, true);
  bytes.set(header, 8);
  for (const s of sections) bytes.set(new Uint8Array(s.data.buffer, s.data.byteOffset, s.data.byteLength), start + placed[s.name][0]);
  return bytes;
}

const decoder = new TextDecoder();

/** Typed-array views over a stored snapshot: nothing is copied or parsed but the header. */
export class SnapshotSections {
  readonly header: SnapshotHeader;
  private readonly start: number;

  constructor(readonly buffer: ArrayBuffer) {
    const view = new DataView(buffer);
    if (buffer.byteLength < 8 || view.getUint32(0, true) !== MAGIC) throw new Error("not a coinfuse snapshot");
    const length = view.getUint32(4, true);
    this.header = JSON.parse(decoder.decode(new Uint8Array(buffer, 8, length)));
    this.start = dataStart(length);
  }

  f64(name: string) {
    const [offset, length] = this.at(name);
    return new Float64Array(this.buffer, offset, length);
  }
  i32(name: string) {
    const [offset, length] = this.at(name);
    return new Int32Array(this.buffer, offset, length);
  }
  u32(name: string) {
    const [offset, length] = this.at(name);
    return new Uint32Array(this.buffer, offset, length);
  }
  u8(name: string) {
    const [offset, length] = this.at(name);
    return new Uint8Array(this.buffer, offset, length);
  }
  has(name: string) {
    return name in this.header.sections;
  }
  text(name: string) {
    return new TextList(this.u32(`${name}.offsets`), this.u8(`${name}.text`));
  }

  private at(name: string): [number, number] {
    const s = this.header.sections[name];
    if (!s) throw new Error(`snapshot has no section ${name}`);
    return [this.start + s[0], s[1]];
  }
}

/** A list of strings stored as textSections wrote them, decoded one at a time. */
export class TextList {
  readonly length: number;
  constructor(
    private readonly offsets: Uint32Array,
    private readonly bytes: Uint8Array,
  ) {
    this.length = offsets.length - 1;
  }
  get(i: number) {
    return decoder.decode(this.bytes.subarray(this.offsets[i], this.offsets[i + 1]));
  }
}

/** First position in [0, n) whose key is >= `target` (keys ascending). */
export function lowerBound(n: number, key: (pos: number) => string, target: string) {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(mid) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
