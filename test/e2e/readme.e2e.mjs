#!/usr/bin/env node
// Runs every `curl` line of the README's shell blocks against a running coinfuse worker, as written,
// and checks what it answers.
//
//   node test/e2e/readme.e2e.mjs --base http://127.0.0.1:8787 --token <ADMIN_TOKEN> [--readme README.md]
//
// A line runs in bash (with the variables its block sets before it, e.g. `B=http://127.0.0.1:8787`)
// after the README's base URL and admin token are swapped for --base and --token. Every request it
// makes must answer 2xx, or the status its comment names (`# answers 409`); the line must exit 0 and
// print something other than nothing or `null` (a line writing a file with `-o` must write a
// non-empty file). Lines for another host (a deployed worker) are listed as skipped.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const args = parseArgs(process.argv.slice(2));
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
const README = path.resolve(args.readme ?? path.join(root, "README.md"));
const BASE = (args.base ?? process.env.BASE_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");
const TOKEN = args.token ?? process.env.ADMIN_TOKEN ?? "dev-admin-token";
const README_BASE = /http:\/\/(?:127\.0\.0\.1|localhost):8787/g;
const README_TOKEN = /\bdev-admin-token\b/g;
const hasJq = spawnSync("bash", ["-c", "command -v jq"]).status === 0;

/** Every curl line of the README's sh/bash/shell blocks, with the variables set before it in its block. */
export function curlLines(markdown) {
  const out = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^\s*```(sh|bash|shell|console)\s*$/);
    if (!open) continue;
    const vars = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) {
      let line = lines[i];
      const lineNo = i + 1;
      while (/\\\s*$/.test(line) && i + 1 < lines.length) line = `${line.replace(/\\\s*$/, " ")}${lines[++i].trim()}`;
      const text = line.trim();
      if (/^[A-Za-z_][A-Za-z0-9_]*=\S+(\s+#.*)?$/.test(text)) vars.push(text.replace(/\s+#.*$/, ""));
      else if (/(^|[|&;(]\s*)curl\s/.test(text)) out.push({ line: lineNo, text, vars: [...vars] });
    }
  }
  return out;
}

/** The status a line's comment says it answers (`# answers 404`, `# → 409`), else null (any 2xx). */
const expectedStatus = (text) => Number(text.match(/#.*?(?:answers|→|->)\s*(\d{3})\b/)?.[1] ?? 0) || null;

function runLine(entry, cwd) {
  const swap = (s) => s.replace(README_BASE, BASE).replace(README_TOKEN, TOKEN);
  const vars = entry.vars.map(swap);
  const command = swap(entry.text);
  let expanded = command;
  for (const v of vars) {
    const [name, value] = [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1).replace(/^["']|["']$/g, "")];
    expanded = expanded.replace(new RegExp(`\\$(\\{${name}\\}|${name}\\b)`, "g"), value);
  }
  if (!expanded.includes(BASE)) return { skipped: true, why: "not the local stack" };
  const script = [
    // Each request's status on stderr, so the line's own output is what a reader sees.
    `curl() { command curl -w '%{stderr}@@status %{http_code}\\n' "$@"; }`,
    ...vars,
    command,
  ].join("\n");
  const r = spawnSync("bash", ["-c", script], { cwd, encoding: "utf8", timeout: 60_000 });
  const statuses = [...(r.stderr ?? "").matchAll(/@@status (\d{3})/g)].map((m) => Number(m[1]));
  const stderr = (r.stderr ?? "").replace(/@@status \d{3}\n?/g, "").trim();
  const problems = [];
  if (/\bjq\b/.test(command) && !hasJq) problems.push("needs jq, which is not installed (apt-get install -y jq)");
  const want = expectedStatus(entry.text);
  if (!statuses.length) problems.push("made no request");
  for (const s of statuses) if (want ? s !== want : s < 200 || s > 299) problems.push(`answered ${s}${want ? ` (want ${want})` : ""}`);
  if (r.status !== 0) problems.push(`exited ${r.status ?? r.signal}${stderr ? `: ${stderr.split("\n")[0]}` : ""}`);
  const file = command.match(/\s-o\s+(\S+)/)?.[1];
  const output = (r.stdout ?? "").trim();
  if (file && file !== "/dev/null") {
    const size = fs.existsSync(path.join(cwd, file)) ? fs.statSync(path.join(cwd, file)).size : 0;
    if (!size) problems.push(`wrote nothing to ${file}`);
  } else if (!output || output.split("\n").every((l) => l.trim() === "null")) problems.push(`printed ${output ? "null" : "nothing"}`);
  const shown = file ? `${file}: ${fs.existsSync(path.join(cwd, file)) ? fs.statSync(path.join(cwd, file)).size : 0} bytes` : output;
  return { problems, statuses, shown: shown.replace(/\s+/g, " ").slice(0, 100) };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const entries = curlLines(fs.readFileSync(README, "utf8"));
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "coinfuse-readme-"));
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const e of entries) {
    const name = `README.md:${e.line} ${e.text.replace(/\s+#.*$/, "").replace(/\s+/g, " ")}`;
    const r = runLine(e, cwd);
    if (r.skipped) {
      skipped++;
      console.log(`SKIP ${name} - ${r.why}`);
    } else if (r.problems.length) {
      failed++;
      console.log(`FAIL ${name} - ${r.problems.join("; ")}`);
    } else {
      passed++;
      console.log(`PASS ${name} - ${r.statuses.join(", ")}: ${r.shown}`);
    }
  }
  fs.rmSync(cwd, { recursive: true, force: true });
  if (!entries.length) {
    console.log(`FAIL no curl lines found in ${README}`);
    failed++;
  }
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failed ? 1 : 0);
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const m = argv[i].match(/^--([^=]+)(?:=(.*))?$/);
    if (!m) continue;
    out[m[1]] = m[2] ?? (argv[i + 1] && !argv[i + 1].startsWith("--") ? argv[++i] : "true");
  }
  return out;
}
