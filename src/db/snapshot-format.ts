import { deflateRawSync, inflateRawSync } from "node:zlib";
import type { StoredRate } from "./schema";

/**
 * The /data snapshot as stored in R2: built for loading, not parsing, and inflated only where it is
 * read. Its sections are typed-array columns, UTF-8 text with offsets and one index array per sort
 * order; an isolate makes typed-array views over them and decodes only the rows a request serves.
 * Every sort order and every lookup index is computed once, at publish.
 *
 * Stored, each section is its own deflate member, except the sections read a row at a time (an
 * asset's numbers and text), which are stored a block of ROWS_PER_BLOCK rows to a member. An isolate
 * inflates a member into a buffer of its own the first time it reads it, so, having just fetched the
 * snapshot, it inflates for its first page that page's order and the blocks of its rows (about a
 * megabyte at 132,000 assets), not the whole (about 14 MB); the rest is inflated behind the requests
 * (`complete`).
 *
 * Indexes (row numbers, text offsets, positions in a list) are `uint` sections: unsigned integers
 * in the fewest whole bytes (1 to 4) that hold the section's largest, little-endian, so 132,000 rows
 * take 3 bytes each and a list of a few hundred strings 2.
 *
 *   "CFS4" | header length (u32) | header JSON | members…
 */
/** This build's format, as the magic spells it: a snapshot stored by a build of another is published again. */
export const SNAPSHOT_FORMAT = "CFS4";
const MAGIC = 0x34534643; // SNAPSHOT_FORMAT, little-endian (CFS3 was one gzipped buffer)
const ALIGN = 8;
/** Rows a member of the row sections holds: a page of 50 rows in any order inflates about 50 blocks of ~20 KB. */
const ROWS_PER_BLOCK = 256;

type Kind = "f64" | "i32" | "u8" | "uint";
type Section =
  | { name: string; kind: "f64"; data: Float64Array }
  | { name: string; kind: "i32"; data: Int32Array }
  | { name: string; kind: "u8"; data: Uint8Array }
  | { name: string; kind: "uint"; data: Uint8Array; count: number; width: number };
type Placed = [offset: number, length: number, kind: Kind, width?: number];
export type SnapshotHeader = {
  version: number;
  built_at: string;
  size: number;
  quotes: Record<string, number>;
  /** The latest FX rates of each source when it was built (fx_rates' rows). */
  fx: { source: string; rates: Record<string, StoredRate> }[];
  /** Where each section starts in the data, how many values it holds, their kind, and a uint's bytes per value. */
  sections: Record<string, Placed>;
  /** Bytes of data the sections take. */
  bytes: number;
  /** The sections stored by blocks of rows, in the order a block's member holds them (offsets before their text). */
  by_row: string[];
};
/** The header as stored: each member's deflated length, the sections' members first (in `sections` order, less `by_row`), then the row blocks'. */
type StoredHeader = SnapshotHeader & { members: number[] };
export type Snapshot = { header: SnapshotHeader; data: Uint8Array };

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
const textOffsets = (name: string) => name.replace(/\.text$/, ".offsets");

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

/**
 * Lays the sections out one after another, 8-byte-aligned (the data `packSnapshot` stores). `byRow`
 * names the sections that hold a value per row (`size` of them, or a text's `size + 1` offsets and
 * its text), stored by row blocks.
 */
export function encodeSections(
  meta: Omit<SnapshotHeader, "sections" | "bytes" | "by_row">,
  sections: Section[],
  byRow: string[] = [],
): Snapshot {
  const placed: SnapshotHeader["sections"] = {};
  let end = 0;
  for (const s of sections) {
    placed[s.name] = s.kind === "uint" ? [end, s.count, s.kind, s.width] : [end, s.data.length, s.kind];
    end = Math.ceil((end + s.data.byteLength) / ALIGN) * ALIGN;
  }
  const data = new Uint8Array(end);
  for (const s of sections) data.set(new Uint8Array(s.data.buffer, s.data.byteOffset, s.data.byteLength), placed[s.name][0]);
  for (const name of byRow) {
    if (!placed[name]) throw new Error(`no section ${name} to store by rows`);
    if (name.endsWith(".text") && !byRow.includes(textOffsets(name))) throw new Error(`${name} by rows without its offsets`);
  }
  // In a row block's member, wider values first, so each stays aligned in its buffer; a text after its offsets.
  const order = (n: string) => (n.endsWith(".text") ? 9 : -bytesPer(placed[n]));
  const by_row = [...byRow].sort((x, y) => order(x) - order(y));
  return { header: { ...meta, sections: placed, bytes: end, by_row }, data };
}

const bytesPer = ([, , kind, width]: Placed) => (kind === "f64" ? 8 : kind === "i32" ? 4 : kind === "u8" ? 1 : width!);

/** The members of a snapshot, in stored order: the sections stored whole, then the row blocks. */
function memberLayout(header: SnapshotHeader) {
  const whole = Object.keys(header.sections).filter((n) => !header.by_row.includes(n));
  const blocks = Math.ceil(header.size / ROWS_PER_BLOCK);
  return {
    whole,
    count: whole.length + blocks,
    /** The rows [first, last) of row block member m. */
    rows(m: number) {
      const first = (m - whole.length) * ROWS_PER_BLOCK;
      return { first, last: Math.min(header.size, first + ROWS_PER_BLOCK) };
    },
    blockOf: (i: number) => whole.length + Math.floor(i / ROWS_PER_BLOCK),
  };
}

/** A fixed-width section's values in a row block: one per row, and a text's offsets one more. */
const valuesInBlock = (name: string, rows: number) => (name.endsWith(".offsets") ? rows + 1 : rows);

/** The snapshot as stored: its header and its members, deflated; a member is its sections' bytes one after another. */
export function packSnapshot({ header, data }: Snapshot): Uint8Array {
  const layout = memberLayout(header);
  const members: Uint8Array[] = [];
  for (let m = 0; m < layout.count; m++) {
    const ranges: [number, number][] = [];
    if (m < layout.whole.length) {
      const s = header.sections[layout.whole[m]];
      ranges.push([s[0], s[0] + s[1] * bytesPer(s)]);
    } else {
      const { first, last } = layout.rows(m);
      for (const name of header.by_row) {
        const s = header.sections[name];
        if (name.endsWith(".text")) {
          const [at, count, , width] = header.sections[textOffsets(name)];
          const offsets = new Uints(data.subarray(at, at + count * width!), width!, count);
          ranges.push([s[0] + offsets.get(first), s[0] + offsets.get(last)]);
        } else ranges.push([s[0] + first * bytesPer(s), s[0] + (first + valuesInBlock(name, last - first)) * bytesPer(s)]);
      }
    }
    const raw = new Uint8Array(ranges.reduce((n, [a, b]) => n + b - a, 0));
    let at = 0;
    for (const [a, b] of ranges) {
      raw.set(data.subarray(a, b), at);
      at += b - a;
    }
    members.push(deflateRawSync(raw));
  }
  const stored: StoredHeader = { ...header, members: members.map((b) => b.byteLength) };
  const head = encoder.encode(JSON.stringify(stored));
  const out = new Uint8Array(8 + head.byteLength + stored.members.reduce((n, b) => n + b, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, head.byteLength, true);
  out.set(head, 8);
  let at = 8 + head.byteLength;
  for (const b of members) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

const decoder = new TextDecoder();

type View = Float64Array | Int32Array | Uint8Array | Uints;

/** Named views over one member's inflated bytes: a whole section, or the rows of a block. */
export class Views {
  constructor(private readonly views: Map<string, View>) {}
  f64(name: string) {
    return this.get(name, Float64Array);
  }
  i32(name: string) {
    return this.get(name, Int32Array);
  }
  u8(name: string) {
    return this.get(name, Uint8Array);
  }
  uint(name: string) {
    return this.get(name, Uints);
  }
  text(name: string) {
    return new TextList(this.uint(`${name}.offsets`), this.u8(`${name}.text`));
  }
  private get<T extends View>(name: string, kind: abstract new (...a: never[]) => T): T {
    const v = this.views.get(name);
    if (!(v instanceof kind)) throw new Error(`snapshot has no ${kind.name} section ${name} here`);
    return v;
  }
}

/**
 * A stored snapshot, inflated a member at a time: a section stored whole the first time it is asked
 * for, a row block the first time one of its rows is. Each member gets its own buffer, so nothing is
 * allocated for what no request reads.
 */
export class SnapshotSections {
  private readonly layout: ReturnType<typeof memberLayout>;
  private readonly members: (Views | undefined)[];
  private readonly blocks: (RowBlock | undefined)[] = [];
  private completing?: Promise<void>;
  /** The stored object and each member's start in it; null once every member is inflated. */
  private packed: { bytes: Uint8Array; starts: number[] } | null;

  private constructor(
    readonly header: SnapshotHeader,
    bytes: Uint8Array,
    starts: number[],
  ) {
    this.layout = memberLayout(header);
    this.members = new Array(this.layout.count);
    this.packed = { bytes, starts };
  }

  /** A stored snapshot: only its header is read now. */
  static unpack(buffer: ArrayBuffer) {
    const view = new DataView(buffer);
    if (buffer.byteLength < 8 || view.getUint32(0, true) !== MAGIC) throw new Error("not a coinfuse snapshot in this format");
    const length = view.getUint32(4, true);
    const header: StoredHeader = JSON.parse(decoder.decode(new Uint8Array(buffer, 8, length)));
    const starts = [8 + length];
    for (const n of header.members) starts.push(starts.at(-1)! + n);
    if (header.members.length !== memberLayout(header).count || starts.at(-1) !== buffer.byteLength)
      throw new Error("a snapshot whose members do not add up");
    return new SnapshotSections(header, new Uint8Array(buffer), starts);
  }

  /** Members not inflated yet (0 once complete). */
  get pending() {
    return this.members.length - this.members.filter(Boolean).length;
  }

  // Sections stored whole, each inflated the first time it is asked for.
  f64(name: string) {
    return this.whole(name).f64(name);
  }
  i32(name: string) {
    return this.whole(name).i32(name);
  }
  u8(name: string) {
    return this.whole(name).u8(name);
  }
  uint(name: string) {
    return this.whole(name).uint(name);
  }
  text(name: string) {
    return new TextList(this.uint(`${name}.offsets`), this.u8(`${name}.text`));
  }

  private whole(name: string) {
    const m = this.layout.whole.indexOf(name);
    if (m < 0) throw new Error(`snapshot has no section ${name} stored whole`);
    return this.inflated(m);
  }

  /** The row block that holds row i. */
  block(i: number): RowBlock {
    const m = this.layout.blockOf(i);
    let b = this.blocks[m];
    if (!b) {
      b = { first: this.layout.rows(m).first, views: this.inflated(m) };
      this.blocks[m] = b;
    }
    return b;
  }

  /**
   * Inflates every member not read yet, then drops the stored copy. It pauses after every
   * `storedBytesAtATime` of members (about a millisecond's inflating), so requests run in between.
   */
  complete(storedBytesAtATime = 128 * 1024) {
    this.completing ??= this.inflateRest(storedBytesAtATime);
    return this.completing;
  }

  private async inflateRest(storedBytesAtATime: number) {
    const pause = () => new Promise((resolve) => setTimeout(resolve, 0));
    let done = 0;
    for (let m = 0; this.packed && m < this.members.length; m++) {
      if (this.members[m]) continue;
      if (done >= storedBytesAtATime) {
        await pause();
        done = 0;
      }
      done += this.packed.starts[m + 1] - this.packed.starts[m];
      this.inflated(m);
    }
    this.packed = null;
  }

  private inflated(m: number): Views {
    const done = this.members[m];
    if (done) return done;
    const { bytes, starts } = this.packed!;
    let raw: Uint8Array = inflateRawSync(bytes.subarray(starts[m], starts[m + 1]));
    // Typed arrays need their own alignment: a member starts at 8 and keeps it (encodeSections orders a block's sections so).
    if (raw.byteOffset % ALIGN) raw = new Uint8Array(raw);
    const views = new Map<string, View>();
    let at = 0;
    const take = (name: string, count: number) => {
      const s = this.header.sections[name];
      const end = at + count * bytesPer(s);
      if (end > raw.byteLength) throw new Error(`snapshot member ${m} is shorter than its sections`);
      const b = raw.buffer;
      const o = raw.byteOffset + at;
      views.set(
        name,
        s[2] === "f64"
          ? new Float64Array(b, o, count)
          : s[2] === "i32"
            ? new Int32Array(b, o, count)
            : s[2] === "u8"
              ? new Uint8Array(b, o, count)
              : new Uints(new Uint8Array(b, o, count * s[3]!), s[3]!, count),
      );
      at = end;
    };
    if (m < this.layout.whole.length) take(this.layout.whole[m], this.header.sections[this.layout.whole[m]][1]);
    else {
      const { first, last } = this.layout.rows(m);
      for (const name of this.header.by_row) {
        if (!name.endsWith(".text")) take(name, valuesInBlock(name, last - first));
        else {
          const offsets = views.get(textOffsets(name)) as Uints;
          take(name, offsets.get(last - first) - offsets.get(0));
        }
      }
    }
    if (at !== raw.byteLength) throw new Error(`snapshot member ${m} is longer than its sections`);
    const out = new Views(views);
    this.members[m] = out;
    return out;
  }
}

/** A block of rows: row i of a section stored by rows is value `i - first` of its view here. */
export type RowBlock = { first: number; views: Views };

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
  /** String i; the bytes start at the first offset (a row block's text is a slice of the whole). */
  get(i: number) {
    const base = this.offsets.get(0);
    return decoder.decode(this.bytes.subarray(this.offsets.get(i) - base, this.offsets.get(i + 1) - base));
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
