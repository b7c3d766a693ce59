import Papa from "papaparse";
import { derivedSourceId, toIsoTime, validateQuote } from "./source-quote";

/** Canonical CSV columns and the header spellings that mean them (SPEC §3). */
const ALIASES = {
  id: ["id", "coin_id", "asset_id", "coingecko_id", "slug"],
  symbol: ["symbol", "ticker"],
  name: ["name", "asset_name", "coin_name"],
  rank: ["rank", "market_cap_rank", "cmc_rank"],
  price: ["price", "price_usd", "priceUsd", "current_price", "usd_price", "close"],
  market_cap: ["market_cap", "market_cap_usd", "marketCapUsd", "mcap"],
  volume_24h: [
    "volume_24h",
    "volume_usd_24h",
    "volumeUsd24Hr",
    "total_volume",
    "volume",
    "volume_24h_usd",
    "24h_volume",
    "volume_24hr",
    "vol_24h",
  ],
  change_24h: [
    "change_24h",
    "change_percent_24h",
    "changePercent24Hr",
    "price_change_percentage_24h",
    "percent_change_24h",
    "change_24h_%",
    "24h_change",
    "%_change_24h",
    "change_24h_pct",
  ],
  supply: ["supply", "circulating_supply"],
  max_supply: ["max_supply", "maxSupply"],
  total_supply: ["total_supply", "totalSupply"],
  timestamp: ["timestamp", "updated_at", "last_updated", "date", "time"],
} as const;
export type CsvColumn = keyof typeof ALIASES;

/** Header cells compare without case, spaces or punctuation: "Price (USD)" = "price_usd", "% Change 24h" = "%_change_24h". */
const headerKey = (h: string) =>
  h
    .replace(/^\uFEFF/, "")
    .toLowerCase()
    .replace(/[^a-z0-9%]+/g, "");
const LOOKUP = new Map<string, CsvColumn>(
  (Object.entries(ALIASES) as [CsvColumn, readonly string[]][]).flatMap(([col, names]) => names.map((n) => [headerKey(n), col])),
);

export const MAX_COLUMNS = 512;
export const MAX_HEADER_BYTES = 64 * 1024;
/** A record longer than this is rejected and skipped (a 1 MB line, an unclosed quote). */
export const MAX_RECORD_BYTES = 256 * 1024;

export type CsvHeader = { delimiter: string; columns: (CsvColumn | null)[] };

export class CsvFormatError extends Error {}

/** Reads the header record: delimiter by majority outside quotes, columns by alias. */
export function parseHeader(line: string): CsvHeader {
  const text = line.replace(/^\uFEFF/, "").replace(/\r?\n$/, "");
  if (/\u0000/.test(text)) throw new CsvFormatError("the header contains NUL bytes: not a text CSV file");
  const delimiter = detectDelimiter(text);
  const cells = (Papa.parse<string[]>(text, { delimiter, header: false }).data[0] ?? []) as string[];
  if (cells.length > MAX_COLUMNS) throw new CsvFormatError(`the header has ${cells.length} columns; at most ${MAX_COLUMNS} are accepted`);
  const columns = cells.map((c) => LOOKUP.get(headerKey(c)) ?? null);
  // A column named twice counts once: the first occurrence wins.
  const seen = new Set<CsvColumn>();
  const unique = columns.map((c) => {
    if (!c || seen.has(c)) return null;
    seen.add(c);
    return c;
  });
  if (!seen.has("price")) {
    throw new CsvFormatError(`the header has no price column (expected one of: ${ALIASES.price.join(", ")})`);
  }
  if (!seen.has("symbol") && !seen.has("id")) {
    throw new CsvFormatError("the header has neither a symbol nor an id column (expected symbol|ticker or id|coin_id|asset_id)");
  }
  return { delimiter, columns: unique };
}

function detectDelimiter(line: string) {
  const counts: Record<string, number> = { ",": 0, ";": 0, "\t": 0 };
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch in counts) counts[ch]++;
  }
  const [delimiter, n] = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];
  return n > 0 ? delimiter : ",";
}

/**
 * The byte offset just past the last complete record in `bytes` (0 if none), scanning from a record
 * start: past the `records`-th when there are more, and before the first longer than
 * `maxRecordBytes`. Quotes and newlines are ASCII, so scanning bytes is safe for any UTF-8 text, and
 * offsets stay exact for the resume checkpoint.
 */
export function lastRecordEnd(bytes: Uint8Array, opts: { records?: number; maxRecordBytes?: number } = {}) {
  const { records = Number.POSITIVE_INFINITY, maxRecordBytes = Number.POSITIVE_INFINITY } = opts;
  let quoted = false;
  let end = 0;
  for (let i = 0, found = 0; i < bytes.length && found < records; i++) {
    const b = bytes[i];
    if (b === 0x22) quoted = !quoted;
    else if (b === 0x0a && !quoted) {
      if (i + 1 - end > maxRecordBytes) break;
      end = i + 1;
      found++;
    }
  }
  return end;
}

/** What csvBlocks reads, each with the byte range of the file it covers. */
export type CsvBlock =
  | { kind: "header"; header: CsvHeader; from: number; to: number }
  /** Whole records, at least `blockBytes` of them unless the file ends first. */
  | { kind: "records"; bytes: Uint8Array; from: number; to: number }
  /** A record longer than MAX_RECORD_BYTES (or an unclosed quote), skipped up to the next newline. */
  | { kind: "overlong"; from: number; to: number };

/**
 * Reads a CSV file as blocks that end at record boundaries, from `offset` (a record start; the
 * header is read first unless it is known), out of `chunks` (the file's bytes from there on). Memory
 * stays within a block and a record whatever the file's size, and a record longer than
 * MAX_RECORD_BYTES comes as `overlong` however the file is cut into chunks, so a resumed read sees
 * the same records as one that was not interrupted.
 */
export async function* csvBlocks(
  chunks: AsyncIterable<Uint8Array>,
  p: { offset: number; blockBytes: number; headerKnown: boolean },
): AsyncGenerator<CsvBlock> {
  const next = chunks[Symbol.asyncIterator]();
  let carry: Uint8Array = new Uint8Array(0);
  let at = p.offset;
  let eof = false;
  let headerKnown = p.headerKnown;
  const read = async () => {
    const r = await next.next();
    if (r.done) eof = true;
    else carry = concat(carry, r.value);
  };
  const take = (n: number) => {
    const bytes = carry.subarray(0, n);
    carry = carry.subarray(n);
    at += n;
    return { bytes, from: at - n, to: at };
  };
  while (!eof || carry.length) {
    if (!eof) await read();
    if (!headerKnown) {
      const end = lastRecordEnd(carry, { records: 1 });
      if (end === 0 && !eof && carry.length <= MAX_HEADER_BYTES) continue;
      const length = end === 0 ? carry.length : end;
      if (length > MAX_HEADER_BYTES) throw new CsvFormatError("the header line is longer than 64 KiB: not a CSV this service accepts");
      if (length === 0) throw new CsvFormatError("the file is empty: a header row is required");
      const { bytes, from, to } = take(length);
      yield { kind: "header", header: parseHeader(new TextDecoder().decode(bytes)), from, to };
      headerKnown = true;
    }
    const end = lastRecordEnd(carry, { maxRecordBytes: MAX_RECORD_BYTES });
    if (carry.length - end > MAX_RECORD_BYTES) {
      // The records before it go as a block of their own.
      if (end > 0) yield { kind: "records", ...take(end) };
      const from = at;
      const whole = lastRecordEnd(carry, { records: 1 });
      if (whole > 0) take(whole);
      else {
        // It does not end within the limit (an unclosed quote, say): it is dropped as it is read,
        // up to the next newline, where reading resynchronises.
        while (carry.indexOf(0x0a) < 0 && !eof) {
          take(carry.length);
          await read();
        }
        const newline = carry.indexOf(0x0a);
        take(newline < 0 ? carry.length : newline + 1);
      }
      yield { kind: "overlong", from, to: at };
    } else if (eof ? carry.length : end >= p.blockBytes) {
      // The file's last record may lack its newline.
      yield { kind: "records", ...take(eof ? carry.length : end) };
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array) {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export const isBlank = (cells: string[]) => cells.every((c) => c.trim() === "");

/** Parses complete records (text ending at a record boundary) into rows of cells. */
export function parseRecords(text: string, header: CsvHeader): string[][] {
  const body = text.replace(/\r?\n$/, "");
  if (body === "") return [[""]];
  return Papa.parse<string[]>(body, { delimiter: header.delimiter, header: false, skipEmptyLines: false }).data;
}

/** One data row to a validated quote, or a rejection with its row number (1 = first data row). */
export function rowToQuote(cells: string[], header: CsvHeader, row: number, fallbackTime: string) {
  const v: Partial<Record<CsvColumn, string>> = {};
  header.columns.forEach((col, i) => {
    if (col && i < cells.length) v[col] = cells[i];
  });
  const id = v.id?.trim() || "";
  const sourceId = (id || derivedSourceId(v.symbol, v.name)).toLowerCase();
  return validateQuote(
    {
      source: "csv",
      sourceId,
      symbol: v.symbol?.trim().toUpperCase(),
      name: v.name?.trim() || v.symbol?.trim() || id,
      rank: v.rank,
      priceUsd: v.price,
      marketCapUsd: v.market_cap,
      volume24hUsd: v.volume_24h,
      change24hPct: v.change_24h,
      circulatingSupply: v.supply,
      totalSupply: v.total_supply,
      maxSupply: v.max_supply,
      sourceUpdatedAt: toIsoTime(v.timestamp?.trim(), fallbackTime),
    },
    { recordKey: `row:${row}`, row, sourceId: sourceId || null },
  );
}
