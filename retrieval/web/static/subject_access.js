// The DPO's list of open subject access requests, nearest deadline first, and the form
// that opens one. Numbers go to the API in the request body only, never in a URL.
import { api, clock, el, fieldError, guard, reasonProblem, say, when } from "./common.js";

const table = document.getElementById("cases");
const rows = table?.querySelector("tbody");
const none = document.getElementById("none");
const form = document.getElementById("open");
const finder = document.getElementById("find");
const found = document.getElementById("found");

function lines(text) {
  return text.split(/\n/).map((line) => line.trim()).filter(Boolean);
}

function day(iso) {
  return new Date(`${iso}T00:00:00Z`).toLocaleDateString("en-GB", { dateStyle: "medium", timeZone: "UTC" });
}

function left(item) {
  if (item.overdue) return el("strong", { class: "error" }, `overdue by ${-item.days_left} d`);
  return el("span", { class: item.days_left <= 7 ? "soon" : undefined }, `${item.days_left} d`);
}

function row(item) {
  return el("tr", {},
    el("td", {}, el("a", { href: `/subject-access/${item.id}` }, item.reference)),
    el("td", {}, day(item.received)),
    el("td", {}, day(item.deadline), item.extension ? " (extended)" : ""),
    el("td", {}, left(item)),
    el("td", {}, String(item.recording_count)),
    el("td", {}, item.opened_by));
}

async function show() {
  const answer = await api("/subject-access-requests");
  rows.replaceChildren(...answer.cases.map(row));
  table.hidden = answer.cases.length === 0;
  none.hidden = answer.cases.length !== 0;
}

async function open() {
  const reason = form.elements.reason;
  const numbers = lines(form.elements.numbers.value);
  fieldError(form.elements.numbers, numbers.length ? null : "Give at least one phone number.");
  fieldError(reason, reasonProblem(reason));
  if (!numbers.length || reasonProblem(reason)) return;
  try {
    const made = await api("/subject-access-requests", {
      method: "POST",
      json: {
        reference: form.elements.reference.value.trim(),
        received: form.elements.received.value,
        reason: reason.value,
        phone_numbers: numbers,
        referrals: lines(form.elements.referrals.value),
      },
    });
    window.location.assign(`/subject-access/${made.id}`);
  } catch (error) {
    if (error.message.startsWith("phone_numbers")) fieldError(form.elements.numbers, error.message);
    throw error;
  }
}

async function find() {
  const reason = finder.elements.reason;
  const numbers = lines(finder.elements.numbers.value);
  const referrals = lines(finder.elements.referrals.value);
  const nothing = numbers.length || referrals.length ? null : "Give a phone number or a referral.";
  fieldError(finder.elements.numbers, nothing);
  fieldError(reason, reasonProblem(reason));
  if (nothing || reasonProblem(reason)) return;
  const answer = await api("/recordings/search", {
    method: "POST",
    json: { phone_numbers: numbers, referrals, reason: reason.value },
  });
  found.querySelector("tbody").replaceChildren(...answer.recordings.map((item) => el("tr", {},
    el("td", {}, el("a", { href: `/recordings/${item.id}` }, when(item.started_at))),
    el("td", {}, item.direction || "–"),
    el("td", {}, item.from || "–"),
    el("td", {}, item.to || "–"),
    el("td", {}, item.team || "–"),
    el("td", {}, item.audio.duration_s ? clock(item.audio.duration_s) : "–"))));
  found.hidden = false;
  const count = answer.recordings.length;
  say(`${count} ${count === 1 ? "call" : "calls"} found${answer.truncated ? " (the newest 200; narrow the search)" : ""}`);
}

if (table) {
  finder.addEventListener("submit", guard(find));
  form.elements.received.value = new Date().toISOString().slice(0, 10);
  show().catch((error) => say(error.message, { error: true }));
  form.addEventListener("submit", guard(open));
}
