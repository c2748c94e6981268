// The search page: filters to the API's search, pages by cursor, marks what is due soon.
import { api, clock, daysUntil, el, fields, guard, say, when } from "./common.js";

const SOON_DAYS = 7;
const form = document.getElementById("search");
const table = document.getElementById("results");
const rows = table?.querySelector("tbody");
const empty = document.getElementById("empty");
const more = document.getElementById("more");
let next = null;
let filters = {};

function query(extra = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...filters, ...extra })) {
    if (name === "started_after" || name === "started_before") params.set(name, `${value}T00:00:00Z`);
    else params.set(name, value);
  }
  return params.toString();
}

function row(recording) {
  const days = daysUntil(recording.retention_deadline);
  const soon = days <= SOON_DAYS && recording.holds.length === 0;
  const deadline = el("td", { class: soon ? "soon" : undefined },
    when(recording.retention_deadline),
    soon ? el("span", { class: "badge" }, days <= 0 ? " due today" : ` in ${days} days`) : null,
    recording.holds.length ? el("span", { class: "badge held" }, " held") : null);
  return el("tr", {},
    el("td", {}, el("a", { href: `/recordings/${recording.id}` }, when(recording.started_at))),
    el("td", {}, recording.team ?? "–"),
    el("td", {}, recording.agent ?? "–"),
    el("td", {}, recording.referrals.join(", ") || "–"),
    el("td", {}, clock(recording.audio.duration_s)),
    deadline);
}

async function show(append) {
  const answer = await api(`/recordings?${query(append && next ? { cursor: next } : {})}`);
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
