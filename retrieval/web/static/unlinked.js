// Calls without a referral: the supervisor's teams' calls still linked to no referral some
// time after they started, oldest first. Each is linked to its referral (the referral-link
// API) or marked as needing none with a reason; the list is asked for again after either.
import { ApiError, api, clock, el, fieldError, guard, reasonProblem, say, when } from "./common.js";

const list = document.getElementById("calls");
const shape = document.getElementById("call");
const rule = document.getElementById("rule");
const empty = document.getElementById("empty");
const more = document.getElementById("more");
// The API's shape of a referral reference (retrieval.parsing.REFERENCE).
const REFERENCE = /^[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}$/;
const REFERENCE_RULE = "Type the referral's reference: letters, digits, / _ . - (as in MASH-2026-004211)";
let next = null;

function delay(days) {
  if (days >= 1 && Number.isInteger(days)) return `${days} ${days === 1 ? "day" : "days"}`;
  const hours = Math.max(1, Math.round(days * 24));
  return `${hours} ${hours === 1 ? "hour" : "hours"}`;
}

// The template's ids made unique to this call: each field, its label and its message.
function own(node, id) {
  for (const label of node.querySelectorAll("label")) {
    const field = node.querySelector(`[id="${label.htmlFor}"]`);
    const note = node.querySelector(`[id="${field.getAttribute("aria-describedby")}"]`);
    field.id = `${field.id}-${id}`;
    label.htmlFor = field.id;
    note.id = `${field.id}-error`;
    field.setAttribute("aria-describedby", note.id);
  }
}

// An answer the person can act on goes beside the field; a call settled meanwhile by
// someone else (409) leaves the list, which is asked for again.
async function settle(field, work, done) {
  try {
    await work();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    if (error.status === 409 || error.status === 404 || error.status === 410) {
      await refresh(field);
      say(error.message, { error: true });
      return;
    }
    fieldError(field, error.message);
    field.focus();
    return;
  }
  await refresh(field);
  say(done);
}

function item(recording) {
  const node = shape.content.firstElementChild.cloneNode(true);
  const started = when(recording.started_at);
  node.dataset.id = recording.id;
  own(node, recording.id);
  const heading = node.querySelector("h2");
  heading.id = `call-${recording.id}`;
  node.setAttribute("aria-labelledby", heading.id);
  heading.append(el("a", { href: `/recordings/${recording.id}` }, `Call started ${started}`));
  node.querySelector(".about").textContent = [
    `Team ${recording.team ?? "–"}`,
    `agent ${recording.agent ?? "–"}`,
    `length ${clock(recording.duration_s)}`,
    `to be deleted ${when(recording.retention_deadline)}`,
  ].join(" · ");

  const reference = node.querySelector("form.link input");
  node.querySelector("form.link").addEventListener("submit", guard(async () => {
    const text = reference.value.trim();
    const problem = REFERENCE.test(text) ? null : REFERENCE_RULE;
    fieldError(reference, problem);
    if (problem) {
      reference.focus();
      return;
    }
    const path = `/recordings/${recording.id}/referrals/${encodeURIComponent(text)}`;
    await settle(reference, () => api(path, { method: "POST" }),
      `The call started ${started} is linked to ${text}.`);
  }));

  const reason = node.querySelector("form.none input");
  reason.addEventListener("input", () => {
    if (reason.hasAttribute("aria-invalid")) fieldError(reason, reasonProblem(reason));
  });
  node.querySelector("form.none").addEventListener("submit", guard(async () => {
    const problem = reasonProblem(reason);
    fieldError(reason, problem);
    if (problem) {
      reason.focus();
      return;
    }
    const path = `/recordings/${recording.id}/no-referral`;
    await settle(reason, () => api(path, { method: "POST", json: { reason: reason.value } }),
      `The call started ${started} is marked as needing no referral.`);
  }));
  return node;
}

async function show(append) {
  const params = new URLSearchParams();
  if (append && next) params.set("cursor", next);
  const answer = await api(`/unlinked-recordings?${params}`);
  rule.textContent = `Your teams' calls still linked to no referral ${delay(answer.review_after_days)}`
    + " after they started, oldest first.";
  if (!append) list.replaceChildren();
  list.append(...answer.recordings.map(item));
  next = answer.next_cursor;
  list.hidden = list.children.length === 0;
  empty.hidden = list.children.length !== 0;
  more.hidden = !next;
}

// After a call is settled the list is read again; the focus goes to the call that took its
// place (or the one before, or the empty list's message), not back to the page's top.
async function refresh(field) {
  const calls = [...list.children];
  const at = calls.findIndex((node) => node.contains(field));
  await show(false);
  const landing = list.children[Math.max(0, Math.min(at, list.children.length - 1))];
  (landing ? landing.querySelector("h2 a") : empty).focus();
}

if (list) {
  more.addEventListener("click", guard(async () => {
    await show(true);
    say(`${list.children.length} calls shown`);
  }));
  guard(async () => {
    await show(false);
    const shown = list.children.length;
    say(shown === 0 ? "No call is waiting for a referral"
      : `${shown} ${shown === 1 ? "call is" : "calls are"} waiting for a referral${next ? "; more available" : ""}`);
  })();
}
