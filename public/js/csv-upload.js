// CSV upload card: PUT /uploads/csv/{filename} with the admin token, then poll
// GET /uploads/{upload_id} until the ingestion run is finished.
import { getData, request } from "./api.js";
import { errorBox, h, scrollTable, statusPill, timeAgo } from "./dom.js";
import { fmtBytes, fmtInt } from "./format.js";

const TOKEN_KEY = "coinfuse.adminToken";
const FINAL = new Set(["succeeded", "partial", "failed"]);
const POLL_MS = 1500;
const POLL_LIMIT_MS = 10 * 60 * 1000;

export function csvUploadCard({ onFinished }) {
  let pollTimer = 0;
  let stopped = false;

  const token = h("input", {
    type: "password",
    id: "upload-token",
    name: "token",
    autocomplete: "off",
    required: true,
    "aria-describedby": "token-hint",
    value: sessionStorage.getItem(TOKEN_KEY) ?? "",
  });
  const file = h("input", { type: "file", id: "csv-file", name: "file", accept: ".csv,.tsv,.txt,text/csv", required: true });
  const submit = h("button.btn.btn-primary", { type: "submit", id: "upload-submit" }, "Upload and ingest");
  const result = h("div.result", { id: "upload-result", "aria-live": "polite" });

  token.addEventListener("change", () => {
    if (token.value) sessionStorage.setItem(TOKEN_KEY, token.value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });

  const form = h(
    "form.upload-form",
    { id: "upload-form", "aria-labelledby": "upload-h", novalidate: true, onsubmit: onSubmit },
    h(
      "div.field",
      {},
      h("label", { for: "upload-token" }, "Admin token"),
      token,
      h("p.hint", { id: "token-hint" }, "Sent as a Bearer token. Kept only in this browser tab (sessionStorage)."),
    ),
    h(
      "div.field",
      {},
      h("label", { for: "csv-file" }, "CSV file"),
      file,
      h("p.hint", {}, "Header row required; comma, semicolon or tab separated."),
    ),
    h("div.actions", {}, submit),
  );

  const card = h("section.card.upload-card", { "aria-labelledby": "upload-h" }, h("h2", { id: "upload-h" }, "Upload a CSV"), form, result);

  async function onSubmit(e) {
    e.preventDefault();
    clearTimeout(pollTimer);
    const f = file.files?.[0];
    const t = token.value.trim();
    if (!t || !f) {
      result.replaceChildren(errorBox({ code: "validation_error", message: !t ? "Enter the admin token." : "Choose a CSV file." }));
      (!t ? token : file).focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    submit.disabled = true;
    result.replaceChildren(h("p", {}, `Uploading ${f.name} (${fmtBytes(f.size)})…`));
    try {
      const body = await request(`/uploads/csv/${encodeURIComponent(f.name)}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${t}`, "content-type": "text/csv" },
        body: f,
      });
      const upload = body?.data ?? body;
      showUpload(upload);
      poll(upload.upload_id, Date.now());
    } catch (err) {
      result.replaceChildren(errorBox(err));
      submit.disabled = false;
    }
  }

  function poll(id, startedAt) {
    pollTimer = setTimeout(async () => {
      if (stopped) return;
      try {
        const upload = await getData(`/uploads/${encodeURIComponent(id)}`);
        showUpload(upload);
        if (FINAL.has(upload.status)) {
          submit.disabled = false;
          onFinished?.(upload);
          return;
        }
      } catch (err) {
        if (err.status && err.status !== 404 && err.status < 500 && err.status !== 429) {
          result.append(errorBox(err));
          submit.disabled = false;
          return;
        }
      }
      if (Date.now() - startedAt > POLL_LIMIT_MS) {
        result.append(h("p.muted", {}, "Still running after 10 minutes; stopped watching. The run list keeps updating."));
        submit.disabled = false;
        return;
      }
      poll(id, startedAt);
    }, POLL_MS);
  }

  function showUpload(u) {
    const final = FINAL.has(u.status);
    const rows = (u.rejected_rows ?? []).slice(0, 10);
    const item = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
    result.replaceChildren(
      h("h3", {}, final ? "Upload processed" : "Upload accepted, ingesting…"),
      h(
        "dl",
        {},
        item("Status", h("span", { id: "upload-status", dataset: { status: u.status } }, statusPill(u.status))),
        item("File", `${u.filename ?? "?"} · ${fmtBytes(u.bytes)}`),
        item("Upload id", h("code", { id: "upload-id" }, u.upload_id)),
        item("Run id", h("code", { id: "upload-run-id" }, u.run_id ?? "—")),
        item("Accepted", h("span", { id: "upload-accepted" }, fmtInt(u.records?.accepted))),
        item("Rejected", h("span", { id: "upload-rejected" }, fmtInt(u.records?.rejected))),
        item("Created", timeAgo(u.created_at)),
      ),
      rows.length ? rejectedTable(rows, u.rejected_rows.length) : null,
    );
  }

  return {
    card,
    stop() {
      stopped = true;
      clearTimeout(pollTimer);
    },
  };
}

function rejectedTable(rows, total) {
  return scrollTable({
    id: "rejected-rows",
    caption: `Rejected rows (first ${rows.length} of ${total}${total >= 100 ? "+" : ""})`,
    head: [h("th.num", { scope: "col" }, "Row"), h("th", { scope: "col" }, "Reason")],
    rows: rows.map((r) => h("tr", {}, h("th.num", { scope: "row" }, String(r.row ?? "—")), h("td", {}, r.reason ?? ""))),
  });
}
