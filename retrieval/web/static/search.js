// The search page: opens on the newest recordings the person may see; filters to the API's
// search, pages by cursor, marks what is due soon, what a hold keeps and incomplete audio.
import { api, clock, daysUntil, el, fields, guard, heldUntil, holdDate, incomplete, say, when } from "./common.js";

const SOON_DAYS = 7;
const form = document.getElementById("search");
const table = document.getElementById("results");
const rows = table?.querySelector("tbody");
const empty = document.getElementById("empty");
const more = document.getElementById("more");
let next = null;
let filters = {};
// Only the answer to the latest search is shown (the opening one may arrive after a
// search the person has already made).
let asked = 0;

function query(extra = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...filters, ...extra })) {
    if (name === "started_after" || name === "started_before") params.set(name, `${value}T00:00:00Z`);
    else params.set(name, value);
  }
  return params.toString();
}

function deletion(recording) {
  const kept = heldUntil(recording);
  if (kept) return el("td", { class: "held" }, kept);
  const days = daysUntil(recording.retention_deadline);
  const soon = days <= SOON_DAYS && recording.holds.length === 0;
  const reviews = recording.holds.map((hold) => holdDate(hold.review_by));
  return el("td", { class: soon ? "soon" : undefined },
    when(recording.retention_deadline),
    soon ? el("span", { class: "badge" }, days <= 0 ? " due today" : ` in ${days} days`) : null,
    reviews.length ? el("span", { class: "badge held" }, ` (held until ${reviews.join(", ")})`) : null);
}

function length(audio) {
  const problem = incomplete(audio);
  return el("td", {},
    clock(audio.duration_s),
    problem ? el("span", { class: "badge problem", title: audio.problems.map((p) => p.detail).join("; ") },
      ` ⚠ ${problem}`) : null);
}

function row(recording) {
  return el("tr", {},
    el("td", {}, el("a", { href: `/recordings/${recording.id}` }, when(recording.started_at))),
    el("td", {}, recording.team ?? "–"),
    el("td", {}, recording.agent ?? "–"),
    el("td", {}, recording.referrals.join(", ") || "–"),
    length(recording.audio),
    deletion(recording));
}

async function show(append) {
  asked += 1;
  const mine = asked;
  const answer = await api(`/recordings?${query(append && next ? { cursor: next } : {})}`);
  if (mine !== asked) return;
  if (!append) rows.replaceChildren();
  rows.append(...answer.recordings.map(row));
  next = answer.next_cursor;
  table.hidden = rows.children.length === 0;
  empty.hidden = rows.children.length !== 0;
  more.hidden = !next;
  say(`${rows.children.length} recordings shown${next ? "; more available" : ""}`);
}

form?.addEventListener("submit", guard(async () => {
  filters = fields(form);
  await show(false);
}));
more?.addEventListener("click", guard(() => show(true)));
if (form) guard(async () => {
  filters = fields(form);
  await show(false);
})();
