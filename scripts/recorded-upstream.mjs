// Serves the recorded payloads in data/ the way CoinGecko and CoinPaprika serve live ones, on
// loopback, so the Worker runs its real HTTP clients with no internet.
//   GET /api/v3/coins/markets?page=N -> data/coingecko/markets-page-N.json (or [] past the end)
//   GET /v1/tickers                  -> data/coinpaprika/tickers.json
import fs from "node:fs";
import http from "node:http";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "data");

export function startRecordedUpstream(port = 8789, dir = root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    let file = null;
    if (url.pathname === "/api/v3/coins/markets")
      file = path.join(dir, "coingecko", `markets-page-${Number(url.searchParams.get("page") ?? 1)}.json`);
    else if (url.pathname === "/v1/tickers") file = path.join(dir, "coinpaprika", "tickers.json");
    if (!file) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"unknown endpoint"}');
      return;
    }
    const body = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.from("[]");
    res.writeHead(200, { "content-type": "application/json", "x-recorded-data": "true" }).end(body);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const port = Number(process.env.PORT ?? 8789);
  await startRecordedUpstream(port);
  console.log(`recorded upstream on http://127.0.0.1:${port} (from ${root})`);
}
