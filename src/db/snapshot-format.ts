/**
 * The /data snapshot as stored in R2: built for loading, not parsing. One ArrayBuffer holds a small
 * JSON header and 8-byte-aligned sections (typed-array columns, UTF-8 text with offsets, one index
 * array per sort order); an isolate that fetched it makes views over it and decodes only the rows
 * a request serves. Every sort order and every lookup index is computed once, here, at publish.
 *
 * Indexes (row numbers, text offsets, positions in a list) are `uint` sections: unsigned integers
 * in the fewest whole bytes (1 to 4) that hold the section's largest, little-endian, so 132,000 rows
 * take 3 bytes each and a list of a few hundred strings 2.
 *
 *   "CFS3" | header length (u32) | header JSON | sections…
 */
const MAGIC = 0x33534643; // "CFS3", little-endian (CFS2 stored every index as 4 bytes)
const ALIGN = 8;

type Kind = "f64" | "i32" | "u8" | "uint";
type Section =
  | { name: string; kind: "f64"; data: Float64Array }
  | { name: string; kind: "i32"; data: Int32Array }
  | { name: string; kind: "u8"; data: Uint8Array }
  | { name: string; kind: "uint"; data: Uint8Array; count: number; width: number };
export type SnapshotHeader = {
  version: number;
  built_at: string;
  size: number;
  quotes: Record<string, number>;
  /** Where each section starts (from the data start), how many values it holds, their kind, and a uint's bytes per value. */
  sections: Record<string, [offset: number, length: number, kind: Kind, width?: number]>;
};

/** Unsigned integers (each below 2^32) as a uint section: every value in the fewest bytes that hold the largest. */
export function uintSection(name: string, values: ArrayLike<number>): Section {
  let max = 0;
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 32)) throw new Error(`${name}: ${v} is not an unsigned 32-bit integer`);
    if (v > max) max = v;
  }
  const width = max < 2 ** 8 ? 1 : max < 2 ** 16 ? 2 : max < 2 ** 24 ? 3 : 4;
  const data = new Uint8Array(values.length * width);
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    for (let b = 0; b < width; b++) data[k * width + b] = (v >>> (8 * b)) & 0xff;
  }
  return { name, kind: "uint", data, count: values.length, width };
}

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
  return [uintSection(`${name}.offsets`, offsets), { name: `${name}.text`, kind: "u8", data: text }];
}

/** Section offsets count from the first 8-byte boundary after the header, so the header need not know its own size. */
const dataStart = (headerBytes: number) => Math.ceil((8 + headerBytes) / ALIGN) * ALIGN;

export function encodeSections(meta: Omit<SnapshotHeader, "sections">, sections: Section[]): Uint8Array {
  const placed: SnapshotHeader["sections"] = {};
  let end = 0;
  for (const s of sections) {
    placed[s.name] = s.kind === "uint" ? [end, s.count, s.kind, s.width] : [end, s.data.length, s.kind];
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
  uint(name: string) {
    const [offset, length] = this.at(name);
    const width = this.header.sections[name][3] ?? 0;
    return new Uints(new Uint8Array(this.buffer, offset, length * width), width, length);
  }
  u8(name: string) {
    const [offset, length] = this.at(name);
    return new Uint8Array(this.buffer, offset, length);
  }
  text(name: string) {
    return new TextList(this.uint(`${name}.offsets`), this.u8(`${name}.text`));
  }

  private at(name: string): [number, number] {
    const s = this.header.sections[name];
    if (!s) throw new Error(`snapshot has no section ${name}`);
    return [this.start + s[0], s[1]];
  }
}

/** A uint section as uintSection wrote it: value k is `width` little-endian bytes at k * width. */
export class Uints {
  constructor(
    private readonly bytes: Uint8Array,
    readonly width: number,
    readonly length: number,
  ) {
    if (width < 1 || width > 4) throw new Error(`a uint section of ${width} bytes a value`);
  }
  get(k: number) {
    const b = this.bytes;
    const o = k * this.width;
    switch (this.width) {
      case 1:
        return b[o];
      case 2:
        return b[o] | (b[o + 1] << 8);
      case 3:
        return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16);
      default:
        return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
    }
  }
}

/** A list of strings stored as textSections wrote them, decoded one at a time. */
export class TextList {
  readonly length: number;
  constructor(
    private readonly offsets: Uints,
    private readonly bytes: Uint8Array,
  ) {
    this.length = offsets.length - 1;
  }
  get(i: number) {
    return decoder.decode(this.bytes.subarray(this.offsets.get(i), this.offsets.get(i + 1)));
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
