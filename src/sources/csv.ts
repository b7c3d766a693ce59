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
 * The byte offset just past the last complete record in `bytes` (0 if none), scanning from a
 * record start. Quotes and newlines are ASCII, so scanning bytes is safe for any UTF-8 text, and
 * offsets stay exact for the resume checkpoint.
 */
export function lastRecordEnd(bytes: Uint8Array, from = 0) {
  let quoted = false;
  let end = 0;
  for (let i = from; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x22) quoted = !quoted;
    else if (b === 0x0a && !quoted) end = i + 1;
  }
  return end;
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
