// One recording: its facts, referrals, listening through a grant, holds and erasure.
import {
  ApiError, api, can, clock, daysUntil, el, fieldError, fields, guard, heldUntil, holdDate, incomplete,
  reasonProblem, say, when,
} from "./common.js";
import { Player } from "./player.js";

const id = document.body.dataset.recording;
const $ = (name) => document.getElementById(name);
let recording = null;

function fact(label, value) {
  return [el("dt", {}, label), el("dd", {}, value ?? "–")];
}

function deletion() {
  const kept = heldUntil(recording);
  if (kept) return `${kept[0].toUpperCase()}${kept.slice(1)} (without the hold: ${when(recording.retention_deadline)})`;
  const days = daysUntil(recording.retention_deadline);
  return `${when(recording.retention_deadline)} (${days <= 0 ? "due now" : `in ${days} days`})`;
}

function length(audio) {
  const problem = incomplete(audio);
  return problem ? `${clock(audio.duration_s)} ⚠ ${problem}` : clock(audio.duration_s);
}

// The playback copy (the browser rendition) is made after the call is stored; until it
// is, the original plays if browsers can play it, and otherwise the page waits for it.
function copyState(playback) {
  if (playback.copy === "ready") return "ready";
  if (playback.copy === "preparing") {
    const wait = playback.ready_in_s == null ? "" : `, ready in about ${Math.ceil(playback.ready_in_s)} s`;
    return `being prepared${wait}${playback.serves === "original" ? "; the original plays meanwhile" : ""}`;
  }
  if (playback.copy === "failed") return "could not be made; the original plays";
  return "none; the original plays";
}

const sleep = (seconds) => new Promise((resolve) => { setTimeout(resolve, seconds * 1000); });

// Wait, saying so, until the playback link serves something a browser plays.
async function untilPlayable() {
  const notice = $("preparing");
  while (recording.playback.serves === null) {
    const expected = recording.playback.ready_in_s ?? 2;
    notice.textContent = `The playback copy is being prepared; ready in about ${Math.ceil(expected)} s. It will play here when it is.`;
    notice.hidden = false;
    await sleep(Math.max(2, Math.min(10, expected)));
    recording = await api(`/recordings/${id}`);
    render();
  }
  notice.hidden = true;
}

function render() {
  $("title").textContent = `Call of ${when(recording.started_at)}`;
  const problems = recording.audio.problems.map((p) => p.detail).join("; ");
  $("facts").replaceChildren(
    ...fact("Started", when(recording.started_at)),
    ...fact("Ended", when(recording.ended_at)),
    ...fact("Direction", recording.direction),
    ...fact("Team", recording.team),
    ...fact("Agent", recording.agent),
    ...fact("From", recording.from),
    ...fact("To", recording.to),
    ...fact("Length", length(recording.audio)),
    ...fact("Channels", recording.audio.channels),
    ...fact("Audio", recording.audio.complete ? "complete" : `kept with problems: ${problems}`),
    ...fact("Playback copy", copyState(recording.playback)),
    ...fact("Deletion", deletion()),
    ...fact("Holds", recording.holds.length
      ? recording.holds.map((h) => `${h.type.replaceAll("_", " ")} until ${holdDate(h.review_by)}`).join("; ")
      : "none"),
  );
  $("referrals").replaceChildren(...recording.referrals.map((reference) => el("li", {},
    reference,
    can("referrals")
      ? el("button", { type: "button", "data-reference": reference, "aria-label": `Unlink ${reference}` }, "Unlink")
      : null)));
}

async function load() {
  try {
    recording = await api(`/recordings/${id}`);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 410)) {
      $("title").textContent = error.status === 410 ? "This recording has been deleted" : "No such recording";
      document.querySelectorAll("section").forEach((section) => { section.hidden = true; });
    }
    throw error;
  }
  render();
  await showErasure();
}

$("referrals")?.addEventListener("click", guard(async (event) => {
  const reference = event.target.closest("button")?.dataset.reference;
  if (!reference) return;
  await api(`/recordings/${id}/referrals/${encodeURIComponent(reference)}`, { method: "DELETE" });
  await load();
  say(`Unlinked ${reference}`);
}));

$("link")?.addEventListener("submit", guard(async (event) => {
  const reference = fields(event.target).reference;
  await api(`/recordings/${id}/referrals/${encodeURIComponent(reference)}`, { method: "POST" });
  event.target.reset();
  await load();
  say(`Linked ${reference}`);
}));

if ($("ask")) {
  const player = new Player({
    audio: $("audio"), canvas: $("waveform"), play: $("play"), back: $("back"),
    forward: $("forward"), speed: $("speed"), channel: $("channel"), elapsed: $("elapsed"),
    lanes: $("lanes"), axis: $("axis"),
  });
  const reason = $("reason");
  reason.addEventListener("input", () => {
    if (reason.hasAttribute("aria-invalid")) fieldError(reason, reasonProblem(reason));
  });
  $("ask").addEventListener("submit", guard(async (event) => {
    const asked = fields(event.target);
    const problem = reasonProblem(reason);
    fieldError(reason, problem);
    if (problem) {
      reason.focus();
      return;
    }
    let granted;
    try {
      granted = await api(`/recordings/${id}/grants`, { method: "POST", json: asked });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 422)) throw error;
      fieldError(reason, error.message);
      reason.focus();
      return;
    }
    event.target.hidden = true;
    await untilPlayable();
    const peaks = await api(`/recordings/${id}/peaks`);
    player.load(granted.audio_url, {
      durationS: recording.audio.duration_s,
      channels: recording.audio.channels,
      peaks: peaks.status === "ready" ? peaks.peaks : null,
    });
    $("player").hidden = false;
    $("play").focus();
    say(`Listening for ${asked.purpose.replaceAll("_", " ")}; this link works until ${when(granted.expires_at)}`);
  }));
}

// The other reasons follow the same rule; the browser says so when the form is sent.
for (const field of document.querySelectorAll("#hold-reason, #release-reason, #erase-reason, #reject-reason")) {
  field.addEventListener("input", () => field.setCustomValidity(reasonProblem(field) ?? ""));
}

$("hold")?.addEventListener("submit", guard(async (event) => {
  const asked = fields(event.target);
  await api(`/recordings/${id}/hold`, { method: "POST", json: asked });
  event.target.reset();
  await load();
  say("Hold placed");
}));

$("release")?.addEventListener("submit", guard(async (event) => {
  await api(`/recordings/${id}/hold`, { method: "DELETE", json: fields(event.target) });
  event.target.reset();
  await load();
  say("Holds released");
}));

// Early erasure: at once where one DPO suffices; otherwise a request that a different
// DPO approves or rejects here (the API refuses the one who asked, whatever the page shows).
let pendingErasure = null;

async function showErasure() {
  if (!$("erase")) return;
  const listed = await api(`/erasure-requests?recording=${id}`);
  const twoDpos = listed.approvals_required === 2;
  pendingErasure = listed.requests[0] ?? null;
  $("erase-heading").textContent = twoDpos ? "Erasure (two DPOs)" : "Erase now";
  $("erase-rule").hidden = !twoDpos;
  $("erase").hidden = pendingErasure !== null;
  $("erasure-request").hidden = pendingErasure === null;
  if (!pendingErasure) return;
  const mine = pendingErasure.requested_by === document.body.dataset.actor;
  $("erasure-state").textContent = `Erasure requested by ${pendingErasure.requested_by} on ${when(pendingErasure.requested_at)}: `
    + `“${pendingErasure.reason}”. ${mine ? "Another DPO must approve or reject it." : "Awaiting a second DPO: you may approve or reject it."}`;
  $("erasure-decision").hidden = mine;
}

$("erase")?.addEventListener("submit", guard(async (event) => {
  const twoDpos = !$("erase-rule").hidden;
  const question = twoDpos
    ? "Ask for this recording to be erased? A second DPO must approve it."
    : "Erase this recording now? This cannot be undone.";
  if (!window.confirm(question)) return;
  const answer = await api(`/recordings/${id}`, { method: "DELETE", json: fields(event.target) });
  event.target.reset();
  if (answer.status === "approval_required") {
    await showErasure();
    say("Erasure requested; a second DPO must approve it");
    return;
  }
  say("The recording was erased");
  await load().catch(() => {});
}));

$("approve-erasure")?.addEventListener("click", guard(async () => {
  if (!pendingErasure || !window.confirm("Approve this erasure? This cannot be undone.")) return;
  await api(`/erasure-requests/${pendingErasure.id}/approve`, { method: "POST" });
  say("The recording was erased");
  await load().catch(() => {});
}));

$("reject-erasure")?.addEventListener("submit", guard(async (event) => {
  if (!pendingErasure) return;
  await api(`/erasure-requests/${pendingErasure.id}/reject`, { method: "POST", json: fields(event.target) });
  event.target.reset();
  await showErasure();
  say("Erasure request rejected; the recording stays");
}));

load().catch((error) => say(error.message, { error: true }));
