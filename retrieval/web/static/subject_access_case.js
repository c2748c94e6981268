// One subject access request: its clock, and for each recording what the requester gets
// (their channel, stretches muted), chosen on the waveform or typed as times.
import { api, clock, el, fieldError, guard, reasonProblem, say, when } from "./common.js";

const caseId = document.body.dataset.caseId;
const facts = document.getElementById("facts");
const list = document.getElementById("recordings");
const change = document.getElementById("change");
const exporter = document.getElementById("export");

function day(iso) {
  return new Date(`${iso}T00:00:00Z`).toLocaleDateString("en-GB", { dateStyle: "medium", timeZone: "UTC" });
}

// "1:05-1:20, 2:00-2:30" <-> [[65, 80], [120, 150]]; seconds may carry decimals.
function seconds(text) {
  const parts = text.trim().split(":").map(Number);
  if (!parts.length || parts.some((part) => !Number.isFinite(part) || part < 0)) return NaN;
  return parts.reduce((total, part) => total * 60 + part, 0);
}

export function parseRanges(text) {
  const ranges = [];
  for (const piece of text.split(",").map((each) => each.trim()).filter(Boolean)) {
    const [start, end] = piece.split("-").map(seconds);
    if (!(start >= 0) || !(end > start)) throw new Error(`"${piece}" is not a start-end time such as 1:05-1:20`);
    ranges.push([start, end]);
  }
  return ranges;
}

function showRanges(ranges) {
  const exact = (value) => (Number.isInteger(value) ? clock(value) : `${clock(value)}.${String(Math.round((value % 1) * 10))}`);
  return ranges.map(([start, end]) => `${exact(start)}-${exact(end)}`).join(", ");
}

function draw(canvas, peaks, duration, ranges) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const lanes = peaks?.length || 1;
  const laneHeight = height / lanes;
  for (let lane = 0; lane < lanes; lane += 1) {
    const middle = laneHeight * lane + laneHeight / 2;
    const channel = peaks?.[lane];
    const buckets = channel ? channel.min.length : 0;
    context.fillStyle = "#8a98ab";
    for (let x = 0; x < width && buckets; x += 1) {
      const from = Math.floor((x / width) * buckets);
      const to = Math.max(from + 1, Math.floor(((x + 1) / width) * buckets));
      const low = Math.min(...channel.min.slice(from, to));
      const high = Math.max(...channel.max.slice(from, to));
      const top = middle - (high / 127) * (laneHeight / 2 - 2);
      const bottom = middle - (low / 127) * (laneHeight / 2 - 2);
      context.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
  }
  context.fillStyle = "rgba(176, 0, 32, 0.3)";
  for (const [start, end] of ranges) {
    const left = (start / duration) * width;
    context.fillRect(left, 0, Math.max(2, ((end - start) / duration) * width), height);
  }
}

function recordingBlock(item) {
  const id = `r-${item.id}`;
  const heading = el("h3", {}, `Call of ${when(item.started_at)}`, item.duration_s ? ` · ${clock(item.duration_s)}` : "");
  if (item.status !== "stored") {
    return el("article", { class: "case-recording" }, heading, el("p", {}, `This recording is ${item.status}.`));
  }
  const channel = el("select", { id: `${id}-channel`, name: "keep_channel" },
    el("option", { value: "" }, "Every channel"),
    ...(item.channels === 2
      ? [el("option", { value: "0" }, "Channel 1 only (channel 2 silenced)"),
        el("option", { value: "1" }, "Channel 2 only (channel 1 silenced)")]
      : []));
  const muted = el("input", { id: `${id}-muted`, name: "muted", autocomplete: "off", spellcheck: "false",
    placeholder: "1:05-1:20, 2:00-2:30", "aria-describedby": `${id}-muted-error` });
  const mutedError = el("p", { id: `${id}-muted-error`, class: "field-error", hidden: true });
  const canvas = el("canvas", { class: "waveform", width: 900, height: 120, role: "img",
    "aria-label": "Waveform: drag across it to mute a stretch" });
  const chosen = el("p", { class: "hint" }, item.redaction ? "Chosen." : "Not chosen yet: the export waits for every recording.");
  const save = el("button", { type: "submit" }, "Save what the requester gets");
  const form = el("form", { class: "redaction", "data-recording": item.id, novalidate: true },
    canvas,
    el("label", { for: channel.id }, "What the requester hears"), channel,
    el("label", { for: muted.id }, "Muted stretches"), muted, mutedError,
    save, chosen);
  if (item.redaction) {
    channel.value = item.redaction.keep_channel === null ? "" : String(item.redaction.keep_channel);
    muted.value = showRanges(item.redaction.muted);
  }
  const duration = item.duration_s || 1;
  let peaks = null;
  const redraw = () => {
    let ranges = [];
    try { ranges = parseRanges(muted.value); } catch { ranges = []; }
    draw(canvas, peaks, duration, ranges);
  };
  api(`/recordings/${item.id}/peaks`).then((answer) => { peaks = answer.peaks; redraw(); }).catch(() => redraw());
  muted.addEventListener("input", redraw);
  let from = null;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return Math.min(duration, Math.max(0, ((event.clientX - box.left) / box.width) * duration));
  };
  canvas.addEventListener("pointerdown", (event) => { from = at(event); canvas.setPointerCapture(event.pointerId); });
  canvas.addEventListener("pointerup", (event) => {
    if (from === null) return;
    const to = at(event);
    const [start, end] = [Math.min(from, to), Math.max(from, to)].map((value) => Math.round(value * 10) / 10);
    from = null;
    if (end - start < 0.1) return;
    muted.value = [muted.value.trim(), showRanges([[start, end]])].filter(Boolean).join(", ");
    redraw();
  });
  form.addEventListener("submit", guard(async () => {
    let ranges;
    try {
      ranges = parseRanges(muted.value);
      fieldError(muted, null);
    } catch (error) {
      fieldError(muted, error.message);
      return;
    }
    const keep = channel.value === "" ? null : Number(channel.value);
    await api(`/subject-access-requests/${caseId}/recordings/${item.id}/redaction`, {
      method: "PUT",
      json: { keep_channel: keep, muted: ranges },
    });
    chosen.textContent = "Chosen.";
    say("Saved what the requester gets of this call.");
  }));
  return el("article", { class: "case-recording", id }, heading, form);
}

function show(item) {
  document.getElementById("title").textContent = `Subject access request ${item.reference}`;
  const due = item.overdue ? `${day(item.deadline)} (overdue)` : `${day(item.deadline)} (${item.days_left} days left)`;
  const entries = [
    ["Received", day(item.received)],
    ["Due", due],
    ["Status", item.state === "open" ? "open: its recordings are held" : "closed"],
    ["Opened by", `${item.opened_by}, ${when(item.opened_at)}`],
    ["Reason", item.reason],
    ["Extended", item.extension ? `by ${item.extension.by}: ${item.extension.reason}` : "no"],
    ["Recordings", String(item.recording_count)],
  ];
  if (item.closed) entries.push(["Closed", `by ${item.closed.by}, ${when(item.closed.at)}: ${item.closed.reason}`]);
  facts.replaceChildren(...entries.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  list.replaceChildren(...item.recordings.map(recordingBlock));
  document.getElementById("manage").hidden = item.state !== "open";
  document.getElementById("export-section").hidden = item.state !== "open";
  document.getElementById("extend").hidden = Boolean(item.extension);
}

async function load() {
  show(await api(`/subject-access-requests/${caseId}`));
}

// The bundle is made while it downloads; the browser keeps it in memory (it is ciphertext)
// until it is saved.
async function exportBundle() {
  const recipients = exporter.elements.recipients.value.split(/\s+/).filter(Boolean);
  const passphrase = exporter.elements.passphrase.value;
  const problem = (recipients.length > 0) === (passphrase !== "")
    ? "Give the requester's age public keys or a passphrase, not both."
    : null;
  fieldError(exporter.elements.recipients, problem);
  if (problem) return;
  const json = recipients.length ? { recipients } : { passphrase };
  json.include_staff_names = exporter.elements.include_staff_names.checked;
  say("Making the bundle…");
  const response = await fetch(`/api/v1/subject-access-requests/${caseId}/export`, {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": document.body.dataset.csrf },
    body: JSON.stringify(json),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    fieldError(exporter.elements.recipients, data.detail || response.statusText);
    throw new Error(data.detail || response.statusText);
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "bundle.tar.age";
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  exporter.elements.passphrase.value = "";
  say(`Exported ${name}.`);
  await load();
}

if (change) {
  load().catch((error) => say(error.message, { error: true }));
  exporter.addEventListener("submit", guard(exportBundle));
  change.addEventListener("submit", guard(async (event) => {
    const reason = change.elements.reason;
    const problem = reasonProblem(reason);
    fieldError(reason, problem);
    if (problem) return;
    const action = event.submitter?.value === "close" ? "close" : "extend";
    show(await api(`/subject-access-requests/${caseId}/${action}`, { method: "POST", json: { reason: reason.value } }));
    reason.value = "";
    say(action === "close" ? "The request is closed and its holds released." : "The deadline is extended by two months.");
  }));
}
